//! Waiting for a human: in memory, paused, across restarts; expiry and cancellation.
//! Time is the engine's `ManualClock`, never a real sleep.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use hitl::clock::{Clock, ManualClock};
use hitl::prelude::*;
use hitl::{PendingFilter, Request, RequestStatus, Run};
use hitl_workspace::{WatchedClock, patiently, pending_request};

static AFTER: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// The first activity after the ask: counts how often the run continued past it.
#[task]
async fn after_answer(tag: String) -> String {
    *AFTER.lock().unwrap().entry(tag.clone()).or_default() += 1;
    tag
}

fn continued(tag: &str) -> usize {
    AFTER.lock().unwrap().get(tag).copied().unwrap_or(0)
}

#[workflow(inject_context)]
async fn ask(ctx: &TaskContext, tag: String, timeout_secs: u64) -> hitl::Result<String> {
    let answer = ctx
        .request_feedback(Feedback::approval("Go?").timeout(Duration::from_secs(timeout_secs)))
        .await?;
    after_answer(tag).await;
    Ok(format!("{} by {}", answer.approved(), answer.responder()))
}

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000_000))
}

/// The run's open request, which exists while the run still waits in memory (`Running`, so
/// `settled()` does not report it yet).
async fn first_pending(engine: &Engine, run_id: &str) -> Request {
    pending_request(engine, run_id, None).await
}

