// A version is written without a type suffix.
use hitl::prelude::*;

#[workflow(version = 2u8)]
async fn release(service: String) -> String {
    service
}

fn main() {}
