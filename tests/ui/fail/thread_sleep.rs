// Orchestration bodies must not block: wait with `ctx.sleep(d).await`, a durable timer.
use hitl::prelude::*;

#[workflow]
async fn release() {
    std::thread::sleep(std::time::Duration::from_secs(60));
}

fn main() {}
