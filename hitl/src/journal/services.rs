//! What a run's steps need from below the engine: the store, the clock, the durability
//! mode, the wake-ups of waiting feedback steps, the timer queue, the outbox signal and,
//! under a test kit, its hooks. The engine builds one `Services` and hands it to every run,
//! so the journal never reaches up into the engine.

use std::sync::Arc;

use super::hooks::StepHooks;
use super::timers::Timers;
use super::wakeups::Wakeups;
use crate::clock::Clock;
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
