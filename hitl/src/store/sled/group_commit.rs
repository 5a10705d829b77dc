//! Group commit: many writers, one flush.
//!
//! A writer that needs its writes durable calls [`GroupCommit::flush`]. If no flush is
//! running, it becomes the leader and flushes on its own thread; if one is running, that
//! flush may have begun before the writer's write, so the writer waits for the *next* one,
//! which starts (on a blocking thread) as soon as the current one ends. Every writer that arrives while a flush runs shares that next flush, so N concurrent
//! runs pay for about two flushes, not N.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::FlushFuture;
use crate::error::Error;

/// Coordinates flushes of one sled database.
pub(crate) struct GroupCommit {
    db: sled::Db,
    state: Mutex<State>,
    /// Number of completed flushes, and the error of the last one if it failed.
    completed: watch::Sender<(u64, Option<Arc<sled::Error>>)>,
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
            let this = Arc::clone(self);
            tokio::task::spawn_blocking(move || while this.flush_and_continue() {});
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

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::util::lock(&self.state)
    }
}
