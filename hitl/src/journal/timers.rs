//! The engine's durable timers: request expiries and run wake-ups.
//!
//! Timers are stored in the `timers` tree (so a deadline that passes while no process runs
//! fires at the next open) and mirrored in memory. One background task sleeps on the engine
//! clock until the earliest deadline, fires every due one, and removes it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::model::step::Timer;
use crate::util::lock;

#[derive(Default)]
pub(crate) struct Timers {
    schedule: Mutex<Schedule>,
    pub(crate) changed: Arc<Notify>,
    /// Told each time a timer has been fired: what [`Timers::caught_up`] waits on.
    fired: Notify,
}

#[derive(Default)]
struct Schedule {
    armed: BTreeSet<Timer>,
    /// Timers taken off the schedule whose firing has not finished.
    firing: usize,
}

impl Timers {
    /// Adds a timer already stored (or that needs no storing) to the in-memory schedule.
    pub(crate) fn arm(&self, timer: Timer) {
        lock(&self.schedule).armed.insert(timer);
        self.changed.notify_one();
    }

    pub(crate) fn next(&self) -> Option<Timer> {
        lock(&self.schedule).armed.first().cloned()
    }

    /// Takes `timer` off the schedule to fire it; it counts as firing until the guard drops.
    pub(crate) fn firing(&self, timer: &Timer) -> Firing<'_> {
        let mut schedule = lock(&self.schedule);
        schedule.armed.remove(timer);
        schedule.firing += 1;
        Firing(self)
    }

    /// Waits until every timer due at `now` (ms) has been fired: none is armed with a
    /// deadline at or before it, and none is firing. What `hitl::testing` waits on after it
    /// moves the clock; it needs the engine's timer loop to be running.
    pub(crate) async fn caught_up(&self, now: u64) {
        loop {
            let mut fired = std::pin::pin!(self.fired.notified());
            fired.as_mut().enable();
            {
                let schedule = lock(&self.schedule);
                let due = schedule.armed.first().is_some_and(|timer| timer.deadline <= now);
                if !due && schedule.firing == 0 {
                    return;
                }
            }
            fired.await;
        }
    }
}

/// A timer being fired; see [`Timers::firing`].
pub(crate) struct Firing<'a>(&'a Timers);

impl Drop for Firing<'_> {
    fn drop(&mut self) {
        lock(&self.0.schedule).firing -= 1;
        self.0.fired.notify_waiters();
    }
}
