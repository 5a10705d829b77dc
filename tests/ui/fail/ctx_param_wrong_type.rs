// With `inject_context` the first parameter must be `ctx: &TaskContext`, not another type.
use hitl::prelude::*;

#[task(inject_context)]
async fn approve(ctx: &String, service: String) -> String {
    let _ = ctx;
    service
}

fn main() {}
