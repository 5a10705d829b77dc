// `#[task]` applies to fns only.
use hitl::prelude::*;

#[task]
struct Deploy {
    service: String,
}

fn main() {}
