// The macro keeps the user's fn visible to lints: an unused `#[task]` is still dead code.
#![deny(dead_code)]

use hitl::prelude::*;

#[task]
async fn never_called(service: String) -> String {
    service
}

fn main() {}
