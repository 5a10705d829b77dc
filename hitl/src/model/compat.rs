//! Whether a run can resume on the registered code: why a run is blocked, and the operator
//! decisions that settle it.
//!
//! A run is checked before any replay (an answer, a timer, a recovery, a takeover): its
//! journal is replayed against the registered code without executing anything. A mismatch
//! does not fail the run and nothing is replayed: it becomes [`RunStatus::Blocked`]
//! (crate::RunStatus::Blocked) with a [`Blocked`] naming the steps and lines, until the
//! code can resume it or an operator decides.

use serde::{Deserialize, Serialize};

/// Why a run cannot resume on the registered code.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Blocked {
    /// One line for lists: the first problem, and how many more there are.
    pub reason: String,
    /// Every problem found, in journal order.
    pub problems: Vec<Incompatibility>,
    /// When the run was blocked, in ms since the epoch.
    pub at: u64,
}

impl Blocked {
    /// A block for `problems` (at least one) found at `at`.
    pub fn new(problems: Vec<Incompatibility>, at: u64) -> Self {
        let reason = match problems.as_slice() {
            [] => "the registered code cannot resume this run".to_owned(),
            [only] => only.to_string(),
            [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
        };
        Blocked { reason, problems, at }
    }
}

/// One way in which the registered code differs from what a run journaled.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Incompatibility {
    /// What kind of difference.
    pub kind: IncompatibilityKind,
    /// The step concerned: `scope/name#occurrence` (empty for a problem of the whole run).
    pub step: String,
    /// The source line the step was journaled at, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// What the message says, naming the other step and its line when there is one.
    pub detail: String,
}

impl Incompatibility {
    pub(crate) fn new(kind: IncompatibilityKind, step: &str, line: Option<u32>, detail: String) -> Self {
        Incompatibility {
            kind,
            step: step.to_owned(),
            line,
            detail,
        }
    }
}

impl Incompatibility {
    /// The run's stored input no longer decodes into the workflow's arguments.
    pub(crate) fn input_no_longer_decodes(error: impl std::fmt::Display) -> Self {
        Incompatibility::new(
            IncompatibilityKind::ReplayFailed,
            "",
            None,
            format!("the run's input no longer decodes into the workflow's arguments: {error}"),
        )
    }
}

impl std::fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// The kinds of [`Incompatibility`].
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IncompatibilityKind {
    /// The code now runs a step the run never journaled before one it did, in the same scope.
    NewStepBefore,
    /// A journaled step is not reached by the code any more (removed, renamed or moved).
    NotReached,
    /// The step at a journaled identity is of another kind now.
    ChangedKind,
    /// The step's argument or output types changed.
    ChangedTypes,
    /// The step's input differs from the journaled input.
    ChangedInput,
    /// The journaled output no longer decodes into the step's output type.
    OutputNoLongerDecodes,
    /// The run's workflow version is not registered.
    VersionNotRegistered,
    /// Replaying the journal on the registered code failed (it panicked, or an engine error).
    ReplayFailed,
}

/// What an operator decided about a blocked run; recorded in its history.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DecisionAction {
    /// Resume on the registered code anyway: the divergence is accepted.
    ResumeAnyway,
    /// Cancel the run.
    Cancel,
    /// Set aside the journal of this step's scope after it, so that the later steps run
    /// again (their activities too); see `Engine::decide`.
    Rewind {
        /// The step id to rewind to (`scope/name#occurrence`), which stays journaled.
        to: String,
    },
}

impl std::fmt::Display for DecisionAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecisionAction::ResumeAnyway => "resume anyway",
            DecisionAction::Cancel => "cancel",
            DecisionAction::Rewind { to } => return write!(f, "rewind to `{to}`"),
        })
    }
}

/// An operator decision on a blocked run: who, why, when, and what the run was blocked for.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Decision {
    /// What was decided.
    pub action: DecisionAction,
    /// Who decided.
    pub by: String,
    /// Why.
    pub reason: String,
    /// When, in ms since the epoch.
    pub at: u64,
    /// The block it settled.
    pub blocked: String,
}

/// The result of checking a run against the registered code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Verdict {
    pub(crate) problems: Vec<Incompatibility>,
}

impl Verdict {
    pub(crate) fn compatible(&self) -> bool {
        self.problems.is_empty()
    }

    /// Adds a problem unless one for the same step is already there.
    pub(crate) fn add(&mut self, problem: Incompatibility) {
        if !self
            .problems
            .iter()
            .any(|known| known.step == problem.step && !known.step.is_empty())
        {
            self.problems.push(problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_the_first_problem_and_counts_the_rest() {
        let problem = |step: &str| {
            Incompatibility::new(
                IncompatibilityKind::NotReached,
                step,
                Some(3),
                format!("journaled step `{step}` (line 3) is not reached"),
            )
        };
        assert_eq!(
            Blocked::new(vec![problem("a#0")], 0).reason,
            "journaled step `a#0` (line 3) is not reached"
        );
        assert_eq!(
            Blocked::new(vec![problem("a#0"), problem("b#0")], 0).reason,
            "journaled step `a#0` (line 3) is not reached (and 1 more)"
        );
    }

    #[test]
    fn a_verdict_keeps_one_problem_per_step() {
        let mut verdict = Verdict::default();
        assert!(verdict.compatible());
        let problem = Incompatibility::new(IncompatibilityKind::NotReached, "a#0", None, "x".into());
        verdict.add(problem.clone());
        verdict.add(problem);
        assert_eq!(verdict.problems.len(), 1);
        assert!(!verdict.compatible());
    }
}
