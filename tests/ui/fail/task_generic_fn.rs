// A `#[task]` cannot be generic: its input and output are stored as JSON under a fixed name.
use hitl::prelude::*;

#[task]
async fn echo<T: serde::Serialize>(value: T) -> T {
    value
}

fn main() {}
