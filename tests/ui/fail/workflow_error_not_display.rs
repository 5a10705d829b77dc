// A workflow's error type must implement `Display`: a failed run records its text.
use hitl::prelude::*;

#[derive(Debug)]
struct DeployError;

#[workflow]
async fn release() -> Result<u32, DeployError> {
    Err(DeployError)
}

fn main() {}
