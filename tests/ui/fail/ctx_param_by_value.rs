// The injected context is borrowed: its type must be `&TaskContext`, not `TaskContext`.
use hitl::prelude::*;

#[task(inject_context)]
async fn approve(ctx: TaskContext, service: String) -> String {
    let _ = ctx;
    service
}

fn main() {}
