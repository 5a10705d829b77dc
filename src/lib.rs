//! Helpers shared by the `hitl` examples and integration tests.
//!
//! This package is not published; it exists so that `examples/` and `tests/` live at the
//! repository root, beside the `hitl` and `hitl-macros` crates they exercise.
//!
//! Tests wait on events, never on time: [`eventually`] and [`PATIENCE`] are for the few
//! conditions the API offers no event for, and their bound only turns a hang into a failure —
//! a slow or loaded machine makes a test slower, never red.
//!
//! [`format_v1`] holds the workflows of the format-1 database fixture
//! (`tests/fixtures/format_v1/`), shared by its generator and its test.

pub mod format_v1;

use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hitl::clock::{Clock, ClockSleep, ManualClock};
use hitl::{Engine, PendingFilter, Request};

/// How long a test waits for something that must happen before it calls it a hang.
///
/// Generous on purpose (a full `cargo test --workspace` on 2 loaded cores makes single steps
/// take seconds); it bounds waits on events, it is never a sleep.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `check` until it gives a value, napping 1 ms to 20 ms between polls; panics naming
/// `what` after [`PATIENCE`].
pub async fn eventually<T>(what: impl Display, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "waited {PATIENCE:?}, and still not: {what}"
        );
        tokio::time::sleep(nap).await;
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// Awaits `future`, panicking naming `what` if it takes longer than [`PATIENCE`] (a hang).
pub async fn patiently<F: Future>(what: impl Display, future: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(output) => output,
        Err(_) => panic!("waited {PATIENCE:?}, and still not: {what}"),
    }
}

/// Waits until `run_id` has at least `steps` journaled steps (a run reaching a durable timer
/// or a request); panics with the run id after [`PATIENCE`].
pub async fn wait_for_steps(engine: &Engine, run_id: &str, steps: usize) {
    eventually(format!("run {run_id} has {steps} journaled steps"), async || {
        (engine.history(run_id).await.expect("the run exists").len() >= steps).then_some(())
    })
    .await;
}

/// Waits until `run_id` has a pending request (`prompt`, if given), and returns the first;
/// for a run still waiting in memory, which `settled()` does not report.
pub async fn pending_request(engine: &Engine, run_id: &str, prompt: Option<&str>) -> Request {
    let filter = PendingFilter {
        run_id: Some(run_id.to_owned()),
        ..PendingFilter::default()
    };
    let what = match prompt {
        Some(prompt) => format!("run {run_id} asks `{prompt}`"),
        None => format!("run {run_id} asks"),
    };
    eventually(what, async || {
        engine
            .pending(&filter)
            .await
            .expect("pending requests")
            .into_iter()
            .find(|request| prompt.is_none_or(|prompt| request.prompt == prompt))
    })
    .await
}

/// The one request `run` pauses on; panics if it settles otherwise, on more than one request,
/// or not within [`PATIENCE`].
pub async fn paused_on_one<T: serde::de::DeserializeOwned + std::fmt::Debug>(run: &hitl::Run<T>) -> Request {
    let outcome = patiently("the run pauses", run.settled()).await.unwrap();
    let hitl::Outcome::Paused(mut requests) = outcome else {
        panic!("expected a pause, got {outcome:?}")
    };
    assert_eq!(requests.len(), 1, "{requests:#?}");
    requests.remove(0)
}

/// The notification entries of a run's history, one per notification of its requests.
pub async fn notifications(engine: &Engine, run_id: &str) -> Vec<hitl::HistoryEntry> {
    engine
        .history(run_id)
        .await
        .expect("the run's history")
        .into_iter()
        .filter(|entry| entry.kind == hitl::StepKind::Notification)
        .collect()
}

/// The delivery attempts a notification entry records.
pub fn attempts(entry: &hitl::HistoryEntry) -> Vec<hitl::notify::Attempt> {
    serde_json::from_value(entry.output["attempts"].clone()).expect("a notification's attempts")
}

/// A [`ManualClock`] that keeps the deadline of every `sleep_until` since the last
/// [`advance`](WatchedClock::advance): the engine's timer task and durable sleeps sleep until
/// their deadline, so a test sees when the engine has looked at a deadline and gone (back) to
/// sleep on it — the event after which "it did not fire early" is a fact, where a real-time
/// sleep would only be a hope.
#[derive(Debug, Clone)]
pub struct WatchedClock {
    clock: ManualClock,
    sleeps: Arc<Mutex<Vec<SystemTime>>>,
}

impl WatchedClock {
    /// A clock standing still at `start`.
    pub fn new(start: SystemTime) -> Self {
        WatchedClock {
            clock: ManualClock::new(start),
            sleeps: Arc::default(),
        }
    }

    /// Forgets the sleeps so far, then moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.sleeps.lock().unwrap().clear();
        self.clock.advance(by);
    }

    /// Waits until somebody went to sleep until `deadline` since the last advance.
    pub async fn wait_for_sleep_until(&self, deadline: SystemTime) {
        eventually(format!("something sleeps until {deadline:?}"), async || {
            self.sleeps.lock().unwrap().contains(&deadline).then_some(())
        })
        .await;
    }
}

impl Clock for WatchedClock {
    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> ClockSleep {
        self.sleeps.lock().unwrap().push(deadline);
        self.clock.sleep_until(deadline)
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[tokio::test]
    async fn a_watched_clock_reports_a_sleep_until_the_next_advance_ends_it() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let deadline = start + Duration::from_secs(60);
        let clock = WatchedClock::new(start);
        let sleep = clock.sleep_until(deadline);
        clock.wait_for_sleep_until(deadline).await;
        clock.advance(Duration::from_secs(60));
        assert!(
            clock.sleeps.lock().unwrap().is_empty(),
            "an advance forgets the sleeps before it"
        );
        sleep.await; // the advance reached the deadline
        assert_eq!(clock.now(), deadline);
    }
}
