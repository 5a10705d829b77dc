// A tokio timeout's deadline is lost on a restart: race the step against `ctx.sleep(d)`.
use hitl::prelude::*;

#[workflow]
async fn release() {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async { 1 }).await;
}

fn main() {}
