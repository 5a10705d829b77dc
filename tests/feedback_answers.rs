//! Answering: validated before it is stored, first valid answer wins, quorums.

use std::sync::Arc;

use hitl::feedback::AnswerProblem;
use hitl::prelude::*;
use hitl::{Request, RequestStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "hitl::schemars")]
struct Refund {
    /// Amount in cents.
    amount: u32,
    reason: String,
}

#[workflow(inject_context)]
async fn every_kind(ctx: &TaskContext) -> hitl::Result<String> {
    let (approval, text, selection, multi, input) = tokio::join!(
        async {
            ctx.request_feedback(Feedback::approval("Approve?").responders(["alice", "bob"]))
                .await
        },
        async {
            ctx.request_feedback(
                Feedback::text("Ticket?")
                    .min_len(5)
                    .max_len(8)
                    .pattern("[A-Z]+-[0-9]+"),
            )
            .await
        },
        async {
            ctx.request_feedback(Feedback::selection("Region?", ["eu", "us"]))
                .await
        },
        async {
            ctx.request_feedback(
                Feedback::multi_selection("Channels?", ["email", "sms", "push"])
                    .min_count(1)
                    .max_count(2),
            )
            .await
        },
        async { ctx.request_feedback(Feedback::input::<Refund>("Refund?")).await },
    );
    Ok(format!(
        "{} {} {} {:?} {:?}",
        approval?.approved(),
        text?.text(),
        selection?.selected(),
        multi?.selected_all(),
        input?.value()
    ))
}

async fn paused(engine: &Engine) -> (hitl::Run<String>, Vec<Request>) {
    let run = engine.start(every_kind, ()).await.unwrap();
    let Outcome::Paused(requests) = run.settled().await.unwrap() else {
        panic!("expected a pause")
    };
    assert_eq!(requests.len(), 5);
    (run, requests)
}

fn by_prompt<'a>(requests: &'a [Request], prompt: &str) -> &'a Request {
    requests.iter().find(|r| r.prompt == prompt).unwrap()
}

