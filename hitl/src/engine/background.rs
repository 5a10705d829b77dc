//! The engine's background work: the timer loop, which sleeps on the engine clock until the
//! earliest armed timer (an expiry or a run wake-up) and fires every due one.

use std::sync::{Arc, Weak};

use crate::clock::{from_millis, to_millis};

use super::Shared;

/// Fires due timers until the engine is gone.
pub(super) async fn timer_loop(shared: Weak<Shared>) {
    loop {
        // Hold the engine only while looking: a dropped engine ends the loop.
        let (next, notify, clock) = {
            let Some(shared) = shared.upgrade() else { return };
            (
                shared.services.timers.next(),
                Arc::clone(&shared.services.timers.changed),
                shared.services.clock.clone(),
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
        let services = Arc::clone(&shared.services);
        let _firing = services.timers.firing(&timer);
        shared.fire(&timer).await;
    }
}
