//! An operator engine (`EngineBuilder::background(false)`, what `hitl --db` opens) reads and
//! answers but drives nothing: a run left `Running` by a stopped application is not claimed
//! (its stored record is byte-for-byte unchanged), and it starts no run.

use std::path::Path;
use std::time::Duration;

use hitl::prelude::*;
use hitl_workspace::pending_request;

#[workflow(inject_context)]
async fn waits(ctx: &TaskContext) -> hitl::Result<bool> {
    // A long in-memory window: the run stays `Running` while it waits.
    let ask = Feedback::approval("Go?").timeout(Duration::from_secs(3_600));
    Ok(ctx.request_feedback(ask).await?.approved())
}

/// Every record of the `runs` tree, read with sled itself.
fn stored_runs(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    // A closed engine has let go of the database, but sled's own writer threads may hold its
    // file lock a moment longer (hitl's open waits that out the same way).
    let deadline = std::time::Instant::now() + hitl_workspace::PATIENCE;
    let db = loop {
        match sled::open(dir) {
            Ok(db) => break db,
            Err(error)
                if error.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(error) => panic!("the database does not open with sled: {error}"),
        }
    };
    // Formats 3 and 4 keep runs in `runs.3` (the sled backend's tree names are its own business;
    // this test looks under it only to prove that nothing was written).
    let runs = db.open_tree("runs.3").unwrap();
    assert!(!runs.is_empty(), "the runs tree holds the run");
    runs.iter()
        .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_engine_claims_no_run_and_starts_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let worker = Engine::builder()
        .path(&path)
        .register(waits)
        .open()
        .await
        .unwrap();
    let run = worker.start(waits, ()).await.unwrap();
    let run_id = run.id().to_owned();
    pending_request(&worker, &run_id, Some("Go?")).await;
    drop(run);
    worker.close().await.unwrap(); // the run stays `Running` on disk, as after a stop
    let before = stored_runs(&path);

    let operator = Engine::builder()
        .path(&path)
        .background(false)
        .register(waits)
        .open()
        .await
        .unwrap();
    assert_eq!(
        operator.run_info(&run_id).await.unwrap().status,
        RunStatus::Running
    );
    assert_eq!(
        operator.pending(&Default::default()).await.unwrap().len(),
        1,
        "it lists"
    );
    let refused = operator.start(waits, ()).await.unwrap_err();
    assert!(
        matches!(&refused, hitl::Error::InvalidRequest { detail } if detail.contains("background(false)")),
        "{refused}"
    );
    operator.close().await.unwrap();
    assert_eq!(
        stored_runs(&path),
        before,
        "the operator engine wrote nothing to the runs"
    );

    // A worker engine claims the run at open (the contrast that makes the check above mean something).
    let worker = Engine::builder()
        .path(&path)
        .register(waits)
        .open()
        .await
        .unwrap();
    pending_request(&worker, &run_id, Some("Go?")).await;
    worker.close().await.unwrap();
    assert_ne!(
        stored_runs(&path),
        before,
        "a worker engine claims the run it recovers"
    );
}
