// A spawned task leaves the run and is not journaled: use `tokio::join!` of task calls.
use hitl::prelude::*;

#[workflow]
async fn release() {
    tokio::spawn(async {});
}

fn main() {}
