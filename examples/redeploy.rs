//! Changing a workflow while runs of it wait for a human, in one process.
//!
//! Each "deploy" below is an engine opened on the same sled database with other fns
//! registered, as a new build would be:
//!
//! 1. **v1** (`build → approve → deploy`): three runs pause at the approval; one is approved.
//! 2. **The pre-deploy check** of a candidate build that adds a `scan` before the approval
//!    without a patch: it names the two waiting runs it would block (`redeploy check`
//!    exits 1 on such a report).
//! 3. **The fixed build**: the scan inside `if ctx.patched(..)`, and a version 2 for new
//!    runs. The check passes; a waiting run resumes on the patched v1 and skips the scan; a
//!    new run starts on v2.
//! 4. **A hurried deploy** of the unpatched build: the last waiting run is blocked when its
//!    answer comes (nothing runs), and an operator resumes it anyway.
//!
//! The last line is JSON:
//! `{"runs":4,"completed_v1":3,"completed_v2":1,"patched":1,"blocked_then_resolved":1,"failed":0}`.
//!
//! ```text
//! cargo run --example redeploy                   # the story above
//! cargo run --example redeploy -- check FILE     # check an export (`hitl export-runs`) against
//!                                                # this build; exit 1 if a run would block
//! ```

use std::process::ExitCode;

use hitl::engine::RunExport;
use hitl::feedback::Feedback;
use hitl::prelude::*;
use hitl::{EngineBuilder, Responder, Response};

#[task]
async fn build(service: String) -> String {
    format!("{service}-1.4.2")
}

#[task]
async fn scan(artifact: String) -> bool {
    println!("  scanning {artifact}");
    true
}

#[task]
async fn deploy(artifact: String) -> String {
    format!("deployed {artifact}")
}

#[task(inject_context)]
async fn approval(ctx: &TaskContext, artifact: String) -> hitl::Result<bool> {
    let answer = ctx
        .request_feedback(Feedback::approval(format!("Deploy {artifact}?")))
        .await?;
    Ok(answer.approved())
}

