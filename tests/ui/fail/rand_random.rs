// Randomness differs on replay: use `ctx.random()`, which is journaled.
use hitl::prelude::*;

#[workflow]
async fn release() -> u64 {
    rand::random()
}

fn main() {}
