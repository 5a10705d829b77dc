//! `run.settled()` after an answer reports where the run went next, never a stale `Paused`
//! with no open request — whether the answer came from this engine or was stored by another
//! process while the application was stopped.

use std::time::Duration;

use hitl::prelude::*;
use hitl::{Request, Run};

#[workflow(inject_context)]
async fn two_asks(ctx: &TaskContext) -> hitl::Result<String> {
    let first = ctx.request_feedback(Feedback::text("Title?")).await?;
    let second = ctx
        .request_feedback(Feedback::approval(format!("Publish {}?", first.text())))
        .await?;
    Ok(format!("{} {}", first.text(), second.approved()))
}

#[workflow(inject_context)]
async fn board(ctx: &TaskContext) -> hitl::Result<bool> {
    let answer = ctx
        .request_feedback(
            Feedback::approval("Change freeze exception?")
                .responders(["alice", "bob", "carol"])
                .quorum(2),
        )
        .await?;
    Ok(answer.approved())
}

async fn paused_on<T: serde::de::DeserializeOwned>(run: &Run<T>) -> Request {
    match run.settled().await.unwrap() {
        Outcome::Paused(requests) => {
            assert_eq!(requests.len(), 1, "{requests:?}");
            requests.into_iter().next().unwrap()
        }
        _ => panic!("expected the run to pause on one request"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_right_after_each_answer_shows_the_next_request_then_the_result() {
    let engine = Engine::temporary().register(two_asks).open().await.unwrap();
    for round in 0..50 {
        let run = engine.start(two_asks, ()).await.unwrap();
        let first = paused_on(&run).await;
        assert_eq!(first.prompt, "Title?");
        engine
            .respond(&first.id, Response::text("Replay"), Responder::new("alice"))
            .await
            .unwrap();
        let second = paused_on(&run).await;
        assert_eq!(second.prompt, "Publish Replay?", "round {round}");
        engine
            .respond(&second.id, Response::approve(), Responder::new("alice"))
            .await
            .unwrap();
        assert_eq!(
            run.settled().await.unwrap(),
            Outcome::Completed("Replay true".to_owned()),
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_vote_that_does_not_resolve_leaves_the_run_paused_on_the_open_request() {
    let engine = Engine::temporary().register(board).open().await.unwrap();
    let run = engine.start(board, ()).await.unwrap();
    let request = paused_on(&run).await;
    engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    let still_open = paused_on(&run).await;
    assert_eq!(still_open.id, request.id);
    assert_eq!(still_open.votes.len(), 1);
    engine
        .respond(&request.id, Response::approve(), Responder::new("bob"))
        .await
        .unwrap();
    assert_eq!(run.settled().await.unwrap(), Outcome::Completed(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_stored_by_another_process_is_applied_before_open_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = Engine::builder()
        .path(&path)
        .register(two_asks)
        .open()
        .await
        .unwrap();
    let run = engine.start_with_id(two_asks, "offline", ()).await.unwrap();
    let first = paused_on(&run).await;
    drop(run);
    engine.close().await.unwrap();

    // An operator tool (no workflow registered, as the CLI's `--db` mode) stores the answer.
    let operator = Engine::builder().path(&path).open().await.unwrap();
    operator
        .respond(&first.id, Response::text("Offline"), Responder::new("carol"))
        .await
        .unwrap();
    operator.close().await.unwrap();

    let engine = Engine::builder()
        .path(&path)
        .register(two_asks)
        .open()
        .await
        .unwrap();
    let run = engine.run(two_asks, "offline").await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(60), paused_on(&run))
        .await
        .expect("the resumed run never paused on its second ask");
    assert_eq!(second.prompt, "Publish Offline?");
}
