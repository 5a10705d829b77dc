// A fallible task journals only `Ok`, so its error type need not be serializable.
use hitl::prelude::*;

#[derive(Debug)]
struct DeployError(std::io::Error);

#[task]
async fn deploy(service: String) -> Result<u32, DeployError> {
    std::fs::metadata(&service).map(|_| 1).map_err(DeployError)
}

#[task]
fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

fn main() {
    let _ = deploy("api".to_owned());
    assert_eq!(parse("7".to_owned()), Ok(7));
}
