//! The workflows of the database fixtures, `tests/fixtures/format_vN/` (named for the first
//! of them).
//!
//! `examples/make_format_fixture.rs` wrote those databases with these workflows, and
//! `tests/format_fixtures.rs` opens them with them: one definition, so the step-site
//! fingerprints stored with the runs are those of the code the test registers.
//!
//! **Frozen with the fixture.** The runs in the database were journaled against these
//! bodies: renaming a workflow, a task or a request key, or changing an argument, turns the
//! test into a test of code changes instead of a test of the stored format. Comments and
//! formatting may change; the steps may not.
//!
//! Every activity records its execution in this process ([`executions`]), keyed by
//! [`hitl::idempotency_key`] (`run id/step id`), so a test proves which steps ran after the
//! database was reopened — and that none of those journaled before ran again.

use std::sync::Mutex;
use std::time::Duration;

use hitl::prelude::*;

/// Where the paused approval's webhook goes: the discard port of the loopback interface,
/// where nothing listens, so the notification stays undelivered.
pub const UNREACHABLE_HOOK: &str = "http://127.0.0.1:9/hook";

/// How long the text request may stay open: long enough never to expire during a test.
pub const TEXT_EXPIRES_AFTER: Duration = Duration::from_secs(10 * 365 * 86_400);

/// How long the sleeping run sleeps, from when it reached `ctx.sleep`.
pub const NAP: Duration = Duration::from_secs(5);

/// The responders of the quorum approval (two approvals needed).
pub const QUORUM_RESPONDERS: [&str; 3] = ["alice", "bob", "carol"];

/// The ids of the runs in each fixture.
pub mod run_ids {
    /// Paused on an approval with an undelivered webhook notification.
    pub const PAUSED_APPROVAL: &str = "paused-approval";
    /// Paused on a text request with a deadline; a channel value set before the ask.
    pub const PAUSED_TEXT: &str = "paused-text";
    /// Paused on a quorum approval (2 of 3) that has one vote, alice's.
    pub const PAUSED_QUORUM: &str = "paused-quorum";
    /// Asleep in a durable sleep of [`NAP`](super::NAP); left `Running` by the close (a run
    /// waiting only on a timer does not pause), so the next open recovers it.
    pub const SLEEPING: &str = "sleeping";
    /// Completed.
    pub const COMPLETED: &str = "completed";
    /// Failed: the workflow returned an error.
    pub const FAILED: &str = "failed";
    /// Cancelled by `engine.cancel` while it waited on an approval.
    pub const CANCELLED: &str = "cancelled";
}

/// The reason the cancelled run was cancelled with.
pub const CANCEL_REASON: &str = "superseded by release 2";

/// The error the failed run's workflow returned.
pub const FAILURE_MESSAGE: &str = "the build of `billing` is red";

static EXECUTIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Every activity execution of these workflows in this process, in order, as
/// `run id/step id`.
pub fn executions() -> Vec<String> {
    EXECUTIONS.lock().unwrap().clone()
}

fn executed() {
    let key = hitl::idempotency_key().expect("an activity of a fixture workflow runs in a run");
    EXECUTIONS.lock().unwrap().push(key);
}

/// The work before an ask (journaled in the fixture).
#[task]
async fn prepare(service: String) -> String {
    executed();
    format!("plan for {service}")
}

/// The work after an ask (not yet run in the fixture).
#[task]
async fn finish(plan: String) -> String {
    executed();
    format!("done: {plan}")
}

/// Prepares, asks for an approval (notifying [`UNREACHABLE_HOOK`]), and finishes.
#[workflow(inject_context)]
pub async fn approve_deploy(ctx: &TaskContext, service: String) -> hitl::Result<String> {
    let plan = prepare(service.clone()).await;
    let answer = ctx
        .request_feedback(
            Feedback::approval(format!("Deploy {service}?"))
                .details(format!("The plan: **{plan}**"))
                .notify(Notify::webhook(UNREACHABLE_HOOK)),
        )
        .await?;
    if !answer.approved() {
        return Ok(format!("rejected by {}", answer.responder()));
    }
    let done = finish(plan).await;
    Ok(format!("{done}; approved by {}", answer.responder()))
}

/// Prepares, keeps a ticket prefix in a channel, asks for a ticket (with a deadline), and
/// finishes with the prefix read back from the channel.
#[workflow(inject_context)]
pub async fn ask_ticket(ctx: &TaskContext, service: String) -> hitl::Result<String> {
    let plan = prepare(service.clone()).await;
    ctx.channel().set("prefix", "OPS").await?;
    let answer = ctx
        .request_feedback(
            Feedback::text(format!("Ticket for {service}?"))
                .pattern("[A-Z]+-[0-9]+")
                .expires_after(TEXT_EXPIRES_AFTER)
                .on_expiry(OnExpiry::Reject),
        )
        .await?;
    let prefix: Option<String> = ctx.channel().get("prefix").await?;
    let done = finish(plan).await;
    Ok(format!(
        "{done}; ticket {} (prefix {})",
        answer.text(),
        prefix.unwrap_or_default()
    ))
}

/// Prepares, asks for two approvals of [`QUORUM_RESPONDERS`], and finishes.
#[workflow(inject_context)]
pub async fn approve_quorum(ctx: &TaskContext, service: String) -> hitl::Result<String> {
    let plan = prepare(service.clone()).await;
    let answer = ctx
        .request_feedback(
            Feedback::approval(format!("Two approvals to deploy {service}?"))
                .responders(QUORUM_RESPONDERS)
                .quorum(2),
        )
        .await?;
    let voters: Vec<&str> = answer
        .votes()
        .iter()
        .map(|vote| vote.responder.as_str())
        .collect();
    let done = finish(plan).await;
    Ok(format!(
        "{done}; approved: {}, votes of {}",
        answer.approved(),
        voters.join("+")
    ))
}

/// Prepares, sleeps durably for [`NAP`], and finishes.
#[workflow(inject_context)]
pub async fn nap(ctx: &TaskContext, service: String) -> String {
    let plan = prepare(service).await;
    ctx.sleep(NAP).await;
    finish(plan).await
}

/// Prepares, and returns.
#[workflow]
pub async fn quick(service: String) -> String {
    prepare(service).await
}

/// Prepares, then fails with `message`.
#[workflow]
pub async fn broken(service: String, message: String) -> Result<String, String> {
    let _plan = prepare(service).await;
    Err(message)
}

/// Registers every workflow of the fixture.
pub fn register(builder: hitl::EngineBuilder) -> hitl::EngineBuilder {
    builder
        .register(approve_deploy)
        .register(ask_ticket)
        .register(approve_quorum)
        .register(nap)
        .register(quick)
        .register(broken)
}
