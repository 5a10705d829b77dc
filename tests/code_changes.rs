//! Changing a workflow's code while runs of it are in flight.
//!
//! Two versions of one workflow (same registered name) stand for the code before and after a
//! redeploy: a run starts on v1, waits on a durable timer, the engine closes, and v2 resumes it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use hitl::clock::ManualClock;
use hitl::prelude::*;
use hitl_workspace::wait_for_steps;

/// Reservations made, by item: the two stories run concurrently, so a global count would see
/// the other story's reservation.
static RESERVED: std::sync::Mutex<BTreeMap<String, usize>> = std::sync::Mutex::new(BTreeMap::new());
static AUDITED: AtomicUsize = AtomicUsize::new(0);
/// Reservations shipped, by description: the two stories run concurrently.
static SHIPPED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

#[task]
async fn reserve(item: String, quantity: u32) -> String {
    *RESERVED.lock().unwrap().entry(item.clone()).or_default() += 1;
    format!("{quantity} x {item}")
}

#[task]
async fn audit(item: String) -> bool {
    AUDITED.fetch_add(1, Ordering::SeqCst);
    !item.is_empty()
}

#[task]
async fn ship(reservation: String) -> String {
    SHIPPED.lock().unwrap().push(reservation.clone());
    format!("shipped {reservation}")
}

#[workflow(name = "fulfil", inject_context)]
async fn fulfil_v1(ctx: &TaskContext, item: String) -> String {
    let reservation = reserve(item, 1).await;
    ctx.sleep(Duration::from_secs(60)).await;
    ship(reservation).await
}

/// v2 adds a step *before* the others: their identities must not shift.
#[workflow(name = "fulfil", inject_context)]
async fn fulfil_v2(ctx: &TaskContext, item: String) -> String {
    let audited = audit(item.clone()).await;
    assert!(audited);
    let reservation = reserve(item, 1).await;
    ctx.sleep(Duration::from_secs(60)).await;
    ship(reservation).await
}

/// v3 changes the input of a journaled step.
#[workflow(name = "fulfil", inject_context)]
async fn fulfil_v3(ctx: &TaskContext, item: String) -> String {
    let reservation = reserve(item, 2).await;
    ctx.sleep(Duration::from_secs(60)).await;
    ship(reservation).await
}

/// Starts a run on v1 and leaves it waiting on its timer, engine closed.
async fn run_on_v1(path: &std::path::Path, clock: &ManualClock, run_id: &str, item: &str) {
    let engine = Engine::builder()
        .path(path)
        .clock(clock.clone())
        .register(fulfil_v1)
        .open()
        .await
        .unwrap();
    engine
        .start_with_id(fulfil_v1, run_id, (item.to_owned(),))
        .await
        .unwrap();
    wait_for_steps(&engine, run_id, 2).await;
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_changes_a_new_step_inserted_before_others_keeps_their_identities_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
    run_on_v1(&path, &clock, "order-1", "book").await;

    let engine = Engine::builder()
        .path(&path)
        .clock(clock.clone())
        .register(fulfil_v2)
        .open()
        .await
        .unwrap();
    // Reported from the fingerprint while the run still waits, before it replays further.
    let change = engine
        .run_info("order-1")
        .await
        .unwrap()
        .definition_changed
        .expect("the changed code is reported");
    assert_eq!(change.added_sites, ["await audit(item.clone())"]);
    assert!(change.removed_sites.is_empty());

    clock.advance(Duration::from_secs(60));
    let outcome = engine.wait("order-1").await.unwrap();
    assert_eq!(outcome, Outcome::Completed(serde_json::json!("shipped 1 x book")));
    assert_eq!(
        RESERVED.lock().unwrap().get("book").copied(),
        Some(1),
        "reserve ran again"
    );
    assert_eq!(AUDITED.load(Ordering::SeqCst), 1, "the new step runs once");
    let ids: Vec<String> = engine
        .history("order-1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step_id)
        .collect();
    assert_eq!(ids, ["reserve#0", "audit#0", "sleep#0", "ship#0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_changes_a_changed_step_input_fails_the_run_with_non_determinism() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
    run_on_v1(&path, &clock, "order-2", "magazine").await;

    let engine = Engine::builder()
        .path(&path)
        .clock(clock.clone())
        .register(fulfil_v3)
        .open()
        .await
        .unwrap();
    let Outcome::Failed(failure) = engine.wait("order-2").await.unwrap() else {
        panic!("a changed input must fail the run");
    };
    assert!(failure.message.contains("non-determinism"), "{failure}");
    assert!(failure.message.contains("input differs"), "{failure}");
    assert_eq!(failure.step.as_deref(), Some("reserve#0"));
    assert!(failure.location.unwrap().contains("code_changes.rs:"));
    assert!(
        !SHIPPED
            .lock()
            .unwrap()
            .iter()
            .any(|shipped| shipped.contains("magazine")),
        "no later step may run"
    );
}
