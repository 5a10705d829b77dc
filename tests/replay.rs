//! Replay: what completed does not run again.
//!
//! Each story runs a workflow until it waits on a durable timer (a `ManualClock` that does
//! not move), closes the engine as a redeploy would, reopens the same directory, moves the
//! clock, and checks which side effects ran again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use hitl::clock::ManualClock;
use hitl::prelude::*;
use hitl_workspace::wait_for_steps;

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000_000))
}

// --- an awaited side effect in the workflow body itself -----------------------------------

static BODY_EFFECTS: AtomicUsize = AtomicUsize::new(0);
static AFTER_SLEEP: AtomicUsize = AtomicUsize::new(0);

/// Not a task: a plain async fn awaited in the body. The macro journals the await.
async fn send_welcome_email(to: &str) -> String {
    BODY_EFFECTS.fetch_add(1, Ordering::SeqCst);
    format!("sent to {to}")
}

#[task]
async fn record_done(receipt: String) -> String {
    AFTER_SLEEP.fetch_add(1, Ordering::SeqCst);
    receipt
}

#[workflow(inject_context)]
async fn onboarding(ctx: &TaskContext, user: String) -> String {
    let receipt = send_welcome_email(&user).await;
    ctx.sleep(Duration::from_secs(3600)).await;
    record_done(receipt).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_side_effect_in_the_body_is_not_repeated_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = clock();

    let engine = Engine::builder()
        .path(&path)
        .clock(clock.clone())
        .register(onboarding)
        .open()
        .await
        .unwrap();
    let run = engine.start(onboarding, ("ada".into(),)).await.unwrap();
    let run_id = run.id().to_owned();
    wait_for_steps(&engine, &run_id, 2).await; // the email, and the timer's deadline
    drop(run);
    engine.close().await.unwrap();
    assert_eq!(BODY_EFFECTS.load(Ordering::SeqCst), 1);

    let engine = Engine::builder()
        .path(&path)
        .clock(clock.clone())
        .register(onboarding)
        .open()
        .await
        .unwrap();
    clock.advance(Duration::from_secs(3600));
    let outcome = engine.wait(&run_id).await.unwrap();
    assert_eq!(outcome, Outcome::Completed(serde_json::json!("sent to ada")));
    assert_eq!(
        BODY_EFFECTS.load(Ordering::SeqCst),
        1,
        "the email was sent again on replay"
    );
    assert_eq!(AFTER_SLEEP.load(Ordering::SeqCst), 1);
}

// --- a completed run is never executed again ---------------------------------------------

static CHARGES: AtomicUsize = AtomicUsize::new(0);

#[task]
async fn charge(cents: u64) -> u64 {
    CHARGES.fetch_add(1, Ordering::SeqCst);
    cents
}

#[workflow]
async fn checkout(cents: u64) -> u64 {
    charge(cents).await + charge(1).await
}

#[tokio::test]
async fn a_completed_run_returns_its_stored_output_without_running_any_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = Engine::builder()
        .path(&path)
        .register(checkout)
        .open()
        .await
        .unwrap();
    let run = engine.start_with_id(checkout, "order-1", (500,)).await.unwrap();
    assert_eq!(run.wait().await.unwrap(), Outcome::Completed(501));
    assert_eq!(CHARGES.load(Ordering::SeqCst), 2);
    drop(run);
    engine.close().await.unwrap();

    let engine = Engine::builder()
        .path(&path)
        .register(checkout)
        .open()
        .await
        .unwrap();
    let again = engine.start_with_id(checkout, "order-1", (500,)).await.unwrap();
    assert_eq!(again.wait().await.unwrap(), Outcome::Completed(501));
    assert_eq!(
        CHARGES.load(Ordering::SeqCst),
        2,
        "a completed run ran a step again"
    );
    assert_eq!(engine.runs(&Default::default()).await.unwrap().len(), 1);
}

// --- join! of async blocks with same-named steps ------------------------------------------

static LABELS: AtomicUsize = AtomicUsize::new(0);

#[task]
async fn label(n: u32) -> String {
    LABELS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(u64::from(n % 3))).await;
    format!("label-{n}")
}

#[workflow(inject_context)]
async fn fan_out(ctx: &TaskContext) -> Vec<String> {
    let (left, right) = tokio::join!(
        async {
            let a = label(1).await;
            let b = label(2).await;
            format!("{a}+{b}")
        },
        async { label(3).await },
    );
    ctx.sleep(Duration::from_secs(60)).await;
    let last = label(4).await;
    vec![left, right, last]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_of_async_blocks_with_same_named_steps_replays_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = clock();
    let open = || {
        Engine::builder()
            .path(&path)
            .clock(clock.clone())
            .register(fan_out)
            .open()
    };

    let engine = open().await.unwrap();
    let run = engine.start(fan_out, ()).await.unwrap();
    let run_id = run.id().to_owned();
    wait_for_steps(&engine, &run_id, 4).await;
    let mut ids: Vec<String> = engine
        .history(&run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|step| step.step_id)
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "async0#0/label#0",
            "async0#0/label#1",
            "async1#0/label#0",
            "sleep#0"
        ]
    );
    drop(run);
    engine.close().await.unwrap();

    let engine = open().await.unwrap();
    clock.advance(Duration::from_secs(60));
    let outcome = engine.wait(&run_id).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Completed(serde_json::json!(["label-1+label-2", "label-3", "label-4"]))
    );
    assert_eq!(
        LABELS.load(Ordering::SeqCst),
        4,
        "a branch step ran again on replay"
    );
}

// --- nested orchestrations journal their own steps ----------------------------------------

static INNER: AtomicUsize = AtomicUsize::new(0);

#[task]
fn inner_step(n: u32) -> u32 {
    INNER.fetch_add(1, Ordering::SeqCst);
    n + 1
}

#[task(inject_context)]
async fn nested(ctx: &TaskContext, n: u32) -> u32 {
    let a = inner_step(n);
    ctx.sleep(Duration::from_secs(1)).await;
    a + inner_step(a)
}

#[workflow]
async fn outer(n: u32) -> u32 {
    nested(n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_orchestration_resumes_inside_without_repeating_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = clock();
    let open = || {
        Engine::builder()
            .path(&path)
            .clock(clock.clone())
            .register(outer)
            .open()
    };

    let engine = open().await.unwrap();
    let run = engine.start(outer, (1,)).await.unwrap();
    let run_id = run.id().to_owned();
    wait_for_steps(&engine, &run_id, 2).await;
    drop(run);
    engine.close().await.unwrap();

    let engine = open().await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        engine.wait(&run_id).await.unwrap(),
        Outcome::Completed(serde_json::json!(5))
    );
    assert_eq!(INNER.load(Ordering::SeqCst), 2);
    let ids: Vec<String> = engine
        .history(&run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step_id)
        .collect();
    assert_eq!(
        ids,
        [
            "nested#0/inner_step#0",
            "nested#0/sleep#0",
            "nested#0/inner_step#1",
            "nested#0"
        ]
    );
}
