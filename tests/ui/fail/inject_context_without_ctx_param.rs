// `inject_context` requires a first parameter `ctx: &TaskContext`.
use hitl::prelude::*;

#[task(inject_context)]
async fn approve(service: String) -> String {
    service
}

fn main() {}
