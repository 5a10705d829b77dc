// A `#[workflow]` must be an `async fn`: its body is replayed step by step.
use hitl::prelude::*;

#[workflow]
fn release(service: String) -> String {
    service
}

fn main() {}
