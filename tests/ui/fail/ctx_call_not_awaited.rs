// In an orchestration body a context call without `.await` never happens (a durable delay
// would be skipped): it is an error, not a warning.
use hitl::prelude::*;
use std::time::Duration;

#[workflow(inject_context)]
async fn release(ctx: &TaskContext) {
    ctx.sleep(Duration::from_secs(60));
}

fn main() {}
