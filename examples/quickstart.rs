//! Quickstart: a three-step release workflow on an embedded sled database.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! The first run executes every step and journals it in `./quickstart.db` (or `$HITL_DB`).
//! Run it again: the run id is fixed, so the engine finds the completed run and prints its
//! stored result without executing anything — a replay costs no side effects.

use std::time::Duration;

use hitl::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    service: String,
    replicas: u32,
}

#[derive(Debug, thiserror::Error)]
enum ReleaseError {
    #[error("the build of {0} failed")]
    BuildFailed(String),
}

/// An activity: computed once, journaled, never recomputed on replay.
#[task]
async fn build_plan(service: String) -> Plan {
    println!("  [step] planning the release of {service}");
    Plan { service, replicas: 3 }
}

/// A side effect that can fail; only an `Ok` is journaled.
#[task(retries = 2)]
async fn build_image(plan: Plan) -> Result<String, ReleaseError> {
    println!("  [step] building an image for {}", plan.service);
    if plan.service.is_empty() {
        return Err(ReleaseError::BuildFailed(plan.service));
    }
    Ok(format!("{}:v1", plan.service))
}

/// A sync task works the same way.
#[task]
fn rollout_message(image: String, replicas: u32) -> String {
    println!("  [step] rolling out {image}");
    format!("{image} is running on {replicas} replicas")
}

#[workflow(inject_context)]
async fn release(ctx: &TaskContext, service: String) -> Result<String, ReleaseError> {
    let plan = build_plan(service).await;
    let image = build_image(plan.clone()).await?;
    ctx.sleep(Duration::from_millis(10)).await; // a durable timer
    Ok(rollout_message(image, plan.replicas))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("HITL_DB").unwrap_or_else(|_| "quickstart.db".to_owned());
    let engine = Engine::builder().path(&path).register(release).open().await?;
    println!("database: {path}");

    let run = engine
        .start_with_id(release, "release-api", ("api".to_owned(),))
        .await?;
    match run.wait().await? {
        Outcome::Completed(message) => println!("run {} completed: {message}", run.id()),
        Outcome::Failed(failure) => println!("run {} failed: {failure}", run.id()),
        Outcome::Cancelled { reason } => println!("run {} cancelled: {reason}", run.id()),
        other => println!("run {}: {other:?}", run.id()),
    }

    println!("history:");
    for step in engine.history(run.id()).await? {
        println!("  {:<28} line {:<3} {}", step.step_id, step.line, step.output);
    }
    engine.close().await?;
    Ok(())
}