#[tokio::test]
async fn each_invalid_answer_gets_its_typed_error_and_leaves_the_request_unchanged() {
    let engine = Engine::temporary().register(every_kind).open().await.unwrap();
    let (run, requests) = paused(&engine).await;
    let alice = || Responder::new("alice");
    let invalid = |error: hitl::Error| match error {
        hitl::Error::InvalidAnswer { problem, .. } => problem,
        other => panic!("expected an invalid answer, got {other}"),
    };

    let unknown = engine
        .respond("no-such-request", Response::approve(), alice())
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, hitl::Error::RequestNotFound { .. }),
        "{unknown}"
    );

    let approval = by_prompt(&requests, "Approve?");
    let wrong_kind = engine
        .respond(&approval.id, Response::text("yes"), alice())
        .await
        .unwrap_err();
    assert_eq!(
        invalid(wrong_kind),
        AnswerProblem::WrongKind {
            expected: "approval",
            got: "text"
        }
    );
    let not_allowed = engine
        .respond(&approval.id, Response::approve(), Responder::new("mallory"))
        .await
        .unwrap_err();
    assert!(
        matches!(not_allowed, hitl::Error::ResponderNotAllowed { .. }),
        "{not_allowed}"
    );
    assert!(
        not_allowed.to_string().contains("`alice`, `bob`"),
        "{not_allowed}"
    );

    let region = by_prompt(&requests, "Region?");
    let not_offered = engine
        .respond(&region.id, Response::select("mars"), alice())
        .await
        .unwrap_err();
    assert!(matches!(
        invalid(not_offered),
        AnswerProblem::OptionNotOffered { .. }
    ));

    let channels = by_prompt(&requests, "Channels?");
    let too_many = engine
        .respond(
            &channels.id,
            Response::select_all(["email", "sms", "push"]),
            alice(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        invalid(too_many),
        AnswerProblem::TooManySelections { max: 2, got: 3 }
    );
    let too_few = engine
        .respond(&channels.id, Response::select_all(Vec::<String>::new()), alice())
        .await
        .unwrap_err();
    assert_eq!(
        invalid(too_few),
        AnswerProblem::TooFewSelections { min: 1, got: 0 }
    );

    let ticket = by_prompt(&requests, "Ticket?");
    let too_long = engine
        .respond(&ticket.id, Response::text("OPS-123456"), alice())
        .await
        .unwrap_err();
    assert_eq!(invalid(too_long), AnswerProblem::TextTooLong { max: 8, got: 10 });
    let too_short = engine
        .respond(&ticket.id, Response::text("O-1"), alice())
        .await
        .unwrap_err();
    assert_eq!(invalid(too_short), AnswerProblem::TextTooShort { min: 5, got: 3 });
    let mismatch = engine
        .respond(&ticket.id, Response::text("ops-12"), alice())
        .await
        .unwrap_err();
    assert!(matches!(invalid(mismatch), AnswerProblem::PatternMismatch { .. }));

    let refund = by_prompt(&requests, "Refund?");
    let bad_value = Response::value(serde_json::json!({"amount": -5, "reason": "broken"}));
    let violation = engine.respond(&refund.id, bad_value, alice()).await.unwrap_err();
    let AnswerProblem::SchemaViolation(detail) = invalid(violation) else {
        panic!("expected a schema violation")
    };
    assert!(detail.contains("/amount"), "{detail}");

    // Nothing changed: every request is still pending with no answer, the run still paused.
    for request in &requests {
        let now = engine.request(&request.id).await.unwrap();
        assert_eq!(now.status, RequestStatus::Pending);
        assert_eq!(&now, request);
    }
    assert_eq!(run.info().await.unwrap().status, RunStatus::Paused);

    // Valid answers to all of them complete the run.
    engine
        .respond(&approval.id, Response::approve(), Responder::new("bob"))
        .await
        .unwrap();
    engine
        .respond(&ticket.id, Response::text("OPS-12"), alice())
        .await
        .unwrap();
    engine
        .respond(&region.id, Response::select("eu"), alice())
        .await
        .unwrap();
    engine
        .respond(&channels.id, Response::select_all(["push", "email"]), alice())
        .await
        .unwrap();
    let value = Response::input(&Refund {
        amount: 500,
        reason: "late".into(),
    })
    .unwrap();
    engine.respond(&refund.id, value, alice()).await.unwrap();
    let outcome = run.wait().await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Completed(
            r#"true OPS-12 eu ["email", "push"] Refund { amount: 500, reason: "late" }"#.to_owned()
        )
    );
}

#[workflow(inject_context)]
async fn single_approval(ctx: &TaskContext, round: u32) -> hitl::Result<String> {
    let answer = ctx
        .request_feedback(Feedback::approval(format!("Round {round}?")))
        .await?;
    Ok(answer.responder().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_threads_answering_at_once_one_wins_the_other_gets_already_answered() {
    let engine = Engine::temporary()
        .register(single_approval)
        .open()
        .await
        .unwrap();
    for round in 0..200 {
        let run = engine.start(single_approval, (round,)).await.unwrap();
        let Outcome::Paused(requests) = run.settled().await.unwrap() else {
            panic!("expected a pause")
        };
        let id: Arc<str> = requests[0].id.clone().into();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let answer = |name: &'static str| {
            let (engine, id, barrier) = (engine.clone(), Arc::clone(&id), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                engine
                    .respond(&id, Response::approve(), Responder::new(name))
                    .await
            })
        };
        let (a, b) = (answer("alice"), answer("bob"));
        let results = [a.await.unwrap(), b.await.unwrap()];
        let winners: Vec<&Request> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(
            matches!(loser, hitl::Error::AlreadyAnswered { .. }),
            "round {round}: {loser}"
        );
        let winner = winners[0].answer.as_ref().unwrap().responder.clone();
        assert_eq!(run.wait().await.unwrap(), Outcome::Completed(winner));
    }
}

