//! Redeploy safety on PostgreSQL: the pre-deploy check reads the shared database directly,
//! a worker on new code blocks a run it cannot resume, and an operator engine's decision
//! resumes it on a worker.

mod postgres_common;

use std::sync::atomic::{AtomicUsize, Ordering};

use hitl::feedback::Feedback;
use hitl::prelude::*;
use hitl::run::IncompatibilityKind;
use hitl::{Responder, Response};
use hitl_workspace::{eventually, pending_request};
use postgres_common::{fresh_database, server_url};

static SCANS: AtomicUsize = AtomicUsize::new(0);

#[task]
async fn build(service: String) -> String {
    format!("{service}-artifact")
}

#[task]
async fn scan(artifact: String) -> bool {
    SCANS.fetch_add(1, Ordering::SeqCst);
    !artifact.is_empty()
}

#[task(inject_context)]
async fn ask_approval(ctx: &TaskContext, artifact: String) -> hitl::Result<bool> {
    let answer = ctx
        .request_feedback(Feedback::approval(format!("Deploy {artifact}?")))
        .await?;
    Ok(answer.approved())
}

#[workflow(name = "release")]
async fn release_v1(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    Ok(if ask_approval(artifact.clone()).await? {
        format!("deployed {artifact}")
    } else {
        "rejected".into()
    })
}

/// A step added before the approval: runs waiting at it cannot resume on this code.
#[workflow(name = "release")]
async fn release_scans(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    let clean = scan(artifact.clone()).await;
    Ok(if clean && ask_approval(artifact.clone()).await? {
        format!("deployed {artifact}")
    } else {
        "rejected".into()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_blocks_a_run_the_new_code_cannot_resume_and_an_operator_resumes_it() {
    let Some(server) =
        server_url("postgres_blocks_a_run_the_new_code_cannot_resume_and_an_operator_resumes_it")
    else {
        return;
    };
    let url = fresh_database(&server).await;
    let old = Engine::builder()
        .postgres(&url)
        .register(release_v1)
        .open()
        .await
        .unwrap();
    let run = old
        .start_with_id(release_v1, "pg-release", ("api".to_owned(),))
        .await
        .unwrap();
    assert!(matches!(run.settled().await.unwrap(), Outcome::Paused(_)));
    drop(run);

    // The check before the deploy reads the database the old worker still runs on.
    let report = Engine::builder()
        .postgres(&url)
        .register(release_scans)
        .check()
        .await
        .unwrap();
    assert!(!report.all_resumable(), "{report}");
    assert_eq!(
        report.runs[0].problems[0].kind,
        IncompatibilityKind::NewStepBefore
    );
    assert!(report.to_string().contains("`scan#0` (line "), "{report}");
    old.close().await.unwrap();

    // Deployed anyway: the new worker blocks the run when the answer comes, runs nothing.
    let new = Engine::builder()
        .postgres(&url)
        .register(release_scans)
        .open()
        .await
        .unwrap();
    let operator = Engine::builder()
        .postgres(&url)
        .background(false)
        .open()
        .await
        .unwrap();
    let request = pending_request(&operator, "pg-release", None).await;
    operator
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    eventually("the run is blocked", async || {
        (operator.run_info("pg-release").await.unwrap().status == RunStatus::Blocked).then_some(())
    })
    .await;
    assert_eq!(SCANS.load(Ordering::SeqCst), 0);

    // The operator accepts the divergence; a worker resumes the run with the answer.
    operator
        .resume_anyway("pg-release", "ops", "the scan is read-only")
        .await
        .unwrap();
    let outcome = new.wait("pg-release").await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Completed(serde_json::json!("deployed api-artifact"))
    );
    assert_eq!(SCANS.load(Ordering::SeqCst), 1);
    assert_eq!(
        operator.run_info("pg-release").await.unwrap().decisions[0].by,
        "ops"
    );
    new.close().await.unwrap();
    operator.close().await.unwrap();
}
