// A tokio deadline does not survive a restart: use the durable `ctx.sleep(d).await`.
use hitl::prelude::*;

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::from_std(std::time::Instant::now())
}

#[workflow]
async fn release() {
    tokio::time::sleep_until(deadline()).await;
}

fn main() {}
