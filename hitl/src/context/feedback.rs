//! The feedback step: make the request once, then wait for its resolution.
//!
//! First execution: the request, its waiting journal entry, its notifications and its expiry
//! timer are written in one transaction and flushed; then the step waits in memory. Replay:
//! the waiting entry names the request, nothing is written again (so no notification is
//! sent twice), and the step waits for — or at once finds — its resolution. Once resolved,
//! the resolution is journaled as the step's output.
//!
//! While it waits, the step tells its run whether it is still inside its in-memory window
//! ([`HumanWait`]); the engine pauses the run once every live branch waits on a human (or a
//! durable timer) and none is inside its window.

use std::future::Future;

use serde_json::json;

use super::{ContextFuture, TaskContext, context_future};
use crate::clock::{from_millis, to_millis};
use crate::error::{Error, Result};
use crate::feedback::{Answer, Feedback};
use crate::journal::{Frame, Position, Step};
use crate::journal::{InputHasher, halt};
use crate::model::outbox::OutboxRecord;
use crate::model::request::{OnExpiry, RequestRecord, RequestSpec, RequestStatus, Resolution};
use crate::model::step::{StepKind, Timer, TimerAction};
use crate::store::FORMAT_VERSION;

impl TaskContext {
    /// Asks a human and waits for the answer: in memory for [`Feedback::timeout`], then
    /// durably (the run pauses and holds no memory) until an answer, an expiry or a cancel.
    ///
    /// The answer is validated before it is stored, so the typed answer is always one the
    /// request allows. Steps that completed before the request never run again.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] for a request built wrong; [`Error::RequestExpired`] when
    /// the deadline passed with [`OnExpiry::Reject`]; [`Error::Cancelled`] when the run was
    /// cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use hitl::prelude::*;
    /// use hitl::feedback::Feedback;
    /// use hitl::{Response, Responder};
    ///
    /// #[workflow(inject_context)]
    /// async fn publish(ctx: &TaskContext, title: String) -> hitl::Result<String> {
    ///     let answer = ctx.request_feedback(Feedback::approval(format!("Publish {title}?"))).await?;
    ///     Ok(if answer.approved() { format!("published by {}", answer.responder()) } else { "kept as draft".into() })
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
    /// let engine = Engine::temporary().register(publish).open().await?;
    /// let run = engine.start(publish, ("Q3 report".into(),)).await?;
    /// let Outcome::Paused(requests) = run.settled().await? else { unreachable!() };
    /// engine.respond(&requests[0].id, Response::approve(), Responder::new("alice")).await?;
    /// assert_eq!(run.wait().await?, Outcome::Completed("published by alice".into()));
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn request_feedback<A: Answer>(
        &self,
        feedback: Feedback<A>,
    ) -> ContextFuture<impl Future<Output = Result<A>> + Send + use<A>> {
        let position = Position::caller();
        let frame = self.frame();
        context_future(async move {
            let (request_id, resolution) = request(frame, position, feedback.spec).await?;
            resolution.into_answer(&request_id)
        })
    }
}

/// Makes (or finds) the request of this step and waits for its resolution.
async fn request(frame: Frame, position: Position, spec: RequestSpec) -> Result<(String, Resolution)> {
    spec.check()?;
    let mut hasher = InputHasher::new();
    hasher.add(&spec);
    let Some((step, journaled)) =
        frame.begin(spec.step_name(), position, StepKind::Feedback, hasher.finish(), 0)
    else {
        return halt().await;
    };
    // Made by this execution (not found in the journal): an answer read back at once may
    // not be durable yet (see `wait`).
    let made_now = journaled.is_none();
    let request_id = match journaled {
        Some(record) if record.finished_at.is_some() => {
            let request_id = record.output["request"].as_str().unwrap_or_default().to_owned();
            match serde_json::from_value(record.output["resolution"].clone()) {
                Ok(resolution) => return Ok((request_id, resolution)),
                Err(error) => {
                    step.undecodable(record.line, error);
                    return halt().await;
                }
            }
        }
        Some(record) => record.output["request"].as_str().unwrap_or_default().to_owned(),
        None => match create(&step, &spec).await {
            Some(request_id) => request_id,
            None => return halt().await,
        },
    };
    let resolution = wait(&step, &request_id, spec.timeout_ms, made_now).await?;
    if let Resolution::Expired {
        policy: OnExpiry::FailRun,
    } = resolution
    {
        let error = Error::RequestExpired { request_id };
        step.run().fail(&error, Some(&step));
        return halt().await;
    }
    // No flush of its own: the resolution is already durable in the request, and a replay
    // that finds only the waiting entry reads it from there. The next durable step's flush
    // covers this write.
    if !step
        .complete_unflushed(json!({ "request": request_id, "resolution": resolution }))
        .await
    {
        return halt().await;
    }
    Ok((request_id, resolution))
}

