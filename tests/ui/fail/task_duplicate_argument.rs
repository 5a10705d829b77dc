// Each `#[task]` argument may be given once.
use hitl::prelude::*;

#[task(retries = 1, retries = 2)]
async fn deploy(service: String) -> Result<String, std::io::Error> {
    Ok(service)
}

fn main() {}
