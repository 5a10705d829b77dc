//! Where the engine's time comes from.
//!
//! Durable timers (`ctx.sleep`), `ctx.now()` and every timestamp the engine stores read the
//! engine's [`Clock`]. Production uses [`SystemClock`]; tests swap in a [`ManualClock`] with
//! `Engine::builder().clock(..)` and move time forward by hand, so timeouts and durable sleeps
//! are tested without sleeping in real time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// A future returned by [`Clock::sleep_until`].
pub type ClockSleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of wall-clock time for the engine.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// A future that completes once [`now`](Clock::now) has reached `deadline`.
    fn sleep_until(&self, deadline: SystemTime) -> ClockSleep;
}

/// The real clock: `SystemTime::now()` and tokio timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> ClockSleep {
        let wait = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that only moves when told to; for tests.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use hitl::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_060));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
    ticks: watch::Sender<SystemTime>,
}

impl ManualClock {
    /// A clock standing still at `start`.
    pub fn new(start: SystemTime) -> Self {
        let (ticks, _) = watch::channel(start);
        ManualClock {
            now: Arc::new(Mutex::new(start)),
            ticks,
        }
    }

    /// A clock standing still at the current real time.
    pub fn starting_now() -> Self {
        Self::new(SystemTime::now())
    }

    /// Moves time forward by `by`, waking every sleeper whose deadline has passed.
    pub fn advance(&self, by: Duration) {
        let mut now = crate::util::lock(&self.now);
        *now += by;
        self.ticks.send_replace(*now);
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock").field("now", &self.now()).finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *crate::util::lock(&self.now)
    }

    fn sleep_until(&self, deadline: SystemTime) -> ClockSleep {
        let mut ticks = self.ticks.subscribe();
        Box::pin(async move {
            // `wait_for` checks the current value first, so a deadline already passed
            // returns at once; a dropped sender (clock gone) ends the wait too.
            let _ = ticks.wait_for(|now| *now >= deadline).await;
        })
    }
}

/// Milliseconds since the Unix epoch, the form timestamps take in storage.
pub(crate) fn to_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The inverse of [`to_millis`].
pub(crate) fn from_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}
