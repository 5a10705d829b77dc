//! Group commit: many writers, one flush.
//!
//! A writer that needs its writes durable calls [`GroupCommit::flush`]. If no flush is
//! running, it becomes the leader and flushes on its own thread; if one is running, that
//! flush may have begun before the writer's write, so the writer waits for the *next* one,
//! which starts (on a blocking thread) as soon as the current one ends. Every writer that arrives while a flush runs shares that next flush, so N concurrent
//! runs pay for about two flushes, not N.
//!
//! The blocking thread holds the database while it runs, so a store that is dropped waits for
//! it ([`GroupCommit::wait_for_flushers`]): the database is closed, its clean-close record
//! written and its lock released only once no thread of it is left.

use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::watch;

use super::FlushFuture;
use crate::error::Error;

/// How long a dropped store waits for a flush in progress.
const FLUSHER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Coordinates flushes of one sled database.
pub(crate) struct GroupCommit {
    db: sled::Db,
    state: Mutex<State>,
    /// Number of completed flushes, and the error of the last one if it failed.
    completed: watch::Sender<(u64, Option<Arc<sled::Error>>)>,
    /// The blocking threads running flushes (one at most).
    flushers: Arc<Flushers>,
}

#[derive(Default)]
struct Flushers {
    running: Mutex<usize>,
    idle: Condvar,
}

/// One running flusher thread; counted out when dropped (also if the runtime drops the
/// thread's task without running it).
struct Flusher(Arc<Flushers>);

impl Flusher {
    fn start(flushers: &Arc<Flushers>) -> Self {
        *crate::util::lock(&flushers.running) += 1;
        Flusher(Arc::clone(flushers))
    }
}

/// What the blocking thread holds. Fields drop in order, so the database goes before the
/// thread is counted out, also when the runtime drops the task without running it.
struct FlusherThread {
    group: Arc<GroupCommit>,
    _counted: Flusher,
}

impl FlusherThread {
    /// Flushes while writers want more, then lets go of the database and is counted out.
    /// It takes `self` whole: a closure naming only `thread.group` would capture just that
    /// field (disjoint captures, edition 2021), and the count would drop at the spawn.
    fn run(self) {
        while self.group.flush_and_continue() {}
        release_deferred_frees();
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        *crate::util::lock(&self.0.running) -= 1;
        self.0.idle.notify_all();
    }
}

#[derive(Default)]
struct State {
    /// Flushes started so far.
    started: u64,
    /// The highest flush number some writer waits for.
    wanted: u64,
}

impl GroupCommit {
    pub(crate) fn new(db: sled::Db) -> Arc<Self> {
        Arc::new(GroupCommit {
            db,
            state: Mutex::new(State::default()),
            completed: watch::channel((0, None)).0,
            flushers: Arc::default(),
        })
    }

    /// Resolves once a flush that started after this call has completed.
    pub(crate) fn flush(self: &Arc<Self>) -> FlushFuture {
        let (target, leader) = {
            let mut state = self.lock();
            let running = state.started > self.completed.borrow().0;
            let target = state.started + 1;
            state.wanted = state.wanted.max(target);
            if !running {
                state.started = target;
            }
            (target, !running)
        };
        let mut completed = self.completed.subscribe();
        let this = Arc::clone(self);
        Box::pin(async move {
            if leader {
                // The leader flushes on its own thread, as a plain sled user would: no
                // hand-off to another thread on the common, uncontended path. Writers that
                // arrive meanwhile wait for the next flush, which runs on a blocking thread.
                this.flush_once();
            }
            let (_, error) = completed
                .wait_for(|(done, _)| *done >= target)
                .await
                .map_err(|_| Error::Closed)?
                .clone();
            if this.idle() {
                release_deferred_frees();
            }
            match error {
                None => Ok(()),
                Some(error) => Err(super::sled_error(sled::Error::Io(std::io::Error::other(
                    error.to_string(),
                )))),
            }
        })
    }

