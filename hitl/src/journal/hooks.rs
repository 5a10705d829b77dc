//! What a test kit ([`crate::testing`]) sees of a run's activities, and changes: it is told
//! each time an activity executes instead of replaying, and may hand back the output to
//! journal in place of running the body (a mock); and it is told when a run sleeps durably.
//! Production engines have no hooks.

use serde_json::Value;

/// Called by the step executor; implemented by `hitl::testing`.
pub(crate) trait StepHooks: Send + Sync + 'static {
    /// The activity `task` (a plain `#[task]`, or a `ctx.step` by its name) of run `run_id`
    /// is about to execute as step `step_id` (it has no journaled output to replay).
    /// `Some(output)` replaces its body: the output is decoded as the task's return value
    /// (its `Ok` value, for a fallible task) and journaled.
    fn executing(&self, task: &str, run_id: &str, step_id: &str) -> Option<Value>;

    /// Run `run_id` began (`Some(deadline)`, ms) or ended (`None`) the durable sleep of step
    /// `step_id`.
    fn sleeping(&self, run_id: &str, step_id: &str, deadline: Option<u64>);
}
