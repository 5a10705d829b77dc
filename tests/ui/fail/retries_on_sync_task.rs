// `retries = n` waits between attempts, so it needs an async task.
use hitl::prelude::*;

#[task(retries = 3)]
fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

fn main() {}
