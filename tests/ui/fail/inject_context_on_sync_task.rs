// `inject_context` needs an async task: a body that uses the context is replayed step by step.
use hitl::prelude::*;

#[task(inject_context)]
fn approve(ctx: &TaskContext, service: String) -> String {
    let _ = ctx;
    service
}

fn main() {}
