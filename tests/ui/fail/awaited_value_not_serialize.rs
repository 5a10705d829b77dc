// Every `.await` in a workflow is journaled, so the awaited value must be serializable.
use hitl::prelude::*;

struct Client;

async fn connect() -> Client {
    Client
}

#[workflow]
async fn release() -> u32 {
    let _client = connect().await;
    0
}

fn main() {}