#[workflow(inject_context)]
async fn change_board(ctx: &TaskContext) -> hitl::Result<(bool, Vec<String>)> {
    let answer = ctx
        .request_feedback(
            Feedback::approval("Change window?")
                .responders(["ann", "ben", "cat"])
                .quorum(2),
        )
        .await?;
    Ok((
        answer.approved(),
        answer.votes().iter().map(|v| v.responder.clone()).collect(),
    ))
}

#[tokio::test]
async fn a_quorum_of_two_needs_two_distinct_approvals_and_a_rejection_decides_at_once() {
    let engine = Engine::temporary().register(change_board).open().await.unwrap();

    // Approved by two of three; a repeat vote does not count.
    let run = engine.start(change_board, ()).await.unwrap();
    let Outcome::Paused(requests) = run.settled().await.unwrap() else {
        panic!("expected a pause")
    };
    let id = requests[0].id.clone();
    let after_one = engine
        .respond(&id, Response::approve(), Responder::new("ann"))
        .await
        .unwrap();
    assert_eq!(after_one.status, RequestStatus::Pending);
    assert_eq!(after_one.votes.len(), 1);
    let repeat = engine
        .respond(&id, Response::approve(), Responder::new("ann"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &repeat,
            hitl::Error::AlreadyVoted { responder, approvals: 1, quorum: 2, .. } if responder == "ann"
        ),
        "{repeat}"
    );
    assert!(repeat.to_string().contains("(1 of 2 approvals)"), "{repeat}");
    let outsider = engine
        .respond(&id, Response::approve(), Responder::new("dan"))
        .await
        .unwrap_err();
    assert!(matches!(outsider, hitl::Error::ResponderNotAllowed { .. }));
    let done = engine
        .respond(&id, Response::approve(), Responder::new("cat"))
        .await
        .unwrap();
    assert_eq!(done.status, RequestStatus::Answered);
    assert_eq!(
        run.wait().await.unwrap(),
        Outcome::Completed((true, vec!["ann".into(), "cat".into()]))
    );
    let late = engine
        .respond(&id, Response::approve(), Responder::new("ben"))
        .await
        .unwrap_err();
    assert!(matches!(late, hitl::Error::AlreadyAnswered { .. }));

    // One approval, then a rejection: rejected.
    let run = engine.start(change_board, ()).await.unwrap();
    let Outcome::Paused(requests) = run.settled().await.unwrap() else {
        panic!("expected a pause")
    };
    let id = requests[0].id.clone();
    engine
        .respond(&id, Response::approve(), Responder::new("ben"))
        .await
        .unwrap();
    let rejected = engine
        .respond(&id, Response::reject().comment("freeze"), Responder::new("ann"))
        .await
        .unwrap();
    assert_eq!(rejected.status, RequestStatus::Answered);
    assert_eq!(
        run.wait().await.unwrap(),
        Outcome::Completed((false, vec!["ben".into(), "ann".into()]))
    );
}

#[workflow(inject_context)]
async fn bad_request(ctx: &TaskContext) -> hitl::Result<()> {
    ctx.request_feedback(Feedback::selection("Pick", Vec::<String>::new()))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_request_built_wrong_is_an_error_in_the_workflow_and_nothing_is_stored() {
    let engine = Engine::temporary().register(bad_request).open().await.unwrap();
    let run = engine.start(bad_request, ()).await.unwrap();
    let Outcome::Failed(failure) = run.wait().await.unwrap() else {
        panic!("expected a failure")
    };
    assert!(
        failure.message.contains("a selection needs at least one option"),
        "{failure}"
    );
    assert!(engine.pending(&Default::default()).await.unwrap().is_empty());
}
