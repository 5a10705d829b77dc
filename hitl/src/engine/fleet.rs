//! Many workers on one shared store ([`Store::shared`](crate::store::Store::shared)):
//! leases, takeover, and what other processes did.
//!
//! Two background tasks run beside the timer loop when the store is shared:
//!
//! * the **lease loop**, every third of the lease: renews the lease of every run this engine
//!   drives (a renewal that is refused means another worker took the run: it is dropped at
//!   once, its driver aborted, nothing more written), claims lapsed runs while there is room
//!   (their worker died, stalled or shut down), arms the timers other workers stored, and
//!   looks again at the requests its steps wait on. This polling is the guarantee: nothing
//!   another process did stays unseen longer than one round.
//! * the **event loop**, which acts on the store's events ([`StoreEvent`]) at once: a
//!   resolution wakes the waiting step or resumes the paused run, a timer is armed, a ready
//!   run claimed. Events are only hints that make it fast.
//!
//! Leases are measured on the store's clock: each round reads it and keeps the offset to
//! the engine's, so workers whose clocks disagree still agree on who holds a run.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::model::request::RequestStatus;
use crate::store::{StoreErrorKind, StoreEvent, StoreEvents};

use super::Shared;

impl Shared {
    /// `(now, until)` for a lease taken or renewed now, on the store's clock.
    pub(super) fn lease_window(&self) -> (u64, u64) {
        let engine_now = to_millis(self.services.clock.now());
        let now = engine_now.saturating_add_signed(self.lease_offset.load(Ordering::Relaxed));
        (now, now + self.lease.as_millis() as u64)
    }

    /// Reads the store's clock and keeps its offset to the engine's.
    pub(super) async fn sync_lease_clock(&self) -> Result<()> {
        if let Some(store_now) = self.services.store.clock().await? {
            let engine_now = to_millis(self.services.clock.now());
            self.lease_offset
                .store(store_now as i64 - engine_now as i64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Renews the lease of every run driven here; drops the runs another worker took.
    async fn renew_leases(&self) -> Result<()> {
        let held: Vec<(String, u64)> = self
            .live
            .lock()
            .await
            .iter()
            .map(|(run_id, live)| (run_id.clone(), live.state.epoch))
            .collect();
        let (_, until) = self.lease_window();
        for (run_id, epoch) in held {
            match self
                .services
                .store
                .renew_lease(&run_id, &self.owner, epoch, until)
                .await
            {
                Ok(()) => {}
                Err(Error::Storage(error)) if error.kind() == StoreErrorKind::Conflict => {
                    self.drop_lost_run(&run_id, epoch).await;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Stops driving a run that another worker claimed (this one stalled past its lease):
    /// its driver is aborted, so it writes nothing more; the new holder replays it.
    async fn drop_lost_run(&self, run_id: &str, epoch: u64) {
        let lost = self.forget_lost(run_id, epoch).await;
        if let Some(mut lost) = lost {
            tracing::warn!(
                run_id,
                epoch,
                "another worker took this run over (its lease lapsed here); dropping it"
            );
            if let Some(driver) = lost.driver.take() {
                driver.abort();
            }
        }
    }

    /// Arms the timers due within the next round that any worker stored.
    async fn poll_timers(&self) -> Result<()> {
        let horizon = to_millis(self.services.clock.now()) + self.lease.as_millis() as u64;
        for timer in self.services.store.due_timers(horizon, 10_000).await? {
            self.services.timers.arm(timer);
        }
        Ok(())
    }

    /// Hands the waiting steps the requests another process resolved.
    async fn poll_waiting(&self) -> Result<()> {
        for request_id in self.services.wakeups.waiting() {
            if let Some(record) = self.services.store.load_request(&request_id).await?
                && record.status != RequestStatus::Pending
            {
                self.services.wakeups.deliver(&record);
            }
        }
        Ok(())
    }

    /// One round of the lease loop.
    async fn tend(self: &Arc<Self>) -> Result<()> {
        self.sync_lease_clock().await?;
        self.renew_leases().await?;
        if !self.closed.load(Ordering::SeqCst) {
            self.take_over().await?;
        }
        self.poll_timers().await?;
        // Notifications other workers stored (or whose sender died) are this one's to try too.
        self.services.outbox.notify_one();
        self.poll_waiting().await
    }

    /// Acts on what another process did.
    async fn on_event(self: &Arc<Self>, event: StoreEvent) -> Result<()> {
        match event {
            StoreEvent::RequestResolved { run_id, request_id } => {
                // Only a worker whose step waits on the request reads it.
                if self.services.wakeups.is_waiting(&request_id)
                    && let Some(record) = self.services.store.load_request(&request_id).await?
                {
                    self.services.wakeups.deliver(&record);
                }
                // A paused run is claimed by one worker; elsewhere this does nothing.
                self.resume_if_paused(&run_id).await.map(drop)
            }
            StoreEvent::TimerArmed { .. } => self.poll_timers().await,
            StoreEvent::RunReady { .. } => self.take_over().await,
            _ => self.tend().await,
        }
    }

    /// Gives up the leases of the runs driven here (the engine is closing), so that other
    /// workers take them over at once instead of after the lease. The drivers are stopped
    /// first, so nothing is written after a release.
    pub(super) async fn release_leases(&self, released: Vec<(String, u64)>) {
        for (run_id, epoch) in released {
            if let Err(error) = self
                .services
                .store
                .release_lease(&run_id, &self.owner, epoch)
                .await
            {
                tracing::debug!(%run_id, %error, "could not release a lease; it lapses instead");
            }
        }
    }
}

/// Renews, takes over and polls every third of the lease, until the engine is gone.
pub(super) async fn lease_loop(shared: Weak<Shared>) {
    loop {
        let round = match shared.upgrade() {
            Some(shared) => shared.lease / 3,
            None => return,
        };
        // Leases are wall-clock (the store's), not the engine clock a test may hold still.
        tokio::time::sleep(round.max(Duration::from_millis(10))).await;
        let Some(shared) = shared.upgrade() else { return };
        if let Err(error) = shared.tend().await {
            tracing::warn!(%error, "a lease round failed; retrying next round");
        }
    }
}

/// Acts on the store's events until the engine is gone or the store sends no more.
pub(super) async fn event_loop(shared: Weak<Shared>, events: Option<StoreEvents>) {
    let Some(mut events) = events else { return };
    while let Some(event) = events.recv().await {
        let Some(shared) = shared.upgrade() else { return };
        if let Err(error) = shared.on_event(event).await {
            tracing::warn!(%error, "acting on another worker's event failed; the next lease round retries");
        }
    }
}
