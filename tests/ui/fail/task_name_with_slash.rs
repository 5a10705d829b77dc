// A task name becomes part of a step id (`scope/name#n`): it cannot contain `/` or `#`.
use hitl::prelude::*;

#[task(name = "deploy/prod")]
async fn deploy(service: String) -> String {
    service
}

fn main() {}
