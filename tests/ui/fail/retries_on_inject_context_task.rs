// `retries` applies to plain tasks: an `inject_context` task is replayed, not re-run.
use hitl::prelude::*;

#[task(inject_context, retries = 3)]
async fn approve(ctx: &TaskContext) -> Result<u64, std::io::Error> {
    Ok(ctx.random())
}

fn main() {}
