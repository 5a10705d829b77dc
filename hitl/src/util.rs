//! Small helpers every layer uses.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, ignoring poisoning: the data it guards stays consistent at every await and
/// panic point of hitl's own code, so a panic elsewhere must not wedge the engine.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The message of a panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// A buffer for reading a file through in pieces: 64 KiB, under glibc's 128 KiB mmap
/// threshold. glibc serves a larger allocation with a mapping of its own, and freeing one
/// raises the threshold to its size for the rest of the process; sled's 512 KiB segment
/// buffers then come from the heap instead of mappings of their own, and every one freed
/// leaves a hole that later allocations fragment. One 1 MiB buffer freed at start-up put the
/// benchmark's fan-out at a median of about 560 B of RSS per paused run instead of 350 B
/// (BENCHMARKS.md, "glibc's mmap threshold").
pub(crate) fn file_read_buffer() -> Vec<u8> {
    vec![0; 64 << 10]
}

/// A new id for a run or a request hitl names itself: a UUID v7, whose leading bits are the
/// time, so that ids sort in creation order. Both stores key records by id, and keys that
/// arrive in order keep a fan-out's writes on a few recent pages instead of all of them:
/// sled rewrites (and garbage-collects) far less, and PostgreSQL's indexes split at their
/// right edge and stay dense. Measured: `docs/decisions.md`, "Time-ordered ids".
pub(crate) fn fresh_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Work in progress that somebody may wait out: how many pieces are under way, and a signal
/// each time one ends.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: Mutex<usize>,
    ended: tokio::sync::Notify,
}

impl InFlight {
    /// Counts a piece of work in until the guard drops.
    pub(crate) fn enter(self: &std::sync::Arc<Self>) -> InFlightGuard {
        *lock(&self.count) += 1;
        InFlightGuard(std::sync::Arc::clone(self))
    }

    pub(crate) fn is_idle(&self) -> bool {
        *lock(&self.count) == 0
    }

    /// Resolves when a piece of work ends after this call (enable it before looking).
    pub(crate) fn ended(&self) -> tokio::sync::futures::Notified<'_> {
        self.ended.notified()
    }

    /// Waits until no piece of work is under way.
    pub(crate) async fn all_ended(&self) {
        loop {
            let mut ended = std::pin::pin!(self.ended());
            ended.as_mut().enable();
            if self.is_idle() {
                return;
            }
            ended.await;
        }
    }
}

/// One piece of work counted by an [`InFlight`].
#[derive(Debug)]
pub(crate) struct InFlightGuard(std::sync::Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        *lock(&self.0.count) -= 1;
        self.0.ended.notify_waiters();
    }
}
