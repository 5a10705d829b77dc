//! The deadline is one rule in the engine, on the engine's clock: an answer given at or after
//! a request's `expires_at` expires the request by its policy and is refused — even when the
//! expiry timer has not fired yet (it never fires here: the clock below moves time without
//! waking sleepers, so only the answer can notice the deadline).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hitl::clock::{Clock, ClockSleep};
use hitl::prelude::*;
use hitl::{Request, RequestStatus, Run};

/// A clock whose sleeps never end: timers never fire, so the deadline can only be enforced
/// by the answer itself.
#[derive(Debug, Clone)]
struct FrozenTimers(Arc<Mutex<SystemTime>>);

impl FrozenTimers {
    fn new() -> Self {
        FrozenTimers(Arc::new(Mutex::new(UNIX_EPOCH + Duration::from_secs(1_000_000))))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for FrozenTimers {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }

    fn sleep_until(&self, _deadline: SystemTime) -> ClockSleep {
        Box::pin(std::future::pending()) as Pin<Box<_>>
    }
}

const HOUR: Duration = Duration::from_secs(3_600);

#[workflow(inject_context)]
async fn expiring(ctx: &TaskContext, policy: String, quorum: u32) -> hitl::Result<String> {
    let on_expiry = match policy.as_str() {
        "reject" => OnExpiry::Reject,
        "default" => OnExpiry::Default(Response::reject().comment("nobody answered")),
        _ => OnExpiry::FailRun,
    };
    let mut ask = Feedback::approval("Extend?")
        .expires_after(HOUR)
        .on_expiry(on_expiry);
    if quorum > 1 {
        ask = ask.responders(["alice", "bob", "carol"]).quorum(quorum);
    }
    match ctx.request_feedback(ask).await {
        Ok(answer) => Ok(format!("{} by {}", answer.approved(), answer.responder())),
        Err(hitl::Error::RequestExpired { .. }) => Ok("expired".to_owned()),
        Err(other) => Err(other),
    }
}

async fn paused_on(engine: &Engine, policy: &str, quorum: u32) -> (Run<String>, Request) {
    let run = engine.start(expiring, (policy.to_owned(), quorum)).await.unwrap();
    let Outcome::Paused(requests) = run.settled().await.unwrap() else {
        panic!("expected a pause")
    };
    (run, requests[0].clone())
}

async fn engine(clock: &FrozenTimers) -> Engine {
    Engine::temporary()
        .clock(clock.clone())
        .register(expiring)
        .open()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_answer_one_millisecond_before_the_deadline_is_accepted() {
    let clock = FrozenTimers::new();
    let engine = engine(&clock).await;
    let (run, request) = paused_on(&engine, "reject", 1).await;
    clock.advance(HOUR - Duration::from_millis(1));
    engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    assert_eq!(
        run.wait().await.unwrap(),
        Outcome::Completed("true by alice".into())
    );
}

#[tokio::test]
async fn an_answer_at_the_deadline_is_refused_and_each_policy_applies_instead() {
    let clock = FrozenTimers::new();
    let engine = engine(&clock).await;
    let (reject, reject_request) = paused_on(&engine, "reject", 1).await;
    let (default, default_request) = paused_on(&engine, "default", 1).await;
    let (fail, fail_request) = paused_on(&engine, "fail", 1).await;
    clock.advance(HOUR);

    for request in [&reject_request, &default_request, &fail_request] {
        let refused = engine
            .respond(&request.id, Response::approve(), Responder::new("alice"))
            .await
            .unwrap_err();
        assert!(matches!(refused, hitl::Error::RequestExpired { .. }), "{refused}");
        // A second late answer is refused the same way, whatever the policy made of it.
        let again = engine
            .respond(&request.id, Response::approve(), Responder::new("bob"))
            .await
            .unwrap_err();
        assert!(matches!(again, hitl::Error::RequestExpired { .. }), "{again}");
    }

    assert_eq!(reject.wait().await.unwrap(), Outcome::Completed("expired".into()));
    assert_eq!(
        default.wait().await.unwrap(),
        Outcome::Completed("false by hitl:expiry".into())
    );
    let Outcome::Failed(failure) = fail.wait().await.unwrap() else {
        panic!("a FailRun policy fails the run")
    };
    assert!(failure.message.contains("expired"), "{failure}");

    let reject_request = engine.request(&reject_request.id).await.unwrap();
    assert_eq!(reject_request.status, RequestStatus::Expired);
    assert!(reject_request.answer.is_none(), "the late answer was stored");
    let default_request = engine.request(&default_request.id).await.unwrap();
    assert_eq!(default_request.status, RequestStatus::Answered);
    assert_eq!(default_request.answer.unwrap().responder, "hitl:expiry");
}

#[tokio::test]
async fn a_quorum_whose_deadline_passes_between_two_votes_expires_with_the_votes_kept() {
    let clock = FrozenTimers::new();
    let engine = engine(&clock).await;
    let (run, request) = paused_on(&engine, "reject", 2).await;
    clock.advance(Duration::from_secs(60));
    let first = engine
        .respond(
            &request.id,
            Response::approve().comment("fine by me"),
            Responder::new("alice"),
        )
        .await
        .unwrap();
    assert_eq!(first.status, RequestStatus::Pending);

    clock.advance(HOUR);
    let refused = engine
        .respond(&request.id, Response::approve(), Responder::new("bob"))
        .await
        .unwrap_err();
    assert!(matches!(refused, hitl::Error::RequestExpired { .. }), "{refused}");

    let expired = engine.request(&request.id).await.unwrap();
    assert_eq!(expired.status, RequestStatus::Expired);
    let voters: Vec<_> = expired.votes.iter().map(|vote| vote.responder.as_str()).collect();
    assert_eq!(
        voters,
        ["alice"],
        "the vote before the deadline is kept, the late one is not"
    );
    assert_eq!(run.wait().await.unwrap(), Outcome::Completed("expired".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_right_after_a_restart_past_the_deadline_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = FrozenTimers::new();
    let open = || {
        Engine::builder()
            .path(&path)
            .clock(clock.clone())
            .register(expiring)
            .open()
    };
    let engine = open().await.unwrap();
    let (run, request) = paused_on(&engine, "default", 1).await;
    drop(run);
    engine.close().await.unwrap();

    // The process was down while the deadline passed; the first thing after the restart is
    // an answer.
    clock.advance(HOUR + Duration::from_secs(1));
    let engine = open().await.unwrap();
    let refused = engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap_err();
    assert!(matches!(refused, hitl::Error::RequestExpired { .. }), "{refused}");
    assert_eq!(
        engine.wait(&request.run_id).await.unwrap(),
        Outcome::Completed(serde_json::json!("false by hitl:expiry"))
    );
}
