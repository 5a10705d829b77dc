// Task parameters are hashed and stored by name: write `name: Type`, not a pattern.
use hitl::prelude::*;

#[task]
async fn scale((service, replicas): (String, u32)) -> String {
    format!("{service} x{replicas}")
}

fn main() {}
