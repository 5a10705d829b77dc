// An `inject_context` task body is replayed too: no `Instant::now()` in it; use `ctx.now()`.
use hitl::prelude::*;

#[task(inject_context)]
async fn approve(ctx: &TaskContext) -> u128 {
    let _ = ctx;
    std::time::Instant::now().elapsed().as_nanos()
}

fn main() {}
