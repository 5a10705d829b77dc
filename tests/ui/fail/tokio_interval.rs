// A tokio interval does not survive a restart: call `ctx.sleep(period).await` in a loop.
use hitl::prelude::*;

#[workflow]
async fn release() {
    let _ = tokio::time::interval(std::time::Duration::from_secs(5));
}

fn main() {}