#[tokio::test]
async fn an_answer_during_the_in_memory_wait_is_delivered_directly_without_a_pause() {
    let engine = Engine::temporary()
        .clock(clock())
        .register(ask)
        .open()
        .await
        .unwrap();
    let run = engine.start(ask, ("direct".into(), 300)).await.unwrap();
    let request = first_pending(&engine, run.id()).await;
    assert_eq!(
        run.info().await.unwrap().status,
        RunStatus::Running,
        "it waits in memory"
    );
    engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    assert_eq!(
        run.wait().await.unwrap(),
        Outcome::Completed("true by alice".into())
    );
    assert_eq!(continued("direct"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_racing_the_timeout_is_delivered_exactly_once() {
    let clock = clock();
    let engine = Engine::temporary()
        .clock(clock.clone())
        .register(ask)
        .open()
        .await
        .unwrap();
    for round in 0..200 {
        let tag = format!("race-{round}");
        let run = engine.start(ask, (tag.clone(), 5)).await.unwrap();
        let request = first_pending(&engine, run.id()).await;
        let answering = {
            let engine = engine.clone();
            tokio::spawn(async move {
                engine
                    .respond(&request.id, Response::approve(), Responder::new("bob"))
                    .await
            })
        };
        clock.advance(Duration::from_secs(5)); // the in-memory window ends now
        answering.await.unwrap().unwrap();
        assert_eq!(
            run.wait().await.unwrap(),
            Outcome::Completed("true by bob".into()),
            "round {round}"
        );
        assert_eq!(
            continued(&tag),
            1,
            "round {round}: the answer was delivered twice"
        );
    }
}

#[tokio::test]
async fn cancelling_during_the_in_memory_wait_wakes_the_run() {
    let engine = Engine::temporary()
        .clock(clock())
        .register(ask)
        .open()
        .await
        .unwrap();
    let run = engine.start(ask, ("cancelled".into(), 3_600)).await.unwrap();
    let request = first_pending(&engine, run.id()).await;
    engine.cancel(run.id(), "superseded").await.unwrap();
    assert_eq!(
        run.wait().await.unwrap(),
        Outcome::Cancelled {
            reason: "superseded".into()
        }
    );
    assert_eq!(
        engine.request(&request.id).await.unwrap().status,
        RequestStatus::Cancelled
    );
    let error = engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap_err();
    assert!(matches!(error, hitl::Error::RequestCancelled { .. }), "{error}");
    assert_eq!(continued("cancelled"), 0);
}

#[tokio::test]
async fn cancelling_a_paused_run_cancels_its_requests() {
    let engine = Engine::temporary()
        .clock(clock())
        .register(ask)
        .open()
        .await
        .unwrap();
    let run = engine.start(ask, ("paused-cancel".into(), 0)).await.unwrap();
    let Outcome::Paused(requests) = run.settled().await.unwrap() else {
        panic!("expected a pause")
    };
    engine.cancel(run.id(), "no longer needed").await.unwrap();
    assert_eq!(
        run.wait().await.unwrap(),
        Outcome::Cancelled {
            reason: "no longer needed".into()
        }
    );
    assert_eq!(
        engine.request(&requests[0].id).await.unwrap().status,
        RequestStatus::Cancelled
    );
    assert!(
        engine
            .pending(&PendingFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_stored_while_no_process_runs_the_workflow_is_applied_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = clock();
    let engine = Engine::builder()
        .path(&path)
        .clock(clock.clone())
        .register(ask)
        .open()
        .await
        .unwrap();
    let run = engine
        .start_with_id(ask, "offline", ("offline".into(), 0))
        .await
        .unwrap();
    let Outcome::Paused(requests) = run.settled().await.unwrap() else {
        panic!("expected a pause")
    };
    drop(run);
    engine.close().await.unwrap();

    // An operator tool opens the directory without registering the workflow and answers.
    let operator = Engine::builder()
        .path(&path)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    operator
        .respond(&requests[0].id, Response::approve(), Responder::new("carol"))
        .await
        .unwrap();
    assert_eq!(
        operator.run_info("offline").await.unwrap().status,
        RunStatus::Paused
    );
    operator.close().await.unwrap();
    assert_eq!(continued("offline"), 0);

    let engine = Engine::builder()
        .path(&path)
        .clock(clock)
        .register(ask)
        .open()
        .await
        .unwrap();
    assert_eq!(
        engine.wait("offline").await.unwrap(),
        Outcome::Completed(serde_json::json!("true by carol"))
    );
    assert_eq!(continued("offline"), 1);
}

// --- expiry ------------------------------------------------------------------------------

#[workflow(inject_context)]
async fn expiring(ctx: &TaskContext, policy: String) -> hitl::Result<String> {
    let on_expiry = match policy.as_str() {
        "reject" => OnExpiry::Reject,
        "default" => OnExpiry::Default(Response::reject().comment("nobody answered")),
        _ => OnExpiry::FailRun,
    };
    let answer = ctx
        .request_feedback(
            Feedback::approval("Extend?")
                .expires_after(Duration::from_secs(3_600))
                .on_expiry(on_expiry),
        )
        .await;
    Ok(match answer {
        Ok(answer) => format!(
            "{} {} {:?}",
            answer.approved(),
            answer.responder(),
            answer.comment()
        ),
        Err(hitl::Error::RequestExpired { .. }) => "expired".to_owned(),
        Err(other) => return Err(other),
    })
}

/// Expires one second before the requests of `expiring`: the timer that fires next.
#[workflow(inject_context)]
async fn expires_first(ctx: &TaskContext) -> hitl::Result<bool> {
    let answer = ctx
        .request_feedback(
            Feedback::approval("Extend first?")
                .expires_after(Duration::from_secs(3_599))
                .on_expiry(OnExpiry::Reject),
        )
        .await;
    Ok(matches!(answer, Err(hitl::Error::RequestExpired { .. })))
}

#[tokio::test]
async fn expiry_resolves_the_request_by_each_policy() {
    let clock = WatchedClock::new(clock().now());
    let deadline = clock.now() + Duration::from_secs(3_600);
    let engine = Engine::temporary()
        .clock(clock.clone())
        .register(expiring)
        .register(expires_first)
        .open()
        .await
        .unwrap();
    let runs = [
        engine.start(expiring, ("reject".into(),)).await.unwrap(),
        engine.start(expiring, ("default".into(),)).await.unwrap(),
        engine.start(expiring, ("fail".into(),)).await.unwrap(),
    ];
    let mut requests = Vec::new();
    for run in &runs {
        let Outcome::Paused(pending) = run.settled().await.unwrap() else {
            panic!("expected a pause")
        };
        requests.push(pending[0].clone());
    }
    let first = engine.start(expires_first, ()).await.unwrap();
    assert!(matches!(first.settled().await.unwrap(), Outcome::Paused(_)));

    // One second early: the timer due now fires, and the timer task, having looked at the
    // three requests' expiries, goes back to sleep until their deadline. Only then is "they
    // did not expire" a fact rather than a race with a sleep.
    clock.advance(Duration::from_secs(3_599));
    assert_eq!(first.wait().await.unwrap(), Outcome::Completed(true));
    clock.wait_for_sleep_until(deadline).await;
    assert_eq!(
        engine.pending(&PendingFilter::default()).await.unwrap().len(),
        3,
        "expired early"
    );

    clock.advance(Duration::from_secs(1));
    assert_eq!(
        runs[0].wait().await.unwrap(),
        Outcome::Completed("expired".into())
    );
    assert_eq!(
        runs[1].wait().await.unwrap(),
        Outcome::Completed(r#"false hitl:expiry Some("nobody answered")"#.into())
    );
    let Outcome::Failed(failure) = runs[2].wait().await.unwrap() else {
        panic!("expected a failure")
    };
    assert!(failure.message.contains("has expired"), "{failure}");

    assert_eq!(
        engine.request(&requests[0].id).await.unwrap().status,
        RequestStatus::Expired
    );
    assert_eq!(
        engine.request(&requests[1].id).await.unwrap().status,
        RequestStatus::Answered
    );
    let late = engine
        .respond(&requests[0].id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap_err();
    assert!(matches!(late, hitl::Error::RequestExpired { .. }), "{late}");
    // History records the expiry.
    let history = engine.history(runs[0].id()).await.unwrap();
    assert_eq!(history[0].output["status"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_passed_while_no_process_ran_is_enforced_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let engine = Engine::builder()
        .path(&path)
        .clock(ManualClock::new(start))
        .register(expiring)
        .open()
        .await
        .unwrap();
    let run = engine
        .start_with_id(expiring, "weekend", ("default".into(),))
        .await
        .unwrap();
    assert!(matches!(run.settled().await.unwrap(), Outcome::Paused(_)));
    drop(run);
    engine.close().await.unwrap();

    // Reopened two days later.
    let engine = Engine::builder()
        .path(&path)
        .clock(ManualClock::new(start + Duration::from_secs(2 * 24 * 3_600)))
        .register(expiring)
        .open()
        .await
        .unwrap();
    assert_eq!(
        engine.wait("weekend").await.unwrap(),
        Outcome::Completed(serde_json::json!(r#"false hitl:expiry Some("nobody answered")"#))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_pause_always_ends_the_run_cancelled() {
    let engine = Engine::temporary()
        .clock(clock())
        .register(ask)
        .open()
        .await
        .unwrap();
    for round in 0..100 {
        let run = engine
            .start(ask, (format!("cancel-race-{round}"), 0))
            .await
            .unwrap();
        first_pending(&engine, run.id()).await; // the run is pausing or has paused
        engine.cancel(run.id(), "raced").await.unwrap();
        let outcome = patiently(format!("round {round}: the cancelled run ends"), run.wait())
            .await
            .unwrap();
        assert_eq!(
            outcome,
            Outcome::Cancelled {
                reason: "raced".into()
            },
            "round {round}"
        );
    }
}

#[tokio::test]
async fn cancelling_a_finished_run_is_an_error_that_changes_nothing() {
    let engine = Engine::temporary()
        .clock(clock())
        .register(ask)
        .open()
        .await
        .unwrap();
    let run = engine.start(ask, ("finished-cancel".into(), 0)).await.unwrap();
    let Outcome::Paused(requests) = run.settled().await.unwrap() else {
        panic!("expected a pause")
    };
    engine
        .respond(&requests[0].id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    let outcome = run.wait().await.unwrap();
    assert_eq!(outcome, Outcome::Completed("true by alice".into()));

    let refused = engine.cancel(run.id(), "too late").await.unwrap_err();
    assert!(
        matches!(
            refused,
            hitl::Error::RunFinished {
                status: RunStatus::Completed,
                ..
            }
        ),
        "{refused}"
    );
    let info = engine.run_info(run.id()).await.unwrap();
    assert_eq!((info.status, info.cancel_reason), (RunStatus::Completed, None));
    // A cancelled run cannot be cancelled again either.
    let second = engine.start(ask, ("twice-cancel".into(), 0)).await.unwrap();
    run_settles_paused(&second).await;
    engine.cancel(second.id(), "first").await.unwrap();
    let again = engine.cancel(second.id(), "second").await.unwrap_err();
    assert!(
        matches!(
            again,
            hitl::Error::RunFinished {
                status: RunStatus::Cancelled,
                ..
            }
        ),
        "{again}"
    );
    assert_eq!(
        engine
            .run_info(second.id())
            .await
            .unwrap()
            .cancel_reason
            .as_deref(),
        Some("first")
    );
}

async fn run_settles_paused<T: serde::de::DeserializeOwned>(run: &Run<T>) {
    assert!(matches!(run.settled().await.unwrap(), Outcome::Paused(_)));
}
