// `#[workflow]` applies to fns only, not to a const.
use hitl::prelude::*;

#[workflow]
const RELEASE: &str = "release";

fn main() {}
