// `#[workflow]` accepts `inject_context` and `name = "…"`; `retries` belongs on a `#[task]`.
use hitl::prelude::*;

#[workflow(retries = 3)]
async fn release(service: String) -> String {
    service
}

fn main() {}
