// A syntax error in the body is reported once, by rustc, at the offending token.
use hitl::prelude::*;

#[workflow]
async fn release() -> u32 {
    let x = ;
    x
}

fn main() {}
