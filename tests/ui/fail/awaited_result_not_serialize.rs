// An awaited `Result` is journaled when `Ok`, so its `Ok` value must be serializable.
use hitl::prelude::*;

struct Client;

async fn connect() -> Result<Client, std::io::Error> {
    Ok(Client)
}

#[workflow]
async fn release() -> Result<u32, std::io::Error> {
    let _client = connect().await?;
    Ok(0)
}

fn main() {}
