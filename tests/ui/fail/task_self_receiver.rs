// A `#[task]` is a free fn: it cannot take `self`; pass the data it needs as arguments.
use hitl::prelude::*;

struct Deployer;

impl Deployer {
    #[task]
    async fn deploy(&self, service: String) -> String {
        service
    }
}

fn main() {}
