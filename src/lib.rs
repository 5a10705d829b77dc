//! Helpers shared by the `hitl` examples and integration tests.
//!
//! This package is not published; it exists so that `examples/` and `tests/` live at the
//! repository root, beside the `hitl` and `hitl-macros` crates they exercise.

use std::time::Duration;

use hitl::Engine;

/// Waits until `run_id` has at least `steps` journaled steps (a run reaching a durable timer
/// or a request), polling for up to 4 s; panics with the run id otherwise.
pub async fn wait_for_steps(engine: &Engine, run_id: &str, steps: usize) {
    for _ in 0..2_000 {
        if engine.history(run_id).expect("the run exists").len() >= steps {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("run {run_id} did not reach {steps} journaled steps");
}
