// Orchestration bodies are replayed: read the clock with `ctx.now()`, not `SystemTime::now()`.
use hitl::prelude::*;

#[workflow]
async fn release() -> bool {
    let now = std::time::SystemTime::now();
    now > std::time::UNIX_EPOCH
}

fn main() {}
