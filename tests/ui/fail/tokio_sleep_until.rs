// A tokio deadline does not survive a restart: use the durable `ctx.sleep(d).await`.
use hitl::prelude::*;

#[workflow]
async fn release() {
    tokio::time::sleep_until(tokio::time::Instant::now()).await;
}

fn main() {}
