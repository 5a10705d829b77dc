//! Many asks: each has its own identity and its own answer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hitl::prelude::*;
use hitl::{PendingFilter, Request};
use serde::{Deserialize, Serialize};

/// Counts side effects by name; tests run concurrently, so each uses its own names.
static EFFECTS: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

fn effect(name: &str) {
    *EFFECTS.lock().unwrap().entry(name.to_owned()).or_default() += 1;
}

fn effects(name: &str) -> usize {
    EFFECTS.lock().unwrap().get(name).copied().unwrap_or(0)
}

#[task]
async fn record(name: String) -> String {
    effect(&name);
    name
}

async fn paused_on<T: serde::de::DeserializeOwned + std::fmt::Debug>(run: &hitl::Run<T>) -> Vec<Request> {
    match run.settled().await.unwrap() {
        Outcome::Paused(requests) => requests,
        other => panic!("expected the run to pause, got {other:?}"),
    }
}

async fn answer(engine: &Engine, request: &Request, response: Response) {
    engine
        .respond(&request.id, response, Responder::new("alice"))
        .await
        .unwrap();
}

// --- two asks in one task ------------------------------------------------------------------

#[workflow(inject_context)]
async fn two_questions(ctx: &TaskContext) -> hitl::Result<(String, String)> {
    let name = ctx.request_feedback(Feedback::text("Name?")).await?;
    record("two_questions:between".into()).await;
    let colour = ctx
        .request_feedback(Feedback::selection("Colour?", ["red", "blue"]))
        .await?;
    Ok((name.text().to_owned(), colour.selected().to_owned()))
}

#[tokio::test]
async fn two_asks_in_one_task_get_their_own_answers() {
    let engine = Engine::temporary().register(two_questions).open().await.unwrap();
    let run = engine.start(two_questions, ()).await.unwrap();

    let first = paused_on(&run).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].prompt, "Name?");
    answer(&engine, &first[0], Response::text("Ada")).await;

    let second = wait_for_pending(&engine, run.id(), "Colour?").await;
    answer(&engine, &second, Response::select("blue")).await;

    assert_eq!(
        run.wait().await.unwrap(),
        Outcome::Completed(("Ada".into(), "blue".into()))
    );
    assert_eq!(effects("two_questions:between"), 1);
    let steps: Vec<String> = engine
        .history(run.id())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step_id)
        .collect();
    assert_eq!(steps, ["text#0", "record#0", "selection#0"]);
}

/// Waits until the run has a pending request with this prompt.
async fn wait_for_pending(engine: &Engine, run_id: &str, prompt: &str) -> Request {
    hitl_workspace::pending_request(engine, run_id, Some(prompt)).await
}

// --- an ask inside a loop ------------------------------------------------------------------

#[workflow(inject_context)]
async fn three_rounds(ctx: &TaskContext) -> hitl::Result<Vec<String>> {
    let mut answers = Vec::new();
    for round in 0..3 {
        record(format!("three_rounds:body:{round}")).await;
        record("three_rounds:body".into()).await;
        let answer = ctx
            .request_feedback(Feedback::text(format!("Round {round}?")).key("round"))
            .await?;
        answers.push(answer.text().to_owned());
    }
    Ok(answers)
}

#[tokio::test]
async fn an_ask_in_a_loop_gets_a_distinct_answer_each_time_and_the_body_runs_once_per_iteration() {
    let engine = Engine::temporary().register(three_rounds).open().await.unwrap();
    let run = engine.start(three_rounds, ()).await.unwrap();
    for round in 0..3 {
        let request = wait_for_pending(&engine, run.id(), &format!("Round {round}?")).await;
        assert_eq!(request.step_id, format!("round#{round}"));
        answer(&engine, &request, Response::text(format!("answer {round}"))).await;
    }
    assert_eq!(
        run.wait().await.unwrap(),
        Outcome::Completed(vec!["answer 0".into(), "answer 1".into(), "answer 2".into()])
    );
    assert_eq!(
        effects("three_rounds:body"),
        3,
        "a loop-body step ran again on resume"
    );
    for round in 0..3 {
        assert_eq!(effects(&format!("three_rounds:body:{round}")), 1);
    }
}

