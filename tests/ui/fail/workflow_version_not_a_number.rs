// A version is a whole number, not a string.
use hitl::prelude::*;

#[workflow(name = "release", version = "2")]
async fn release(service: String) -> String {
    service
}

fn main() {}
