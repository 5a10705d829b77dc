// Versions start at 1: runs stored before versions existed are version 1.
use hitl::prelude::*;

#[workflow(name = "release", version = 0)]
async fn release(service: String) -> String {
    service
}

fn main() {}