// --- asks in two join! branches --------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Branches {
    legal: bool,
    security: bool,
    worker: Vec<String>,
}

#[task]
async fn slow_work(step: u32) -> String {
    tokio::time::sleep(Duration::from_millis(20)).await;
    effect(&format!("branches:work:{step}"));
    format!("work {step}")
}

#[workflow(inject_context)]
async fn reviews(ctx: &TaskContext) -> hitl::Result<Branches> {
    let (legal, security, worker) = tokio::join!(
        async {
            ctx.request_feedback(Feedback::approval("Legal review?").key("legal"))
                .await
        },
        async {
            ctx.request_feedback(Feedback::approval("Security review?").key("security"))
                .await
        },
        async {
            let mut done = Vec::new();
            for step in 0..3 {
                done.push(slow_work(step).await);
            }
            done
        },
    );
    Ok(Branches {
        legal: legal?.approved(),
        security: security?.approved(),
        worker,
    })
}

#[tokio::test]
async fn asks_in_join_branches_are_independent_and_a_working_branch_finishes_before_the_pause() {
    let engine = Engine::temporary().register(reviews).open().await.unwrap();
    let run = engine.start(reviews, ()).await.unwrap();

    let pending = paused_on(&run).await;
    assert_eq!(pending.len(), 2);
    for step in 0..3 {
        assert_eq!(
            effects(&format!("branches:work:{step}")),
            1,
            "the working branch paused early"
        );
    }

    let legal = pending.iter().find(|r| r.prompt == "Legal review?").unwrap();
    answer(&engine, legal, Response::approve()).await;
    // Answering one leaves exactly the other pending.
    let still = paused_on(&run).await;
    let prompts: Vec<&str> = still.iter().map(|r| r.prompt.as_str()).collect();
    assert_eq!(prompts, ["Security review?"]);

    answer(&engine, &still[0], Response::reject()).await;
    let outcome = run.wait().await.unwrap();
    let expected = Branches {
        legal: true,
        security: false,
        worker: vec!["work 0".into(), "work 1".into(), "work 2".into()],
    };
    assert_eq!(outcome, Outcome::Completed(expected));
    for step in 0..3 {
        assert_eq!(
            effects(&format!("branches:work:{step}")),
            1,
            "a branch step ran again"
        );
    }
}

// --- a failing try_join! branch cancels the other's request --------------------------------

#[derive(Debug, thiserror::Error)]
enum ReviewError {
    #[error("the scan found a vulnerability")]
    Vulnerable,
    #[error(transparent)]
    Hitl(#[from] hitl::Error),
}

#[task]
async fn security_scan() -> Result<(), ReviewError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Err(ReviewError::Vulnerable)
}

#[workflow(inject_context)]
async fn review_or_fail(ctx: &TaskContext) -> Result<bool, ReviewError> {
    let (answer, ()) = tokio::try_join!(
        async {
            let answer = ctx
                .request_feedback(Feedback::approval("Ship it?").timeout(Duration::from_secs(30)))
                .await?;
            Ok::<_, ReviewError>(answer)
        },
        async { security_scan().await },
    )?;
    Ok(answer.approved())
}

#[tokio::test]
async fn a_failing_try_join_branch_fails_the_run_and_cancels_its_open_requests() {
    let engine = Engine::temporary().register(review_or_fail).open().await.unwrap();
    let run = engine.start(review_or_fail, ()).await.unwrap();
    let Outcome::Failed(failure) = run.wait().await.unwrap() else {
        panic!("expected a failure")
    };
    assert_eq!(failure.message, "the scan found a vulnerability");
    assert!(
        engine
            .pending(&PendingFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let request = engine
        .history(run.id())
        .await
        .unwrap()
        .into_iter()
        .find_map(|step| step.output["request"].as_str().map(str::to_owned))
        .expect("the ask is in history");
    let request = engine.request(&request).await.unwrap();
    assert_eq!(request.status, hitl::RequestStatus::Cancelled);
    let error = engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap_err();
    assert!(matches!(error, hitl::Error::RequestCancelled { .. }), "{error}");
}
