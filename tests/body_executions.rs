//! An orchestration body runs once per resume: the code between its steps runs again only
//! when the run is driven again, never twice for one answer.

use std::sync::atomic::{AtomicUsize, Ordering};

use hitl::prelude::*;

static BEFORE_FIRST: AtomicUsize = AtomicUsize::new(0);
static BETWEEN: AtomicUsize = AtomicUsize::new(0);
static AFTER_SECOND: AtomicUsize = AtomicUsize::new(0);

#[workflow(inject_context)]
async fn two_asks(ctx: &TaskContext) -> hitl::Result<bool> {
    BEFORE_FIRST.fetch_add(1, Ordering::SeqCst);
    let first = ctx.request_feedback(Feedback::approval("First?")).await?;
    BETWEEN.fetch_add(1, Ordering::SeqCst);
    let second = ctx.request_feedback(Feedback::approval("Second?")).await?;
    AFTER_SECOND.fetch_add(1, Ordering::SeqCst);
    Ok(first.approved() && second.approved())
}

fn counts() -> [usize; 3] {
    [
        BEFORE_FIRST.load(Ordering::SeqCst),
        BETWEEN.load(Ordering::SeqCst),
        AFTER_SECOND.load(Ordering::SeqCst),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_asks_with_the_default_window_run_the_body_three_times_in_all() {
    let engine = Engine::temporary().register(two_asks).open().await.unwrap();
    let run = engine.start(two_asks, ()).await.unwrap();
    let Outcome::Paused(first) = run.settled().await.unwrap() else {
        panic!("expected a pause on the first ask")
    };
    assert_eq!(counts(), [1, 0, 0], "the first execution stops at the first ask");

    engine
        .respond(&first[0].id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    let Outcome::Paused(second) = run.settled().await.unwrap() else {
        panic!("expected a pause on the second ask")
    };
    assert_eq!(second[0].prompt, "Second?");
    assert_eq!(counts(), [2, 1, 0], "one replay for the first answer");

    engine
        .respond(&second[0].id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    assert_eq!(run.wait().await.unwrap(), Outcome::Completed(true));
    assert_eq!(
        counts(),
        [3, 2, 1],
        "one replay for the second answer: 6 body segments in all"
    );
}
