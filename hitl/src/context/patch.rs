//! Patches: `if ctx.patched("…") { … }` changes a workflow in place while runs of it wait.
//!
//! A patch is a journaled step whose value is decided once per run, scope and occurrence:
//! `true` when the run reaches it with no journaled step of its scope left to replay (a new
//! run, or one that paused before this point), `false` when the scope already holds a later
//! step (the run passed this point on the old code, so it keeps the old path). The check
//! before a resume decides it by the same rule, so a patched block never blocks a run.

use serde_json::Value;

use super::TaskContext;
use crate::journal::{Position, halt_sync};
use crate::model::step::StepKind;

impl TaskContext {
    /// Whether this run takes the patched branch at this point: `true` for new runs and for
    /// runs that had not passed this point, `false` for runs the old code took past it.
    ///
    /// Use it for a small change to code that runs are waiting in, such as a step added
    /// before a human's approval; for a larger change, register a new workflow version
    /// (`#[workflow(version = 2)]`). Once no run that started before the patch is left,
    /// replace `if ctx.patched("id") { new } else { old }` by `ctx.deprecate_patch("id"); new`,
    /// and later remove that line too.
    ///
    /// # Examples
    ///
    /// ```
    /// use hitl::prelude::*;
    ///
    /// #[task]
    /// async fn scan(build: u32) -> bool { build > 0 }
    ///
    /// #[workflow(inject_context)]
    /// async fn release(ctx: &TaskContext, build: u32) -> bool {
    ///     // Added while runs were waiting further on: they skip it, new runs scan.
    ///     if ctx.patched("scan-before-approval") {
    ///         return scan(build).await;
    ///     }
    ///     false
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
    /// let engine = Engine::temporary().register(release).open().await?;
    /// assert_eq!(engine.start(release, (7,)).await?.wait().await?, Outcome::Completed(true));
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn patched(&self, patch: &str) -> bool {
        self.patch_step(patch, Position::caller(), Use::Decide)
    }

    /// Marks where a removed patch was: a run that journaled `ctx.patched(patch)` here replays
    /// it, and nothing is journaled for other runs. Replace `if ctx.patched("id") { new } else
    /// { old }` by `ctx.deprecate_patch("id"); new` once every run that could take `old` has
    /// finished; remove the call once no run journaled the patch.
    #[track_caller]
    pub fn deprecate_patch(&self, patch: &str) {
        self.patch_step(patch, Position::caller(), Use::Deprecated);
    }

    fn patch_step(&self, patch: &str, position: Position, usage: Use) -> bool {
        let frame = self.frame();
        let name = patch_step_name(patch);
        let Some((step, journaled)) = frame.begin(&name, position, StepKind::Patch, 0, 0) else {
            halt_sync()
        };
        if let Some(record) = journaled {
            return record.output.as_bool().unwrap_or(false);
        }
        if usage == Use::Deprecated {
            return true;
        }
        let patched = frame.at_frontier();
        if !frame.run.checking() {
            step.complete_sync(Value::Bool(patched));
        }
        patched
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Decide,
    Deprecated,
}

/// The step name of a patch: `patch(id)`, with the characters step ids reserve replaced.
fn patch_step_name(patch: &str) -> String {
    let id: String = patch
        .chars()
        .map(|c| match c {
            '/' => '∕',
            '#' => '♯',
            c => c,
        })
        .collect();
    format!("patch({id})")
}

#[cfg(test)]
mod tests {
    #[test]
    fn patch_names_keep_step_ids_parseable() {
        assert_eq!(super::patch_step_name("scan"), "patch(scan)");
        assert_eq!(super::patch_step_name("a/b#1"), "patch(a∕b♯1)");
    }
}
