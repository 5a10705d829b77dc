// `tokio::join!` of `async` blocks in a workflow: each block is a scope of its own.
use hitl::prelude::*;

#[task]
async fn check(replica: u32) -> bool {
    replica < 3
}

#[workflow]
async fn release() -> (bool, bool) {
    tokio::join!(async { check(1).await }, async { check(2).await })
}

fn main() {
    let _ = release;
}
