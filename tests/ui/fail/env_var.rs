// The environment may differ when a run resumes: pass the value as a workflow argument.
use hitl::prelude::*;

#[workflow]
async fn release() -> String {
    std::env::var("SERVICE").unwrap_or_default()
}

fn main() {}
