// A tokio timer does not survive a restart: wait with `ctx.sleep(d).await` instead.
use hitl::prelude::*;

#[workflow]
async fn release() {
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
}

fn main() {}
