// Inner attributes opening a body stay inner: they apply to the body, under
// `#![deny(warnings)]` nothing is reported at the attribute, and the fn keeps its docs.
#![deny(warnings)]

use hitl::prelude::*;

/// Documented task.
#[task]
async fn plan(n: u32) -> u32 {
    #![allow(unused_variables)]
    let unused = n;
    n + 1
}

#[task]
fn sync_plan(n: u32) -> u32 {
    #![allow(unused_variables)]
    let unused = n;
    n
}

/// Documented workflow.
#[workflow]
async fn release(n: u32) -> u32 {
    #![allow(unused_variables)]
    let unused = n;
    plan(n).await + sync_plan(n)
}

fn main() {
    let _ = release;
}
