//! Crash points for the crash-matrix tests (cargo feature `failpoints`, off by default).
//!
//! With the feature on, `HITL_FAILPOINT=name` or `HITL_FAILPOINT=name:n` makes the process
//! abort (like a power cut for the process: no destructors, no flush) the first, or the n-th,
//! time the engine reaches the point `name`. Points: `after_journal_write` (a step's output
//! was inserted but not yet flushed), `after_answer_flush` (an answer is durable and its run
//! not yet resumed), `after_request_write`, and the migrations' `migrate_*`.

/// Aborts the process if the environment selects this point.
#[cfg(feature = "failpoints")]
pub(crate) fn hit(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static HITS: AtomicU64 = AtomicU64::new(0);

    let Ok(spec) = std::env::var("HITL_FAILPOINT") else {
        return;
    };
    let (point, nth) = match spec.split_once(':') {
        Some((point, nth)) => (point, nth.parse::<u64>().unwrap_or(1)),
        None => (spec.as_str(), 1),
    };
    if point == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        eprintln!("hitl failpoint `{name}` hit: aborting");
        std::process::abort();
    }
}

/// Failpoints are compiled out without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn hit(_name: &str) {}

/// [`hit`] in a `Result` chain.
pub(crate) fn hit_ok(name: &str) -> crate::Result<()> {
    hit(name);
    Ok(())
}
