//! The engine on `MemStore`: the stories that need no restart, on the in-memory backend,
//! so that nothing in the engine depends on sled (the `Store` contract itself is checked by
//! `hitl::store::contract`, against both backends).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hitl::prelude::*;
use hitl::store::MemStore;
use hitl::{PendingFilter, RequestStatus};
use hitl_workspace::{WatchedClock, patiently, pending_request};

static BUILDS: AtomicU32 = AtomicU32::new(0);

#[task]
async fn build(service: String) -> String {
    BUILDS.fetch_add(1, Ordering::SeqCst);
    format!("{service}-v2")
}

#[task]
fn stamp(artifact: String) -> String {
    format!("{artifact}+stamped")
}

#[workflow(inject_context)]
async fn release(ctx: &TaskContext, service: String) -> hitl::Result<String> {
    let artifact = stamp(build(service).await);
    let answer = ctx
        .request_feedback(Feedback::approval(format!("Ship {artifact}?")).timeout(Duration::ZERO))
        .await?;
    Ok(format!(
        "{artifact}: {}",
        if answer.approved() { "shipped" } else { "held" }
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_pauses_and_an_answer_resumes_it_without_repeating_a_step() {
    let engine = Engine::builder()
        .store(MemStore::new())
        .register(release)
        .open()
        .await
        .unwrap();
    let run = engine.start(release, ("api".to_owned(),)).await.unwrap();
    let request = pending_request(&engine, run.id(), Some("Ship api-v2+stamped?")).await;
    let Outcome::Paused(open) = patiently("the run pauses", run.settled()).await.unwrap() else {
        panic!("the run should pause on its request");
    };
    assert_eq!(open.len(), 1);
    engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    let outcome = patiently("the run completes", run.wait()).await.unwrap();
    assert_eq!(outcome, Outcome::Completed("api-v2+stamped: shipped".to_owned()));
    assert_eq!(
        BUILDS.load(Ordering::SeqCst),
        1,
        "the build ran once across the pause"
    );
    let history = engine.history(run.id()).await.unwrap();
    let names: Vec<&str> = history.iter().map(|entry| entry.name.as_str()).collect();
    assert_eq!(
        names,
        ["build", "stamp", "approval"],
        "the sync step was journaled with the others"
    );
    let answered = engine
        .requests(&PendingFilter::default(), Some(RequestStatus::Answered))
        .await
        .unwrap();
    assert_eq!(answered.len(), 1);
    engine.close().await.unwrap();
}

#[workflow(inject_context)]
async fn expiring(ctx: &TaskContext) -> hitl::Result<bool> {
    let ask = Feedback::approval("Extend?")
        .expires_after(Duration::from_secs(3_600))
        .on_expiry(OnExpiry::Default(Response::reject().comment("nobody answered")));
    Ok(ctx.request_feedback(ask).await?.approved())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_timer_fires_on_the_memory_store() {
    let start: SystemTime = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let clock = WatchedClock::new(start);
    let engine = Engine::builder()
        .store(MemStore::new())
        .clock(clock.clone())
        .register(expiring)
        .open()
        .await
        .unwrap();
    let run = engine.start(expiring, ()).await.unwrap();
    pending_request(&engine, run.id(), Some("Extend?")).await;
    let deadline = start + Duration::from_secs(3_600);
    clock.wait_for_sleep_until(deadline).await;
    clock.advance(Duration::from_secs(3_600));
    let outcome = patiently("the expiry default resolves the run", run.wait())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Completed(false));
    engine.close().await.unwrap();
}

#[tokio::test]
async fn a_path_and_a_store_together_are_refused() {
    let error = Engine::builder()
        .path(std::env::temp_dir().join("hitl-never-created"))
        .store(MemStore::new())
        .open()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, hitl::Error::InvalidRequest { detail } if detail.contains("either `.path(..)`")),
        "{error}"
    );
    assert!(
        !std::env::temp_dir().join("hitl-never-created").exists(),
        "nothing was created"
    );
}
