//! Engines on a PostgreSQL store: a worker at its concurrency limit leaves new runs to
//! others, and closing a worker hands its runs over at once instead of after the lease.

mod postgres_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hitl::prelude::*;
use hitl_workspace::{eventually, patiently};
use postgres_common::{fresh_database, server_url};

/// Lets the blocked activities finish.
static GO: AtomicBool = AtomicBool::new(false);

/// An activity that works until the test lets it go.
#[task]
async fn long_job(n: u64) -> u64 {
    while !GO.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    n
}

#[workflow]
async fn job(n: u64) -> u64 {
    long_job(n).await + 1
}

/// A lease far longer than the test's patience: a run handed over before it lapses was
/// handed over on purpose.
const LONG_LEASE: Duration = Duration::from_secs(600);

async fn worker(url: &str, max_concurrent_runs: usize) -> Engine {
    Engine::builder()
        .postgres(url)
        .lease(LONG_LEASE)
        .max_concurrent_runs(max_concurrent_runs)
        .register(job)
        .open()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_limits_and_graceful_close_hand_runs_to_other_workers() {
    let Some(server) = server_url("postgres_limits_and_graceful_close_hand_runs_to_other_workers") else {
        return;
    };
    let url = fresh_database(&server).await;
    let busy = worker(&url, 1).await;
    let other = worker(&url, 100).await;
    for n in 0..3 {
        busy.start_with_id(job, format!("job-{n}"), (n,)).await.unwrap();
    }
    // The busy worker drives the first run; the two it had no room for go to the other.
    eventually("the runs spread over both workers", async || {
        (busy.driving().await == ["job-0"] && other.driving().await == ["job-1", "job-2"]).then_some(())
    })
    .await;
    // Closing the busy worker releases its lease: the other takes job-0 over now, not in
    // ten minutes.
    busy.close().await.unwrap();
    eventually("the closed worker's run is taken over", async || {
        (other.driving().await == ["job-0", "job-1", "job-2"]).then_some(())
    })
    .await;
    GO.store(true, Ordering::SeqCst);
    for n in 0..3 {
        assert_eq!(
            patiently("the run completes", other.wait(&format!("job-{n}")))
                .await
                .unwrap(),
            Outcome::Completed(serde_json::json!(n + 1))
        );
    }
    other.close().await.unwrap();
}
