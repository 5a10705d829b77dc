//! An answer is durable before its run resumes, and the resumption survives whatever stops
//! the process in between: an answer stored by a process killed right after its flush, and
//! one stored by an operator engine that cannot drive the run, both resume the run at the
//! application's next open, with no completed step run again and the answer as it was given.
//!
//! (On sled the answer is one write to the run's document, which then holds the answered
//! request until the run resumes: `hitl/src/store/sled/requests.rs`, "Settling". These are
//! the stories that leave it there.)

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hitl::prelude::*;
use hitl::{PendingFilter, Request, RequestStatus};
use hitl_workspace::{patiently, pending_request};
use serde_json::Value;

/// Set (to the test's directory) only in the child process.
const CHILD_ENV: &str = "ANSWER_CRASH_CHILD";
const RUN_ID: &str = "answer-crash";

/// Appends `what` to the side-effect log.
fn log(path: &str, what: &str) {
    let mut file = OpenOptions::new().create(true).append(true).open(path).unwrap();
    writeln!(file, "{what}").unwrap();
}

#[task]
async fn build(log_path: String) -> u32 {
    log(&log_path, "build");
    7
}

#[task]
async fn deploy(log_path: String, artifact: u32) -> u32 {
    log(&log_path, "deploy");
    artifact * 6
}

#[workflow(inject_context)]
async fn ship(ctx: &TaskContext, log_path: String) -> hitl::Result<u32> {
    let artifact = build(log_path.clone()).await;
    let answer = ctx.request_feedback(Feedback::approval("Ship it?")).await?;
    if !answer.approved() {
        return Ok(0);
    }
    Ok(deploy(log_path, artifact).await)
}

/// Where the child leaves the id of the request it answers.
fn request_id_file(dir: &Path) -> PathBuf {
    dir.join("request-id")
}

fn paths(dir: &Path) -> (PathBuf, String) {
    (
        dir.join("db"),
        dir.join("side-effects.log").to_str().unwrap().to_owned(),
    )
}

async fn open(db: &Path) -> Engine {
    Engine::builder().path(db).register(ship).open().await.unwrap()
}

/// Starts the run and waits until it has paused on its ask (an answer given while it is
/// still pausing drives it on in that process: not the story here).
async fn start_and_wait_for_the_ask(engine: &Engine, log_path: &str) -> Request {
    let run = engine
        .start_with_id(ship, RUN_ID, (log_path.to_owned(),))
        .await
        .unwrap();
    let settled = patiently("the run pauses on its ask", run.settled()).await;
    assert!(matches!(settled, Ok(Outcome::Paused(_))), "{settled:?}");
    pending_request(engine, RUN_ID, Some("Ship it?")).await
}

/// The child: starts the run, and answers once it asks. The answer's failpoint aborts the
/// process once the answer is flushed, before the run resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (db, log_path) = paths(Path::new(&dir));
    let engine = open(&db).await;
    let request = start_and_wait_for_the_ask(&engine, &log_path).await;
    std::fs::write(request_id_file(Path::new(&dir)), &request.id).unwrap();
    let result = engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await;
    panic!("the child was meant to die at the answer's failpoint, but the answer returned {result:?}");
}

/// Opens the database with the application, waits for the run to end, and checks that it
/// ran each step once and that the answer is alice's.
async fn the_run_resumes_at_the_next_open(db: &Path, log_path: &str, request_id: &str) {
    let engine = open(db).await;
    let outcome = patiently("the answered run completes", engine.wait(RUN_ID))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Completed(serde_json::json!(42)));
    assert_eq!(
        std::fs::read_to_string(log_path).unwrap(),
        "build\ndeploy\n",
        "each step ran once"
    );
    let requests = engine
        .pending(&PendingFilter {
            run_id: Some(RUN_ID.to_owned()),
            ..PendingFilter::default()
        })
        .await
        .unwrap();
    assert!(requests.is_empty(), "nothing is pending: {requests:?}");
    let request = engine.request(request_id).await.unwrap();
    assert_eq!(request.status, RequestStatus::Answered);
    assert_eq!(
        request.answer.map(|answer| answer.responder).as_deref(),
        Some("alice"),
        "the answer is the one given"
    );
    engine.close().await.unwrap();

    // The resumed run's wake-up is spent: the dump shows the request once, closed, and
    // nothing in the pending index.
    let mut out = Vec::new();
    hitl::store::dump_sled(db, &mut out).unwrap();
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|line| line["tree"] == "requests").collect();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["record"]["status"], "answered", "{requests:?}");
    assert!(
        !lines.iter().any(|line| line["tree"] == "pending"),
        "the pending index is empty: {lines:?}"
    );
}

#[test]
fn an_answer_flushed_by_a_process_killed_before_the_run_resumed_resumes_it_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .env("HITL_FAILPOINT", "after_answer_flush")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("hitl failpoint `after_answer_flush` hit"),
        "the child dies after the answer's flush ({}):\n{stderr}",
        output.status
    );
    let (db, log_path) = paths(dir.path());
    assert_eq!(
        std::fs::read_to_string(&log_path).unwrap(),
        "build\n",
        "the run did not go on in the child:\n{stderr}"
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(the_run_resumes_at_the_next_open(
            &db,
            &log_path,
            &std::fs::read_to_string(request_id_file(dir.path())).unwrap(),
        ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_through_an_operator_engine_resumes_the_run_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log_path) = paths(dir.path());
    let engine = open(&db).await;
    let request = start_and_wait_for_the_ask(&engine, &log_path).await;
    engine.close().await.unwrap();

    // What `hitl --db DIR answer` opens: it answers, and drives nothing.
    let operator = Engine::builder()
        .path(&db)
        .background(false)
        .register(ship)
        .open()
        .await
        .unwrap();
    operator
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    assert_eq!(
        operator.request(&request.id).await.unwrap().status,
        RequestStatus::Answered,
        "the operator engine reads its answer back"
    );
    operator.close().await.unwrap();
    assert_eq!(std::fs::read_to_string(&log_path).unwrap(), "build\n");

    the_run_resumes_at_the_next_open(&db, &log_path, &request.id).await;
}
