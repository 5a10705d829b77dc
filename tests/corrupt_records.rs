//! One run's damaged records fail that run, with a stored reason naming the step; the engine
//! still opens and every other run keeps working.

use std::path::Path;
use std::time::{Duration, Instant};

use hitl::prelude::*;
use hitl::{FailureKind, PendingFilter, Request, RunStatus};

#[task]
async fn prepare(item: String) -> String {
    format!("prepared {item}")
}

#[workflow(inject_context)]
async fn approve_item(ctx: &TaskContext, item: String, window_secs: u64) -> hitl::Result<String> {
    let prepared = prepare(item).await;
    let answer = ctx
        .request_feedback(
            Feedback::approval(format!("Ship {prepared}?")).timeout(Duration::from_secs(window_secs)),
        )
        .await?;
    Ok(format!("{prepared}: {}", answer.approved()))
}

async fn open(path: &Path) -> Engine {
    Engine::builder()
        .path(path)
        .register(approve_item)
        .open()
        .await
        .unwrap()
}

async fn pending_of(engine: &Engine, run_id: &str) -> Request {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let filter = PendingFilter {
            run_id: Some(run_id.to_owned()),
            ..Default::default()
        };
        if let Some(request) = engine.pending(&filter).await.unwrap().into_iter().next() {
            return request;
        }
        assert!(Instant::now() < deadline, "run {run_id} never asked");
        tokio::task::yield_now().await;
    }
}

/// Overwrites the journal entry of `step` of `run_id` with bytes that are not a record,
/// through sled itself (the database is closed). Formats 3 and 4 keep a run's first steps in its
/// run document (`runs.3`, keyed by the run id, see `hitl/src/store/sled/format.rs`), as a
/// chunk whose framing is kept here while the entry's record bytes are replaced.
fn damage_journal_entry(path: &Path, run_id: &str, step: &str) {
    // The engine releases sled's own lock shortly after `close` returns.
    let deadline = Instant::now() + Duration::from_secs(60);
    let db = loop {
        match sled::open(path) {
            Ok(db) => break db,
            Err(_) if Instant::now() < deadline => std::thread::yield_now(),
            Err(error) => panic!("cannot open the closed database: {error}"),
        }
    };
    let runs = db.open_tree("runs.3").unwrap();
    let chunk = runs
        .get(run_id)
        .unwrap()
        .filter(|document| {
            document
                .windows(step.len())
                .any(|window| window == step.as_bytes())
        })
        .unwrap_or_else(|| panic!("no journal entry {step} in the document of run {run_id}"));
    let key = run_id.as_bytes();
    let mut chunk = chunk.to_vec();
    let at = chunk
        .windows(step.len())
        .position(|window| window == step.as_bytes())
        .unwrap()
        + step.len();
    let len = usize::from(chunk[at]);
    assert!(len < 0x80, "a one-byte length");
    chunk[at + 1..at + 1 + len].fill(0xFF);
    runs.insert(key, chunk).unwrap();
    db.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_journal_record_fails_its_run_when_answered_and_other_runs_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = open(&path).await;
    let damaged = engine
        .start_with_id(approve_item, "damaged", ("a".into(), 0))
        .await
        .unwrap();
    let healthy = engine
        .start_with_id(approve_item, "healthy", ("b".into(), 0))
        .await
        .unwrap();
    assert!(matches!(damaged.settled().await.unwrap(), Outcome::Paused(_)));
    assert!(matches!(healthy.settled().await.unwrap(), Outcome::Paused(_)));
    drop((damaged, healthy)); // run handles hold the engine
    engine.close().await.unwrap();

    damage_journal_entry(&path, "damaged", "prepare#0");

    let engine = open(&path).await;
    let damaged_request = pending_of(&engine, "damaged").await;
    let healthy_request = pending_of(&engine, "healthy").await;
    // The answer is valid and stored; replaying the run then meets the damaged record.
    engine
        .respond(&damaged_request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    let run = engine.run(approve_item, "damaged").await.unwrap();
    let Outcome::Failed(failure) = tokio::time::timeout(Duration::from_secs(60), run.wait())
        .await
        .expect("the run with a damaged record never ended")
        .unwrap()
    else {
        panic!("expected the damaged run to fail")
    };
    assert_eq!(failure.kind, FailureKind::CorruptRecord);
    assert_eq!(failure.step.as_deref(), Some("prepare#0"));
    assert!(failure.message.contains("corrupt"), "{failure}");
    assert!(failure.message.contains("prepare#0"), "{failure}");

    engine
        .respond(&healthy_request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    assert_eq!(
        engine.wait("healthy").await.unwrap(),
        Outcome::Completed(serde_json::json!("prepared b: true"))
    );
    drop(run);
    engine.close().await.unwrap();

    // The next open does not trip over the damaged record again, and the failure is stored.
    let engine = open(&path).await;
    let info = engine.run_info("damaged").await.unwrap();
    assert_eq!(info.status, RunStatus::Failed);
    assert_eq!(info.failure.unwrap().kind, FailureKind::CorruptRecord);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_run_with_a_corrupt_record_is_failed_at_open_and_the_engine_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = open(&path).await;
    // A long in-memory window: the run is still `Running` when the engine closes.
    let run = engine
        .start_with_id(approve_item, "running", ("c".into(), 3_600))
        .await
        .unwrap();
    pending_of(&engine, run.id()).await;
    let other = engine
        .start_with_id(approve_item, "other", ("d".into(), 0))
        .await
        .unwrap();
    assert!(matches!(other.settled().await.unwrap(), Outcome::Paused(_)));
    drop((run, other)); // run handles hold the engine
    engine.close().await.unwrap();

    damage_journal_entry(&path, "running", "prepare#0");

    let engine = open(&path).await;
    let Outcome::Failed(failure) = engine.wait("running").await.unwrap() else {
        panic!("expected the damaged run to fail")
    };
    assert_eq!(failure.kind, FailureKind::CorruptRecord);
    assert_eq!(failure.step.as_deref(), Some("prepare#0"));
    // Its open request is resolved as cancelled with the run; the other run still asks.
    let open_requests = engine.pending(&PendingFilter::default()).await.unwrap();
    assert_eq!(
        open_requests
            .iter()
            .map(|request| request.run_id.as_str())
            .collect::<Vec<_>>(),
        ["other"]
    );
}
