// A fresh UUID differs on replay: use `ctx.uuid()`, which is journaled.
use hitl::prelude::*;

#[workflow]
async fn release() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn main() {}
