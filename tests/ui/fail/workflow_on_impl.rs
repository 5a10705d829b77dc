// `#[workflow]` applies to fns only, not to an impl block.
use hitl::prelude::*;

struct Release;

#[workflow]
impl Release {
    async fn run() {}
}

fn main() {}
