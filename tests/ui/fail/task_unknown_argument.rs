// `#[task]` accepts `inject_context`, `name = "…"` and `retries = n`; anything else is an error.
use hitl::prelude::*;

#[task(timeout = 30)]
async fn deploy(service: String) -> String {
    service
}

fn main() {}
