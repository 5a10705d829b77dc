// Workflow arguments are stored as JSON with the run: take owned types, not references.
use hitl::prelude::*;

#[workflow]
async fn release(service: &str) -> usize {
    service.len()
}

fn main() {}
