// A task call is a future: use its value with `.await` (rustc suggests it).
use hitl::prelude::*;

#[task]
async fn replicas() -> u32 {
    3
}

async fn scale() -> u32 {
    let count: u32 = replicas();
    count
}

fn main() {
    let _ = scale();
}