/// Writes the request, its waiting journal entry, notifications and expiry, durably.
async fn create(step: &Step, spec: &RequestSpec) -> Option<String> {
    let run = step.run();
    let services = &run.services;
    let now = to_millis(services.clock.now());
    let request_id = crate::util::fresh_id();
    let expires_at = spec.expires_after_ms.map(|after| now + after);
    let record = RequestRecord {
        v: FORMAT_VERSION,
        id: request_id.clone(),
        run_id: run.id.clone(),
        workflow: run.workflow.to_owned(),
        step_id: step.id.clone(),
        location: step.location(),
        spec: spec.clone(),
        status: RequestStatus::Pending,
        created_at: now,
        expires_at,
        votes: Vec::new(),
        resolution: None,
        resolved_at: None,
    };
    let outbox: Vec<OutboxRecord> = spec
        .notify
        .iter()
        .enumerate()
        .map(|(index, notify)| OutboxRecord {
            v: FORMAT_VERSION,
            id: format!("{request_id}/{index}"),
            request_id: request_id.clone(),
            run_id: run.id.clone(),
            notify: notify.clone(),
            attempts: Vec::new(),
            delivered_at: None,
            gave_up: false,
            withdrawn: false,
            next_attempt_at: now,
        })
        .collect();
    let expiry = expires_at.map(|deadline| Timer {
        deadline,
        action: TimerAction::Expire(request_id.clone()),
    });
    let waiting = step.record_for(json!({ "request": request_id }), false);
    // Sync steps journaled before the ask are written first: the request must not be
    // visible before the steps that led to it.
    let written = match run.write_buffered().await {
        Ok(()) => services
            .store
            .create_request(run.epoch, &waiting, &record, &outbox, expiry.clone())
            .await
            .and_then(|()| crate::failpoint::hit_ok("after_request_write")),
        Err(error) => Err(error),
    };
    if let Err(error) = written {
        run.fail(&error, Some(step));
        return None;
    }
    if let Err(error) = services.store.flush().await {
        run.fail(&error, Some(step));
        return None;
    }
    tracing::info!(request_id = %request_id, kind = spec.kind.as_str(), "feedback requested");
    if let Some(expiry) = expiry {
        services.timers.arm(expiry);
    }
    if !outbox.is_empty() {
        services.outbox.notify_one();
    }
    Some(request_id)
}

/// Waits for the request to resolve: first inside the in-memory window, then as a
/// pausable wait. `made_now`: the request was made by this execution, so an answer its first
/// read finds came in since, and its answerer, whoever it is, may not have flushed it yet.
async fn wait(step: &Step, request_id: &str, timeout_ms: u64, made_now: bool) -> Result<Resolution> {
    let run = step.run();
    let services = &run.services;
    // Subscribe before the first read, so that no resolution can slip in between.
    let mut updates = services.wakeups.subscribe(request_id);
    let mut human = run.human_wait(request_id);
    // The one read: the request may have resolved before the subscription.
    let mut record =
        services
            .store
            .load_request(request_id)
            .await?
            .ok_or_else(|| Error::RequestNotFound {
                request_id: request_id.to_owned(),
            })?;
    let window_end = record.created_at + timeout_ms;
    let mut in_window = timeout_ms > 0 && to_millis(services.clock.now()) < window_end;
    if !in_window {
        human.leave_window();
    }
    if record.resolution.is_some() && (made_now || services.wakeups.is_resolving(request_id)) {
        // Acting on an answer a crash could still lose would run the next activity on it:
        // make it durable first. Besides a request made now, that is an answer this process
        // is still flushing: say a run in a `join!` resumed on one answer and reads another
        // given since. (A delivered record was flushed before it was handed over, but for a
        // cancel: its run stops, or a rewind sets the asking step aside. Another process's
        // resolution is durable once visible.)
        services.store.flush().await?;
        services.wakeups.flushed_since_read(request_id);
    }
    loop {
        if let Some(resolution) = record.resolution {
            human.resolved();
            return Ok(resolution);
        }
        // Whoever resolved the request hands over the record it stored: no read back.
        if in_window {
            tokio::select! {
                delivered = updates.changed() => record = RequestRecord::clone(&*delivered),
                () = services.clock.sleep_until(from_millis(window_end)) => {
                    in_window = false;
                    human.leave_window();
                }
            }
        } else {
            record = RequestRecord::clone(&*updates.changed().await);
        }
    }
}
