// A `TaskContext` parameter is supplied by the engine only with `inject_context`.
use hitl::prelude::*;

#[workflow]
async fn release(ctx: &TaskContext, service: String) -> String {
    let _ = ctx;
    service
}

fn main() {}
