//! Answering, expiring and cancelling requests: the rules of `resolve`, applied in one store
//! transaction each, then the waiting step (or a durable wake-up) told.

use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::model::request::{RequestRecord, RequestStatus, Responder, Response};
use crate::model::resolve::{self, wake_for as resolution_wake};
use crate::model::view::Request;

use super::{Engine, Shared};

impl Engine {
    /// Answers a feedback request.
    ///
    /// The response is validated against the request — kind, options, text constraints, the
    /// stored JSON Schema, allowed responders — before anything is stored; a bad answer is an
    /// error and the request stays open. The first valid answer wins atomically. With a
    /// quorum, each allowed responder votes once; the request resolves at the n-th approval
    /// or the first rejection. A resolved request resumes its run: directly if it waits in
    /// memory, else by re-driving the paused run.
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
        let (updated, late) = {
            let late = std::cell::Cell::new(false);
            let change = |request: &RequestRecord| match resolve::answer(request, &response, &responder, now)?
            {
                resolve::Answered::Accepted(updated) => {
                    late.set(false);
                    Ok(Some(updated))
                }
                resolve::Answered::Late(expired) => {
                    late.set(true);
                    Ok(Some(expired))
                }
            };
            (self.shared.resolve(request_id, &change)?, late.get())
        };
        self.shared.services.store.flush().await?;
        if updated.status != RequestStatus::Pending {
            self.shared.services.wakeups.deliver(&updated);
            // Resume a paused run now rather than when its wake-up fires, so that a caller's
            // `settled()` after this answer waits for the run's next settled state. The stored
            // wake-up is then spent; it stays only for an engine that cannot drive the run.
            let wake = resolution_wake(&updated);
            if self.shared.resume_if_paused(&updated.run_id)? {
                self.shared.services.store.remove_timer(&wake)?;
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
    pub(crate) fn load_request(&self, request_id: &str) -> Result<RequestRecord> {
        self.services
            .store
            .load_request(request_id)?
            .ok_or_else(|| Error::RequestNotFound {
                request_id: request_id.to_owned(),
            })
    }

    /// Changes a request in one transaction; a resolution also arms a wake-up of its run, so
    /// a paused run resumes even if this process dies right after.
    pub(super) fn resolve(
        &self,
        request_id: &str,
        change: &dyn Fn(&RequestRecord) -> Result<Option<RequestRecord>>,
    ) -> Result<RequestRecord> {
        self.services.store.update_request(request_id, change, true)
    }

    /// Wakes whoever waits on a request that just changed.
    pub(super) fn after_resolution(&self, request: &RequestRecord) {
        if request.status == RequestStatus::Pending {
            return;
        }
        self.services.wakeups.deliver(request);
        self.services.timers.arm(resolution_wake(request));
    }

    /// Resolves a request by its expiry policy if it is still pending and due.
    pub(super) async fn expire(&self, request_id: &str) -> Result<()> {
        let now = to_millis(self.services.clock.now());
        let change = |request: &RequestRecord| Ok(resolve::expire(request, now));
        let updated = match self.resolve(request_id, &change) {
            Ok(updated) => updated,
            Err(Error::RequestNotFound { .. }) => return Ok(()),
            Err(error) => return Err(error),
        };
        if updated.resolved_at == Some(now) {
            self.services.store.flush().await?;
            tracing::info!(request_id, status = ?updated.status, "feedback request expired");
            self.after_resolution(&updated);
        }
        Ok(())
    }

    /// Cancels every open request of a run (it was cancelled or failed).
    pub(super) fn cancel_requests(&self, run_id: &str, reason: &str) -> Result<()> {
        let now = to_millis(self.services.clock.now());
        for request in self.services.store.pending_requests(Some(run_id))? {
            let change = |request: &RequestRecord| Ok(resolve::cancel(request, reason, now));
            let updated = self.services.store.update_request(&request.id, &change, false)?;
            self.services.wakeups.deliver(&updated);
        }
        Ok(())
    }
}
