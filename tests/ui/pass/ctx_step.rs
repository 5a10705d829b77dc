// `ctx.step` and `ctx.try_step` name a journaled step explicitly.
use hitl::prelude::*;

#[workflow(inject_context)]
async fn release(ctx: &TaskContext) -> Result<u32, std::num::ParseIntError> {
    let text = ctx.step("read", async { "41".to_owned() }).await;
    let n: u32 = ctx.try_step("parse", async move { text.parse::<u32>() }).await?;
    Ok(n + 1)
}

fn main() {
    let _ = release;
}
