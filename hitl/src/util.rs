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
