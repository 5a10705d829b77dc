// Task arguments must implement `Serialize`: they are hashed to detect a changed input.
use hitl::prelude::*;

struct Plan {
    replicas: u32,
}

#[task]
async fn deploy(plan: Plan) -> u32 {
    plan.replicas
}

fn main() {}
