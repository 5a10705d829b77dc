//! The `hitl` binary on a live PostgreSQL database (`--database-url`): while a worker runs,
//! an operator lists and answers a request, and the answer resumes the run on the worker at
//! once — no restart, no second process holding anything.

mod cli_support;
#[path = "../../tests/postgres_common/mod.rs"]
mod postgres_common;

use cli_support::{PATIENCE, deploy, hitl, paused};
use hitl::prelude::*;

/// A worker engine on `url` and its run `deploy-api`, paused on its approval.
async fn worker_with_a_paused_deploy(url: &str) -> (Engine, hitl::Run<String>, hitl::Request) {
    let worker = Engine::builder()
        .postgres(url)
        .register(deploy)
        .open()
        .await
        .unwrap();
    let run = worker
        .start_with_id(deploy, "deploy-api", ("api".into(),))
        .await
        .unwrap();
    let request = paused(&run).await;
    (worker, run, request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cli_answers_while_the_worker_runs_and_the_run_resumes_at_once() {
    let Some(server) = postgres_common::server_url("postgres_cli_answers_while_the_worker_runs") else {
        return;
    };
    let url = postgres_common::fresh_database(&server).await;
    let (worker, run, request) = worker_with_a_paused_deploy(&url).await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrate_store_moves_a_paused_application_which_then_resumes() {
    let Some(server) = postgres_common::server_url("postgres_migrate_store_moves_a_paused_application")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let app = cli_support::application(&dir).await;
    let mut requests = Vec::new();
    for service in ["api", "web", "jobs"] {
        let run = app
            .start_with_id(deploy, format!("deploy-{service}"), (service.to_owned(),))
            .await
            .unwrap();
        requests.push(paused(&run).await);
    }
    let secret = app.link_secret().unwrap();
    cli_support::stop(app, &dir).await;
    let from = dir.to_str().unwrap().to_owned();
    let url = postgres_common::fresh_database(&server).await;

    hitl(["--database-url", &url, "migrate"])
        .exits(0)
        .prints(&["hitl schema at version"]);
    // A copy killed after its second run (a failpoint aborts the process) ...
    let interrupted = std::process::Command::new(env!("CARGO_BIN_EXE_hitl"))
        .args(["migrate-store", "--from", &from, "--to", &url])
        .env("HITL_FAILPOINT", "import_after_run:2")
        .output()
        .unwrap();
    assert!(
        !interrupted.status.success(),
        "the failpoint aborts the copy: {interrupted:?}"
    );
    // ... is finished by running it again; a finished copy is not repeated.
    hitl(["migrate-store", "--from", &from, "--to", &url])
        .exits(0)
        .prints(&["Copied 3 runs", "3 requests", "finishing an interrupted copy"]);
    let again = hitl(["migrate-store", "--from", &from, "--to", &url]);
    again.exits(3);
    assert!(
        again.stderr.contains("already holds hitl data"),
        "{}",
        again.stderr
    );
    hitl([
        "migrate-store",
        "--from",
        tmp.path().to_str().unwrap(),
        "--to",
        &url,
    ])
    .exits(4);

    // The application, now on PostgreSQL, finds every paused run where it was.
    let worker = Engine::builder()
        .postgres(url.clone())
        .register(deploy)
        .open()
        .await
        .unwrap();
    assert_eq!(
        worker.link_secret().unwrap(),
        secret,
        "links already sent keep working"
    );
    let pending: Vec<String> = worker
        .pending(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|request| request.id)
        .collect();
    let mut expected: Vec<String> = requests.iter().map(|request| request.id.clone()).collect();
    expected.sort();
    let mut pending = pending;
    pending.sort();
    assert_eq!(pending, expected);
    for request in &requests {
        worker
            .respond(&request.id, Response::approve(), Responder::new("alice"))
            .await
            .unwrap();
    }
    for service in ["api", "web", "jobs"] {
        let outcome = tokio::time::timeout(PATIENCE, worker.wait(&format!("deploy-{service}")))
            .await
            .expect("the run resumes on PostgreSQL")
            .unwrap();
        assert_eq!(
            outcome,
            Outcome::Completed(serde_json::json!("approved by alice: -"))
        );
    }
    worker.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dump_shows_the_packed_records_as_json_lines_while_the_worker_runs() {
    let Some(server) = postgres_common::server_url("postgres_dump_shows_the_packed_records") else {
        return;
    };
    let url = postgres_common::fresh_database(&server).await;
    let (worker, _run, request) = worker_with_a_paused_deploy(&url).await;

    let ran = hitl(["--database-url", &url, "dump"]);
    ran.exits(0);
    let lines = ran.json_lines();
    assert_eq!(
        lines[0],
        serde_json::json!({ "format": "hitl-postgres", "schema": hitl::store::postgres::schema::current_version() })
    );
    let of = |tree: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|line| line["tree"] == tree).collect()
    };
    let runs = of("runs");
    assert_eq!(runs.len(), 1, "{lines:?}");
    assert_eq!(runs[0]["record"]["id"], "deploy-api");
    assert_eq!(
        runs[0]["record"]["input"],
        serde_json::json!({ "service": "api" })
    );
    let requests = of("requests");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["record"]["id"], request.id.as_str());
    assert_eq!(requests[0]["record"]["prompt"], "Deploy api to production?");
    let journal = of("journal");
    assert!(
        journal
            .iter()
            .any(|line| line["record"]["k"] == "feedback" && line["run_id"] == "deploy-api"),
        "the waiting feedback step is in the journal: {journal:?}"
    );
    assert!(lines.iter().all(|line| line.get("error").is_none()), "{lines:?}");
    assert!(
        !ran.stdout.contains("secret"),
        "the link secret is not shown: {}",
        ran.stdout
    );
    worker.close().await.unwrap();

    // A claim writes the columns only: the dump shows a run as its columns hold it.
    postgres_common::sql(
        &url,
        "UPDATE hitl_runs SET status = 'running', owner = 'worker-b', lease_epoch = 41 WHERE id = 'deploy-api'",
    )
    .await;
    let ran = hitl(["--database-url", &url, "dump"]);
    ran.exits(0);
    let run = ran
        .json_lines()
        .into_iter()
        .find(|line| line["tree"] == "runs")
        .expect("the run is dumped");
    assert_eq!(
        (
            &run["record"]["status"],
            &run["record"]["owner"],
            &run["record"]["lease_epoch"]
        ),
        (
            &serde_json::json!("running"),
            &serde_json::json!("worker-b"),
            &serde_json::json!(41)
        )
    );

    // Timers read as the sled dump shows them; a kind hitl does not write, as stored.
    postgres_common::sql(
        &url,
        "INSERT INTO hitl_timers (deadline, kind, target) VALUES (123, 'w', 'deploy-api'), (124, 'x', 'odd')",
    )
    .await;
    let ran = hitl(["--database-url", &url, "dump"]);
    ran.exits(0);
    let timers: Vec<serde_json::Value> = ran
        .json_lines()
        .into_iter()
        .filter(|line| line["tree"] == "timers")
        .collect();
    assert_eq!(
        timers,
        [
            serde_json::json!({ "tree": "timers", "deadline": 123, "action": "wake", "id": "deploy-api" }),
            serde_json::json!({ "tree": "timers", "deadline": 124, "action": "x", "id": "odd" }),
        ]
    );
}
