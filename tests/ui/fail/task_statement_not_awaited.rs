// In an orchestration body a task call without `.await` never runs (a deploy would silently
// not happen): it is an error, not a warning.
use hitl::prelude::*;

#[task]
async fn deploy() -> u32 {
    1
}

#[workflow]
async fn release() {
    deploy();
}

fn main() {}
