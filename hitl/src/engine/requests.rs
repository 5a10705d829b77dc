//! Answering, expiring and cancelling requests: the rules of `resolve`, applied in one store
//! transaction each, then the waiting step (or a durable wake-up) told.

use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::model::request::{RequestRecord, Responder, Response};
use crate::model::resolve;
use crate::store::{RequestQuery, Resolved};

use crate::model::view::Request;
use std::sync::Arc;
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
    /// Cancel-safe: once the answer is stored, a caller that stops waiting (a timeout around
    /// the call, a dropped HTTP handler) does not stop it half-way; what remains (the flush,
    /// resuming the run) finishes in a task of its own.
    ///
    /// # Errors
    ///
    /// [`Error::RequestNotFound`], [`Error::AlreadyAnswered`], [`Error::AlreadyVoted`], [`Error::RequestExpired`],
    /// [`Error::RequestCancelled`], [`Error::ResponderNotAllowed`], [`Error::InvalidAnswer`].
    pub async fn respond(
        &self,
        request_id: &str,
        response: Response,
        responder: Responder,
    ) -> Result<Request> {
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
        // Once stored, an answer is seen through — flushed, handed over, its run resumed —
        // even if the caller stops waiting (a timeout around this call, an HTTP client that
        // hangs up): dropped before the end, this finishes it in a task of its own.
        let unfinished = Unfinished {
            shared: Arc::clone(&self.shared),
            resolved: Some(resolved),
        };
        if let Err(error) = self.shared.services.store.flush().await {
            // Not durable: the caller learns so, and the run resumes only if the next open
            // finds the answer.
            unfinished.disarm();
            return Err(error);
        }
        resolving.settled();
        crate::failpoint::hit("after_answer_flush");
        self.shared.hand_over(unfinished.resolved()).await?;
        let updated = unfinished.disarm().record;
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
    /// Hands a durable resolution to the step waiting on it, if its run is live, and resumes
    /// its run if paused.
    async fn hand_over(self: &Arc<Self>, resolved: &Resolved) -> Result<()> {
        let Some(wake) = &resolved.wake else {
            return Ok(());
        };
        self.services.wakeups.deliver(&resolved.record);
        // Resume a paused run now rather than when its wake-up fires, so that a caller's
        // `settled()` after this answer waits for the run's next settled state. The stored
        // wake-up is then spent; it stays only for an engine that cannot drive the run.
        if self.resume_if_paused(&resolved.record.run_id).await? {
            self.services.store.remove_timer(wake).await?;
        } else {
            self.services.timers.arm(wake.clone());
        }
        Ok(())
    }

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

/// An answer stored and not yet seen through by its `respond`: see [`Engine::respond`].
struct Unfinished {
    shared: Arc<Shared>,
    /// Taken by `disarm`, once seen through (or not to be).
    resolved: Option<Resolved>,
}

impl Unfinished {
    fn resolved(&self) -> &Resolved {
        self.resolved.as_ref().expect("armed until disarmed")
    }

    /// The answer is seen through (or not to be): hands it back.
    fn disarm(mut self) -> Resolved {
        self.resolved.take().expect("armed until disarmed")
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(resolved) = self.resolved.take() else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        // Outside a runtime (it is shutting down) the stored wake-up resumes the run at the
        // next open.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let answering = shared.answers.enter();
            runtime.spawn(async move {
                let _answering = answering;
                // Declared last, dropped first: `close` may return once `_answering` has gone.
                let shared = shared;
                let finished = async {
                    shared.services.store.flush().await?;
                    shared.hand_over(&resolved).await
                };
                if let Err(error) = finished.await {
                    tracing::warn!(request_id = %resolved.record.id, %error, "an answer its caller gave up on was stored, and could not be seen through");
                }
            });
        }
    }
}
