// A spawned thread leaves the run and is not journaled: use `tokio::join!` of task calls.
use hitl::prelude::*;

#[workflow]
async fn release() {
    let _ = std::thread::spawn(|| 1);
}

fn main() {}
