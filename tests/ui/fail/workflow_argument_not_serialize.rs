// Workflow arguments must implement `Serialize` and `Deserialize`: they are stored with the run.
use hitl::prelude::*;

struct Request {
    service: String,
}

#[workflow]
async fn release(request: Request) -> String {
    request.service
}

fn main() {}
