//! The engine's durable timers: request expiries and run wake-ups.
//!
//! Timers are stored in the `timers` tree (so a deadline that passes while no process runs
//! fires at the next open) and mirrored in memory. One background task sleeps on the engine
//! clock until the earliest deadline, fires every due timer, and removes it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::model::step::Timer;
use crate::util::lock;

#[derive(Default)]
pub(crate) struct Timers {
    armed: Mutex<BTreeSet<Timer>>,
    pub(crate) changed: Arc<Notify>,
}

impl Timers {
    /// Adds a timer already stored (or that needs no storing) to the in-memory schedule.
    pub(crate) fn arm(&self, timer: Timer) {
        lock(&self.armed).insert(timer);
        self.changed.notify_one();
    }

    pub(crate) fn next(&self) -> Option<Timer> {
        lock(&self.armed).first().cloned()
    }

    pub(crate) fn disarm(&self, timer: &Timer) {
        lock(&self.armed).remove(timer);
    }
}
