//! Answering, expiring and cancelling requests: the rules of `resolve`, applied in one store
//! transaction each, then the waiting step (or a durable wake-up) told.

use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::model::request::{RequestRecord, Responder, Response};
use crate::model::resolve;
use crate::store::RequestQuery;

use crate::model::view::Request;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Engine, Shared};

impl Engine {
    /// Answers a feedback request.
    ///
    /// The response is validated against the request — kind, options, text constraints, the
    /// stored JSON Schema, allowed responders — before anything is stored; a bad answer is an
    /// error and the request stays open. The first valid answer wins atomically. With a
    /// quorum, each allowed responder votes once; the request resolves at the n-th approval
    /// or the first rejection. A resolved request resumes its run: directly if it waits in
    /// memory, else by re-driving the paused run. It returns once the answer is durable.
    ///
    /// Cancel-safe: the answer runs as a task of its own, so a caller that stops waiting (a
    /// timeout around the call, a dropped HTTP handler) does not stop it half-way; the answer
    /// is stored, flushed and its run resumed all the same.
    ///
    /// # Errors
    ///
    /// [`Error::RequestNotFound`], [`Error::AlreadyAnswered`], [`Error::AlreadyVoted`], [`Error::RequestExpired`],
    /// [`Error::RequestCancelled`], [`Error::ResponderNotAllowed`], [`Error::InvalidAnswer`];
    /// [`Error::Closed`] if the runtime shuts down meanwhile.
    pub async fn respond(
        &self,
        request_id: &str,
        response: Response,
        responder: Responder,
    ) -> Result<Request> {
        // Once begun, an answer is seen through — stored, flushed, its run resumed — even if
        // the caller stops waiting (a timeout around this call, an HTTP client that hangs
        // up): it runs as a task of its own, which `close` waits out.
        let answering = self.shared.answers.enter();
        let engine = self.clone();
        let request_id = request_id.to_owned();
        let answer = tokio::spawn(async move {
            let _answering = answering;
            // Declared last, dropped first: `close` may return once `_answering` has gone.
            let engine = engine;
            engine.answer(&request_id, response, responder).await
        });
        match answer.await {
            Ok(answered) => answered,
            Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(Error::Closed),
        }
    }

    async fn answer(&self, request_id: &str, response: Response, responder: Responder) -> Result<Request> {
        let now = to_millis(self.shared.services.clock.now());
        // An answer at or after the deadline expires the request (its policy applied in the
        // same transaction) and is refused; `late` tells which of the two the change did.
        let late = AtomicBool::new(false);
        let change = |request: &RequestRecord| match resolve::answer(request, &response, &responder, now)? {
            resolve::Answered::Accepted(updated) => {
                late.store(false, Ordering::Relaxed);
                Ok(Some(updated))
            }
            resolve::Answered::Late(expired) => {
                late.store(true, Ordering::Relaxed);
                Ok(Some(expired))
            }
        };
        // From before the write until its flush returns, a run that reads this answer
        // flushes before acting on it.
        let resolving = self.shared.services.wakeups.resolving(request_id);
        let resolved = match self
            .shared
            .services
            .store
            .resolve_request(request_id, &change)
            .await
        {
            Ok(resolved) => resolved,
            Err(refused) => {
                resolving.settled();
                return Err(refused);
            }
        };
        let late = late.load(Ordering::Relaxed);
        self.shared.services.store.flush().await?;
        resolving.settled();
        crate::failpoint::hit("after_answer_flush");
        let updated = resolved.record;
        if let Some(wake) = resolved.wake {
            // Hand the stored record to the step waiting on it, if the run is live.
            self.shared.services.wakeups.deliver(&updated);
            // Resume a paused run now rather than when its wake-up fires, so that a caller's
            // `settled()` after this answer waits for the run's next settled state. The stored
            // wake-up is then spent; it stays only for an engine that cannot drive the run.
            if self.shared.resume_if_paused(&updated.run_id).await? {
                self.shared.services.store.remove_timer(&wake).await?;
            } else {
                self.shared.services.timers.arm(wake);
            }
        }
        if late {
            tracing::info!(
                request_id,
                responder = responder.name(),
                "late answer refused; the request expired"
            );
            return Err(Error::RequestExpired {
                request_id: request_id.to_owned(),
            });
        }
        tracing::info!(request_id, responder = responder.name(), status = ?updated.status, "feedback answered");
        Ok(updated.view())
    }
}

impl Shared {
    pub(crate) async fn load_request(&self, request_id: &str) -> Result<RequestRecord> {
        self.services
            .store
            .load_request(request_id)
            .await?
            .ok_or_else(|| Error::RequestNotFound {
                request_id: request_id.to_owned(),
            })
    }

    /// Resolves a request by its expiry policy if it is still pending and due.
    pub(super) async fn expire(&self, request_id: &str) -> Result<()> {
        let now = to_millis(self.services.clock.now());
        let change = |request: &RequestRecord| Ok(resolve::expire(request, now));
        let resolving = self.services.wakeups.resolving(request_id);
        let resolved = match self.services.store.resolve_request(request_id, &change).await {
            Ok(resolved) => resolved,
            Err(error) => {
                resolving.settled();
                return match error {
                    Error::RequestNotFound { .. } => Ok(()),
                    error => Err(error),
                };
            }
        };
        let Some(wake) = resolved.wake else {
            resolving.settled();
            return Ok(());
        };
        self.services.store.flush().await?;
        resolving.settled();
        tracing::info!(request_id, status = ?resolved.record.status, "feedback request expired");
        self.services.wakeups.deliver(&resolved.record);
        self.services.timers.arm(wake);
        Ok(())
    }

    /// Cancels every open request of a run (it was cancelled or failed). The run is not
    /// resumed, so the wake-up each resolution arms is disarmed again.
    pub(super) async fn cancel_requests(&self, run_id: &str, reason: &str) -> Result<()> {
        let now = to_millis(self.services.clock.now());
        let open = self
            .services
            .store
            .requests(&RequestQuery::pending(Some(run_id)))
            .await?;
        for request in open {
            self.cancel_request(&request.id, reason, now).await?;
        }
        Ok(())
    }

    /// Cancels one request if it is still open, disarming the wake-up the resolution arms
    /// (the run is not resumed for it). Whether it was open.
    pub(super) async fn cancel_request(&self, request_id: &str, reason: &str, now: u64) -> Result<bool> {
        let change = |request: &RequestRecord| Ok(resolve::cancel(request, reason, now));
        let resolved = self.services.store.resolve_request(request_id, &change).await?;
        if let Some(wake) = &resolved.wake {
            self.services.store.remove_timer(wake).await?;
        }
        self.services.wakeups.deliver(&resolved.record);
        Ok(resolved.changed)
    }
}
