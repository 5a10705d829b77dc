// Each `#[workflow]` argument may be given once.
use hitl::prelude::*;

#[workflow(version = 2, version = 3)]
async fn release(service: String) -> String {
    service
}

fn main() {}
