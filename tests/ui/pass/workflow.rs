// A `#[workflow]` without `inject_context` awaits tasks and plain futures.
use hitl::prelude::*;

#[task]
async fn build_plan(service: String) -> String {
    format!("plan for {service}")
}

async fn count(plan: &str) -> usize {
    plan.len()
}

#[workflow]
async fn release(service: String, replicas: u32) -> Result<usize, std::io::Error> {
    let plan = build_plan(service).await;
    Ok(count(&plan).await * replicas as usize)
}

fn main() {
    let _ = release;
}