    /// Runs the flush that was started, then hands further flushes to a blocking thread.
    fn flush_once(self: &Arc<Self>) {
        if self.flush_and_continue() {
            let thread = FlusherThread {
                group: Arc::clone(self),
                _counted: Flusher::start(&self.flushers),
            };
            tokio::task::spawn_blocking(move || thread.run());
        }
    }

    /// Blocks until no flusher thread holds the database (at most one flush), or for
    /// [`FLUSHER_WAIT`] if a flush hangs (a stuck disk): then the database closes when that
    /// thread lets go.
    pub(crate) fn wait_for_flushers(&self) {
        let deadline = std::time::Instant::now() + FLUSHER_WAIT;
        let mut running = crate::util::lock(&self.flushers.running);
        while *running > 0 {
            let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
                tracing::warn!(
                    "a sled flush is still running after {FLUSHER_WAIT:?}; closing without waiting for it"
                );
                return;
            };
            running = self
                .flushers
                .idle
                .wait_timeout(running, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Runs one flush and records it; returns whether writers already want another (which
    /// is then started).
    fn flush_and_continue(&self) -> bool {
        let result = self.db.flush();
        let mut state = self.lock();
        let done = state.started;
        self.completed.send_replace((done, result.err().map(Arc::new)));
        if state.wanted > done {
            state.started += 1;
            true
        } else {
            false
        }
    }

    /// No flush is running and none is wanted.
    fn idle(&self) -> bool {
        self.lock().wanted <= self.completed.borrow().0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::util::lock(&self.state)
    }
}

/// Hands this thread's deferred frees to sled's epoch collector and lets it run the ones no
/// thread can still need. sled frees a replaced tree node, or a 512 KiB log buffer once it is
/// written, only after every thread has left the epoch it was replaced in, and it gathers
/// pending frees in a bag per thread that goes to the collector when 64 have gathered. A
/// thread that goes idle after a burst of writes (a flusher, a runtime worker whose runs all
/// paused) would keep its bag, log buffers and all, until it next writes: with many paused
/// runs and nothing to do, that was up to 3 MiB of buffers held for nothing (BENCHMARKS.md,
/// "sled's deferred frees"). Called when the store goes idle, so never on a busy path.
fn release_deferred_frees() {
    release_deferred_frees_with(crossbeam_epoch::pin);
}

/// [`release_deferred_frees`] with the collector `pin` enters. Each pass sends this thread's
/// bag to the collector and advances the epoch once if no thread is inside; a bag is freed
/// two epochs after it was sent, so two passes free it when nothing else runs. A thread still
/// reading holds the epoch back, and the bag waits for a later pass, as it must.
fn release_deferred_frees_with(pin: impl Fn() -> crossbeam_epoch::Guard) {
    for _ in 0..2 {
        pin().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_passes_free_an_idle_threads_deferred_frees() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // A collector of the test's own: the default one is shared with every test of this
        // binary that uses sled, and any of them inside sled would rightly hold the epoch.
        let collector = crossbeam_epoch::Collector::new();
        let handle = collector.register();
        let freed = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let freed = Arc::clone(&freed);
            handle.pin().defer(move || freed.fetch_add(1, Ordering::SeqCst));
        }
        assert_eq!(
            freed.load(Ordering::SeqCst),
            0,
            "nothing is freed while the bag is the thread's"
        );
        release_deferred_frees_with(|| handle.pin());
        assert_eq!(freed.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flusher_thread_lets_go_of_the_database_before_it_is_counted_out() {
        let dir = tempfile::tempdir().unwrap();
        let group = GroupCommit::new(sled::open(dir.path()).unwrap());
        for round in 0..50 {
            // Concurrent flushes: all but the first wait for the next one, on a blocking thread.
            let flushes: Vec<_> = (0..8).map(|_| tokio::spawn(group.flush())).collect();
            for flush in flushes {
                flush.await.unwrap().unwrap();
            }
            group.wait_for_flushers();
            assert_eq!(
                Arc::strong_count(&group),
                1,
                "round {round}: a flusher thread still holds the database"
            );
        }
    }
}