/// The code the first runs started on.
#[workflow(name = "release")]
async fn release_v1(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    if !approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

/// A candidate v1 that scans before the approval, without a patch: waiting runs would
/// see the scan run after their human already approved.
#[workflow(name = "release")]
async fn release_v1_unpatched(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    if !scan(artifact.clone()).await || !approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

/// The same change inside a patch: runs that already asked keep the old path.
#[workflow(name = "release", inject_context)]
async fn release_v1_patched(ctx: &TaskContext, service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    if ctx.patched("scan-before-approval") && !scan(artifact.clone()).await {
        return Ok("rejected".into());
    }
    if !approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

/// Version 2 for new runs: scan first, and say which version deployed.
#[workflow(name = "release", version = 2)]
async fn release_v2(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    if !scan(artifact.clone()).await || !approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(format!("{} (v2)", deploy(artifact).await))
}

/// The build this binary would deploy: the patched v1 beside v2.
fn this_build(builder: EngineBuilder) -> EngineBuilder {
    builder.register(release_v1_patched).register(release_v2)
}

async fn approve(engine: &Engine, run_id: &str) -> hitl::Result<()> {
    let pending = engine
        .pending(&hitl::PendingFilter {
            run_id: Some(run_id.to_owned()),
            ..Default::default()
        })
        .await?;
    let request = pending.first().expect("the run waits for its approval");
    println!("  alice approves {run_id}: {}", request.prompt);
    engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await?;
    Ok(())
}

/// `redeploy check FILE`: exit 1 when this build would block a run of the export.
async fn check(file: &str) -> hitl::Result<ExitCode> {
    let text = std::fs::read_to_string(file).map_err(|error| hitl::Error::InvalidRequest {
        detail: format!("cannot read `{file}`: {error}"),
    })?;
    let report = this_build(Engine::builder())
        .check_export(&RunExport::from_json(&text)?)
        .await?;
    print!("{report}");
    Ok(if report.all_resumable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[tokio::main]
async fn main() -> hitl::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [command, file] = args.as_slice()
        && command == "check"
    {
        return check(file).await;
    }
    let dir = tempfile::tempdir().map_err(|error| hitl::Error::InvalidRequest {
        detail: format!("cannot make a temporary directory: {error}"),
    })?;
    let path = dir.path().join("hitl.db");
    let mut completed = [0; 2];
    let mut tally = |outcome: Outcome<serde_json::Value>, version: u32| {
        println!("  -> {outcome:?} on version {version}");
        if let Outcome::Completed(_) = outcome {
            completed[version as usize - 1] += 1;
        }
    };

    println!("1. v1 is deployed; three releases wait for approval");
    let engine = Engine::builder().path(&path).register(release_v1).open().await?;
    for service in ["api", "web", "worker"] {
        let run = engine
            .start_with_id(release_v1, service, (service.to_owned(),))
            .await?;
        run.settled().await?;
    }
    approve(&engine, "api").await?;
    tally(engine.wait("api").await?, 1);
    let export = engine.export_runs(true).await?;
    engine.close().await?;

    println!("2. the pre-deploy check of a build that scans before the approval, unpatched");
    let report = Engine::builder()
        .register(release_v1_unpatched)
        .register(release_v2)
        .check_export(&export)
        .await?;
    print!("{report}");
    assert_eq!(report.blocked().count(), 2, "both waiting runs would block");

    println!("3. the fixed build (a patch, and version 2) passes the check and is deployed");
    let report = this_build(Engine::builder()).check_export(&export).await?;
    print!("{report}");
    assert!(report.all_resumable());
    let engine = this_build(Engine::builder().path(&path)).open().await?;
    approve(&engine, "web").await?;
    tally(engine.wait("web").await?, 1);
    let patched = engine
        .history("web")
        .await?
        .iter()
        .filter(|step| step.kind == hitl::StepKind::Patch && step.output == false)
        .count();
    let run = engine
        .start_json_with_id("release", "batch", serde_json::json!({ "service": "batch" }))
        .await?;
    run.settled().await?;
    approve(&engine, "batch").await?;
    tally(run.wait().await?, engine.run_info("batch").await?.version);
    drop(run); // a run handle holds its engine, and with it the database
    engine.close().await?;

    println!("4. a hurried deploy of the unpatched build: the last waiting run blocks");
    let engine = Engine::builder()
        .path(&path)
        .register(release_v1_unpatched)
        .register(release_v2)
        .open()
        .await?;
    approve(&engine, "worker").await?;
    let run = engine.run(release_v1, "worker").await?;
    let blocked = loop {
        match run.settled().await? {
            Outcome::Blocked(blocked) => break blocked,
            // Answered, not yet resumed: the next settled state is the block.
            Outcome::Paused(_) => tokio::task::yield_now().await,
            other => panic!("the run should be blocked, it is {other:?}"),
        }
    };
    println!("  blocked: {}", blocked.reason);
    engine
        .resume_anyway("worker", "ops@example.com", "the scan is read-only")
        .await?;
    tally(engine.wait("worker").await?, 1);
    let blocked_then_resolved = usize::from(!engine.run_info("worker").await?.decisions.is_empty());
    drop(run);
    let failed = engine
        .runs(&hitl::RunFilter {
            status: Some(RunStatus::Failed),
            ..Default::default()
        })
        .await?
        .len();
    let runs = engine.runs(&hitl::RunFilter::default()).await?.len();
    engine.close().await?;

    println!(
        "{}",
        serde_json::json!({
            "runs": runs,
            "completed_v1": completed[0],
            "completed_v2": completed[1],
            "patched": patched,
            "blocked_then_resolved": blocked_then_resolved,
            "failed": failed,
        })
    );
    Ok(ExitCode::SUCCESS)
}
