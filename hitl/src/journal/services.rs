//! What a run's steps need from below the engine: the store, the clock, the durability
//! mode, the wake-ups of waiting feedback steps, the timer queue, the outbox signal and,
//! under a test kit, its hooks. The engine builds one `Services` and hands it to every run,
//! so the journal never reaches up into the engine.

use std::sync::Arc;

use super::hooks::StepHooks;
use super::timers::Timers;
use super::wakeups::Wakeups;
use crate::clock::Clock;
use crate::model::error::Result;
use crate::store::{Durability, Store};

pub(crate) struct Services {
    pub(crate) store: Box<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) durability: Durability,
    /// Wake-ups for feedback steps waiting in memory.
    pub(crate) wakeups: Wakeups,
    /// Expiries and run wake-ups.
    pub(crate) timers: Timers,
    /// Told when the outbox has something new to deliver.
    pub(crate) outbox: Arc<tokio::sync::Notify>,
    /// A test kit's view of executing activities (`hitl::testing`); `None` otherwise.
    pub(crate) hooks: Option<Arc<dyn StepHooks>>,
}

impl Services {
    /// Marks `request_id` as being resolved, for a resolver about to write a resolution: a
    /// run that reads the resolution while the mark stands flushes before acting on it. The
    /// mark stands until [`Resolving::flush`] has flushed the write, or until
    /// [`Resolving::resolved_nothing`].
    pub(crate) fn resolving(self: &Arc<Self>, request_id: &str) -> Resolving {
        self.wakeups.mark_resolving(request_id);
        Resolving {
            services: Arc::clone(self),
            request_id: request_id.to_owned(),
            settled: false,
        }
    }
}

/// A resolution being written or not yet flushed: [`Services::resolving`]'s mark.
///
/// Dropped before either of its ends — its resolver was cancelled (a caller's timeout, a
/// closed HTTP connection) or its flush failed — the write may be visible and not durable:
/// the mark then stands until a flush issued at the drop has succeeded.
pub(crate) struct Resolving {
    services: Arc<Services>,
    request_id: String,
    /// The mark may go: the resolution is durable, or there was none.
    settled: bool,
}

impl Resolving {
    /// Flushes the store, then takes the mark back.
    pub(crate) async fn flush(mut self) -> Result<()> {
        self.services.store.flush().await?;
        self.settled = true;
        Ok(())
    }

    /// Takes the mark back: the request was not resolved (the change was refused, or left
    /// it pending).
    pub(crate) fn resolved_nothing(mut self) {
        self.settled = true;
    }
}

impl Drop for Resolving {
    fn drop(&mut self) {
        if self.settled {
            self.services.wakeups.unmark_resolving(&self.request_id);
            return;
        }
        let flush = self.services.store.flush();
        let services = Arc::clone(&self.services);
        let request_id = std::mem::take(&mut self.request_id);
        // Outside a runtime (the process is ending) the mark stays: nothing reads it then.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // A failed flush leaves the mark: a run that reads the resolution flushes
                // itself, and meets the failure rather than act on the answer.
                if flush.await.is_ok() {
                    services.wakeups.unmark_resolving(&request_id);
                }
            });
        }
    }
}
