//! The engine's durable timers: request expiries and run wake-ups.
//!
//! Timers are stored in the `timers` tree (so a deadline that passes while no process runs
//! fires at the next open) and mirrored in memory. One background task sleeps on the engine
//! clock until the earliest deadline, fires every due timer, and removes it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use crate::clock::{from_millis, to_millis};
use crate::engine::Shared;
use crate::store::Timer;
use crate::util::lock;

#[derive(Default)]
pub(crate) struct Timers {
    armed: Mutex<BTreeSet<Timer>>,
    changed: Arc<Notify>,
}

impl Timers {
    /// Adds a timer already stored (or that needs no storing) to the in-memory schedule.
    pub(crate) fn arm(&self, timer: Timer) {
        lock(&self.armed).insert(timer);
        self.changed.notify_one();
    }

    fn next(&self) -> Option<Timer> {
        lock(&self.armed).first().cloned()
    }

    fn disarm(&self, timer: &Timer) {
        lock(&self.armed).remove(timer);
    }

    /// Runs until the engine is gone.
    pub(crate) async fn run(shared: Weak<Shared>) {
        loop {
            // Hold the engine only while looking: a dropped engine ends the loop.
            let (next, notify, clock) = {
                let Some(shared) = shared.upgrade() else { return };
                (
                    shared.timers.next(),
                    Arc::clone(&shared.timers.changed),
                    shared.clock.clone(),
                )
            };
            let mut changed = std::pin::pin!(notify.notified());
            changed.as_mut().enable();
            let Some(timer) = next else {
                changed.await;
                continue;
            };
            if to_millis(clock.now()) < timer.deadline {
                tokio::select! {
                    () = clock.sleep_until(from_millis(timer.deadline)) => {}
                    () = &mut changed => continue,
                }
            }
            let Some(shared) = shared.upgrade() else { return };
            shared.timers.disarm(&timer);
            shared.fire(&timer).await;
        }
    }
}
