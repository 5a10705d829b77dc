// A task's output must implement `Serialize` and `Deserialize`: it is journaled.
use hitl::prelude::*;

struct Deployment {
    id: u32,
}

#[task]
async fn deploy(service: String) -> Deployment {
    Deployment {
        id: service.len() as u32,
    }
}

fn main() {}
