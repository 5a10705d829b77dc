//! The `hitl` binary on a live PostgreSQL database (`--database-url`): while a worker runs,
//! an operator lists and answers a request, and the answer resumes the run on the worker at
//! once — no restart, no second process holding anything.

mod cli_support;
#[path = "../../tests/postgres_common/mod.rs"]
mod postgres_common;

use cli_support::{PATIENCE, deploy, hitl, paused};
use hitl::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cli_answers_while_the_worker_runs_and_the_run_resumes_at_once() {
    let Some(server) = postgres_common::server_url("postgres_cli_answers_while_the_worker_runs") else {
        return;
    };
    let url = postgres_common::fresh_database(&server).await;
    let worker = Engine::builder()
        .postgres(url.clone())
        .register(deploy)
        .open()
        .await
        .unwrap();
    let run = worker
        .start_with_id(deploy, "deploy-api", ("api".into(),))
        .await
        .unwrap();
    let request = paused(&run).await;

    hitl(["--database-url", &url, "pending"]).exits(0).prints(&[
        &request.id,
        "deploy-api",
        "Deploy api to production?",
    ]);
    hitl(["--database-url", &url, "show", &request.id])
        .exits(0)
        .prints(&[
            "Deploy api to production?",
            &format!("hitl --database-url {url} --as NAME respond {}", request.id),
        ]);
    hitl(["--database-url", &url, "respond", &request.id, "--approve"]).exits(2);
    hitl([
        "--database-url",
        &url,
        "respond",
        &request.id,
        "--as",
        "alice",
        "--approve",
        "--comment",
        "ship it",
    ])
    .exits(0)
    .prints(&["approved", "by alice", "a worker resumes the run now"]);
    let outcome = tokio::time::timeout(PATIENCE, run.wait())
        .await
        .expect("the worker resumes the run")
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Completed("approved by alice: ship it".to_owned())
    );
    worker.close().await.unwrap();

    // A URL's password never reaches the terminal, even in an error.
    let refused = hitl([
        "--database-url",
        "postgres://ops:hunter2@127.0.0.1:1/hitl",
        "pending",
    ]);
    refused.exits(4);
    assert!(
        refused.stderr.contains("postgres://ops:***@127.0.0.1:1/hitl"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("hunter2") && !refused.stdout.contains("hunter2"));
}
