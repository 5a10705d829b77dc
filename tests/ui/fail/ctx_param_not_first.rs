// The injected context must be the first parameter.
use hitl::prelude::*;

#[task(inject_context)]
async fn approve(service: String, ctx: &TaskContext) -> String {
    let _ = ctx;
    service
}

fn main() {}
