// `#[workflow(inject_context)]` takes `ctx: &TaskContext` first; `start` passes the rest.
use std::time::Duration;

use hitl::prelude::*;

#[workflow(inject_context)]
async fn release(ctx: &TaskContext, service: String) -> (String, u64, String) {
    ctx.sleep(Duration::from_secs(1)).await;
    (service, ctx.random(), ctx.uuid().to_string())
}

fn main() {
    let _ = release;
}
