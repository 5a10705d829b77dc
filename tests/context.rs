//! `TaskContext`: channels, durable sleep, journaled values, cancellation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use hitl::clock::ManualClock;
use hitl::prelude::*;
use hitl_workspace::{WatchedClock, wait_for_steps};

#[task]
async fn noop(n: u32) -> u32 {
    n
}

#[workflow(inject_context)]
async fn counter(ctx: &TaskContext, start: u32) -> hitl::Result<(u32, u64, String, u64)> {
    let channel = ctx.channel();
    channel.set("count", start).await?;
    let before: Option<u32> = channel.get("count").await?;
    let random = ctx.random();
    let uuid = ctx.uuid().to_string();
    let now = ctx.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    ctx.sleep(Duration::from_secs(24 * 3600)).await;
    channel.set("count", before.unwrap_or(0) + 1).await?;
    let after: u32 = channel.get("count").await?.unwrap_or(0);
    noop(after).await;
    Ok((after, random, uuid, now))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_values_journaled_values_and_a_durable_sleep_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let start = UNIX_EPOCH + Duration::from_secs(1_000_000);

    let engine = Engine::builder()
        .path(&path)
        .clock(ManualClock::new(start))
        .register(counter)
        .open()
        .await
        .unwrap();
    let run = engine.start_with_id(counter, "c", (41,)).await.unwrap();
    wait_for_steps(&engine, "c", 6).await; // set, get, random, uuid, now, sleep deadline
    let first: Vec<_> = engine.history("c").await.unwrap();
    drop(run);
    engine.close().await.unwrap();

    // A day later, in a new process: the timer has expired while nothing ran.
    let engine = Engine::builder()
        .path(&path)
        .clock(ManualClock::new(start + Duration::from_secs(24 * 3600)))
        .register(counter)
        .open()
        .await
        .unwrap();
    let outcome = engine.run(counter, "c").await.unwrap().wait().await.unwrap();
    let Outcome::Completed((after, random, uuid, now)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(after, 42);
    assert_eq!(now, 1_000_000, "ctx.now() replays the first execution's time");
    let value_of = |name: &str| {
        first
            .iter()
            .find(|step| step.name == name)
            .map(|step| step.output.clone())
            .unwrap()
    };
    assert_eq!(serde_json::json!(random), value_of("random"));
    assert_eq!(serde_json::json!(uuid), value_of("uuid"));
    let names: Vec<String> = engine
        .history("c")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step_id)
        .collect();
    assert_eq!(
        names,
        [
            "channel.set:count#0",
            "channel.get:count#0",
            "random#0",
            "uuid#0",
            "now#0",
            "sleep#0",
            "channel.set:count#1",
            "channel.get:count#1",
            "noop#0"
        ]
    );
}

#[tokio::test]
async fn a_durable_sleep_waits_for_the_engine_clock_not_real_time() {
    let start = UNIX_EPOCH + Duration::from_secs(50);
    let clock = WatchedClock::new(start);
    let engine = Engine::temporary()
        .clock(clock.clone())
        .register(counter)
        .open()
        .await
        .unwrap();
    let run = engine.start(counter, (1,)).await.unwrap();
    wait_for_steps(&engine, run.id(), 6).await;
    // The durable sleep is asleep on the engine clock until its deadline: from here on, only
    // moving that clock can end it.
    clock
        .wait_for_sleep_until(start + Duration::from_secs(24 * 3600))
        .await;
    assert_eq!(
        run.info().await.unwrap().status,
        RunStatus::Running,
        "the timer fired early"
    );
    clock.advance(Duration::from_secs(24 * 3600));
    assert!(matches!(run.wait().await.unwrap(), Outcome::Completed((2, ..))));
}

static AFTER_CANCEL: AtomicUsize = AtomicUsize::new(0);

#[task]
async fn must_not_run() {
    AFTER_CANCEL.fetch_add(1, Ordering::SeqCst);
}

#[workflow(inject_context)]
async fn cancels_itself(ctx: &TaskContext, ignore_error: bool) -> hitl::Result<()> {
    let result = ctx.cancel_workflow("the customer withdrew").await;
    assert!(matches!(&result, Err(hitl::Error::Cancelled { reason }) if reason == "the customer withdrew"));
    if ignore_error {
        must_not_run().await; // the engine stops the run at this step boundary
        return Ok(());
    }
    result
}

#[tokio::test]
async fn cancel_workflow_ends_the_run_cancelled_and_no_later_step_runs() {
    let engine = Engine::temporary().register(cancels_itself).open().await.unwrap();
    for ignore_error in [false, true] {
        let run = engine.start(cancels_itself, (ignore_error,)).await.unwrap();
        assert_eq!(
            run.wait().await.unwrap(),
            Outcome::Cancelled {
                reason: "the customer withdrew".into()
            }
        );
    }
    assert_eq!(AFTER_CANCEL.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn engine_cancel_stops_a_waiting_run() {
    let clock = ManualClock::new(UNIX_EPOCH);
    let engine = Engine::temporary()
        .clock(clock)
        .register(counter)
        .open()
        .await
        .unwrap();
    let run = engine.start(counter, (1,)).await.unwrap();
    wait_for_steps(&engine, run.id(), 6).await;
    engine.cancel(run.id(), "no longer needed").await.unwrap();
    assert_eq!(
        run.wait().await.unwrap(),
        Outcome::Cancelled {
            reason: "no longer needed".into()
        }
    );
    assert_eq!(run.info().await.unwrap().status, RunStatus::Cancelled);
}
