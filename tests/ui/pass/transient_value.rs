// `hitl::transient(..)` awaits a future whose output is not serializable, without journaling.
use hitl::prelude::*;

struct Client(String);

async fn connect() -> Client {
    Client("https://example.invalid".to_owned())
}

#[workflow]
async fn release() -> usize {
    let client = hitl::transient(connect()).await;
    client.0.len()
}

fn main() {
    let _ = release;
}
