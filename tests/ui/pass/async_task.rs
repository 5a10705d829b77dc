// An async `#[task]` taking and returning serializable values compiles.
use hitl::prelude::*;

#[task]
async fn build_plan(service: String, replicas: u32) -> String {
    format!("{service} x{replicas}")
}

fn main() {
    let _ = build_plan("api".to_owned(), 3);
}
