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

/// A new id for a run or a request hitl names itself: a UUID v7, whose leading bits are the
/// time, so that ids sort in creation order. Both stores key records by id, and keys that
/// arrive in order keep a fan-out's writes on a few recent pages instead of all of them:
/// sled rewrites (and garbage-collects) far less, and PostgreSQL's indexes split at their
/// right edge and stay dense. Measured: `docs/decisions.md`, "Time-ordered ids".
pub(crate) fn fresh_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
