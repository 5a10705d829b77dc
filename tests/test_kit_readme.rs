//! The README's "Testing your workflows" tests, verbatim (`tests/readme.rs` checks it).

use std::time::Duration;

use hitl::prelude::*;
use hitl::testing::TestEngine;

#[task]
async fn refund(order: String) -> String {
    format!("refund of {order} sent to the payment provider") // the tests mock it
}

#[workflow(inject_context)]
async fn refund_request(ctx: &TaskContext, order: String) -> hitl::Result<String> {
    let ask = Feedback::approval(format!("Refund order {order}?"))
        .expires_after(Duration::from_secs(48 * 3600))
        .notify(Notify::email("support@example.com"));
    match ctx.request_feedback(ask).await {
        Ok(answer) if answer.approved() => Ok(refund(order).await),
        Ok(answer) => Ok(format!("refused by {}", answer.responder())),
        Err(hitl::Error::RequestExpired { .. }) => Ok("expired".to_owned()),
        Err(other) => Err(other),
    }
}

#[tokio::test]
async fn an_approved_refund_is_paid_once_even_across_a_redeploy() -> hitl::Result<()> {
    let mut t = TestEngine::builder()
        .register(refund_request)
        .mock_value("refund", "refund r-1 paid")
        .open()
        .await?;
    let run = t.engine().start(refund_request, ("o-7".to_owned(),)).await?;
    let ask = t.next_request(&run).await;
    assert_eq!(ask.prompt, "Refund order o-7?");
    assert_eq!(t.notifications().await[0].to, "support@example.com");

    t.restart().await?; // the process stops while the run waits; a new one opens
    t.answer(&ask, Response::approve(), "dana").await?;
    let outcome = t.run(&run).wait().await?;
    assert_eq!(outcome, Outcome::Completed("refund r-1 paid".to_owned()));
    assert_eq!(t.executions("refund"), 1);
    t.close().await
}

#[tokio::test]
async fn an_unanswered_refund_expires_after_two_days() -> hitl::Result<()> {
    let t = TestEngine::builder().register(refund_request).open().await?;
    let run = t.engine().start(refund_request, ("o-8".to_owned(),)).await?;
    t.next_request(&run).await;
    t.advance(Duration::from_secs(48 * 3600)).await; // microseconds, not two days
    assert_eq!(run.wait().await?, Outcome::Completed("expired".to_owned()));
    assert_eq!(t.executions("refund"), 0);
    t.close().await
}
