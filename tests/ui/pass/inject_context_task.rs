// `#[task(inject_context)]`: callers do not pass the context; the body may use it.
use std::time::Duration;

use hitl::prelude::*;

#[task]
async fn notify(who: String) -> bool {
    !who.is_empty()
}

#[task(inject_context)]
async fn wait_for_approval(ctx: &TaskContext, who: String) -> Result<bool, hitl::Error> {
    ctx.sleep(Duration::from_secs(60)).await;
    let approved: Option<bool> = ctx.channel().get("approved").await?;
    Ok(notify(who).await && approved.unwrap_or(false))
}

#[workflow]
async fn release(who: String) -> Result<bool, hitl::Error> {
    wait_for_approval(who).await
}

fn main() {
    let _ = release;
}
