// A `#[workflow]` cannot be generic: it is registered and started under a fixed name.
use hitl::prelude::*;

#[workflow]
async fn release<S>(service: S) -> usize
where
    S: Into<String>,
{
    service.into().len()
}

fn main() {}
