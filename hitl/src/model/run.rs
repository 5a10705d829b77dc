//! A run as it stands and as it is stored: status, failure, and why it stopped.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::compat::{Blocked, Decision};
use super::error::Error;

/// Where a run stands.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Being executed (or waiting in memory) by an engine.
    Running,
    /// Waiting durably for a human or a timer; holds no memory.
    Paused,
    /// Finished with a value.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled by `ctx.cancel_workflow` or `engine.cancel`.
    Cancelled,
    /// Cannot resume on the registered code (see [`RunRecord::blocked`]): not failed and not
    /// replayed. Its requests stay answerable; it resumes once the code can resume it, or an
    /// operator decides (`Engine::resume_anyway`, `Engine::cancel`).
    Blocked,
}

impl RunStatus {
    /// Whether the run has finished for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// Whether a claim may take the run to drive it again: `Paused`, or `Blocked` (to check
    /// it against the code again).
    pub fn is_resumable(self) -> bool {
        matches!(self, RunStatus::Paused | RunStatus::Blocked)
    }

    /// Whether [`Run::settled`](crate::Run::settled) returns for this status.
    pub fn is_settled(self) -> bool {
        self != RunStatus::Running
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Blocked => "blocked",
        })
    }
}

/// Why a run failed.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure it is: the workflow's own error, or the engine's.
    #[serde(default)]
    pub kind: FailureKind,
    /// The `Display` of the workflow's error, or the engine's error.
    pub message: String,
    /// The step that produced the error, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// `file:line` of that step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl Failure {
    /// A failure of this kind with no step.
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            step: None,
            location: None,
        }
    }
}

/// What made a run fail.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The workflow returned an error (or an expiry policy failed the run).
    #[default]
    Workflow,
    /// The workflow panicked.
    Panicked,
    /// The workflow's input could not be decoded into its arguments.
    InvalidInput,
    /// Replay met a step whose input changed since it was journaled (`Error::NonDeterminism`).
    NonDeterminism,
    /// A stored record of the run could not be read (damaged bytes, not a code change).
    CorruptRecord,
    /// The engine failed the run (storage, or another infrastructure error).
    Engine,
}

impl FailureKind {
    /// The kind of failure an engine error causes.
    pub(crate) fn of(error: &Error) -> Self {
        match error {
            Error::NonDeterminism { .. } => FailureKind::NonDeterminism,
            Error::CorruptRecord { .. } => FailureKind::CorruptRecord,
            Error::InvalidInput { .. } => FailureKind::InvalidInput,
            Error::RequestExpired { .. } => FailureKind::Workflow,
            _ => FailureKind::Engine,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(step) = &self.step {
            write!(f, " (in step `{step}`")?;
            if let Some(location) = &self.location {
                write!(f, " at {location}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A run as stored in the `runs` tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct RunRecord {
    /// The format version it was written in.
    pub v: u32,
    /// Its id.
    pub id: String,
    /// The run's workflow.
    pub workflow: String,
    /// The workflow version the run started on, and stays on (`#[workflow(version = n)]`).
    #[serde(default = "first_version", skip_serializing_if = "is_first_version")]
    pub version: u32,
    /// Where it stands.
    pub status: RunStatus,
    /// The workflow's input, as a JSON object keyed by argument name.
    pub input: Value,
    /// The journaled output (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it failed, once failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Why it was cancelled, once cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// Hash of the workflow's step-site table when the run started.
    pub fingerprint: String,
    /// The engine instance driving the run (`Running` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Until when `owner` holds the run, in ms since the epoch; a lapsed lease may be taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<u64>,
    /// How many times the run has been claimed; every write of the run record must carry
    /// the epoch it was claimed with, so a writer that lost the run is fenced off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lease_epoch: u64,
    /// When it was created, in ms since the epoch.
    pub created_at: u64,
    /// When its status last changed, in ms since the epoch.
    pub updated_at: u64,
    /// Why the registered code cannot resume it (`Blocked` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
    /// Operator decisions on the run, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Decision>,
    /// The identity of the code that last drove the run (its build and its workflow's site
    /// table): a resume on the same code needs no compatibility check.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: u64,
    /// Journal entries below this sequence number were written before an operator accepted
    /// a divergence (`resume_anyway`): the check does not hold them against the code.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub accepted_before: u64,
}

/// The version of a workflow without `#[workflow(version = n)]`, and of runs stored before
/// versions existed.
pub const FIRST_VERSION: u32 = 1;

fn first_version() -> u32 {
    FIRST_VERSION
}

fn is_first_version(version: &u32) -> bool {
    *version == FIRST_VERSION
}

/// Why a run stops executing before its body returns.
#[derive(Debug, Clone)]
pub(crate) enum Stop {
    Failed(Failure),
    Cancelled(String),
    /// Another worker claimed the run (this one's lease lapsed): stop, write nothing.
    LostLease,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl RunRecord {
    /// This record claimed by `owner` until `until` (ms since the epoch), one epoch later:
    /// what a backend stores when a claim succeeds.
    pub fn claimed(&self, owner: &str, until: u64, now: u64) -> RunRecord {
        RunRecord {
            status: RunStatus::Running,
            owner: Some(owner.to_owned()),
            lease_until: Some(until),
            lease_epoch: self.lease_epoch + 1,
            updated_at: now,
            ..self.clone()
        }
    }

    /// Whether `owner` holds this record's lease at `epoch`.
    pub fn held_by(&self, owner: &str, epoch: u64) -> bool {
        self.owner.as_deref() == Some(owner) && self.lease_epoch == epoch
    }
}
