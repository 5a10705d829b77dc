//! Runs: handles to started workflows, their status, outcome and history.

use std::fmt;
use std::marker::PhantomData;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::store::StepKind;

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
}

impl RunStatus {
    /// Whether the run has finished for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// Whether [`Run::settled`] returns for this status.
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

/// How a run settled.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome<T> {
    /// The workflow returned this value (its `Ok` value for a fallible workflow).
    Completed(T),
    /// The workflow returned an error, or the engine failed it.
    Failed(Failure),
    /// The run was cancelled.
    Cancelled {
        /// The reason given.
        reason: String,
    },
    /// The run waits durably for these requests; answering one resumes it.
    Paused(Vec<crate::feedback::Request>),
}

impl<T> Outcome<T> {
    /// The completed value, if the run completed.
    pub fn completed(self) -> Option<T> {
        match self {
            Outcome::Completed(value) => Some(value),
            _ => None,
        }
    }
}

/// A summary of one run.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// The run id.
    pub id: String,
    /// The workflow's registered name.
    pub workflow: String,
    /// Where the run stands.
    pub status: RunStatus,
    /// The workflow's input, as a JSON object keyed by argument name.
    pub input: Value,
    /// The output, once completed.
    pub output: Option<Value>,
    /// Why it failed, once failed.
    pub failure: Option<Failure>,
    /// Why it was cancelled, once cancelled.
    pub cancel_reason: Option<String>,
    /// When it was created.
    #[serde(with = "crate::time_format")]
    #[cfg_attr(feature = "server", schema(value_type = String, format = DateTime))]
    pub created_at: SystemTime,
    /// When its status last changed.
    #[serde(with = "crate::time_format")]
    #[cfg_attr(feature = "server", schema(value_type = String, format = DateTime))]
    pub updated_at: SystemTime,
    /// Set when the registered workflow's step sites differ from those the run started with.
    pub definition_changed: Option<DefinitionChange>,
}

/// How the code of a workflow changed since a run of it started, from the step-site tables.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionChange {
    /// Fingerprint stored with the run.
    pub stored_fingerprint: String,
    /// Fingerprint of the registered code.
    pub current_fingerprint: String,
    /// Step sites in the registered code but not in the run's version.
    pub added_sites: Vec<String>,
    /// Step sites of the run's version missing from the registered code.
    pub removed_sites: Vec<String>,
}

/// One journaled step of a run, as shown by [`Engine::history`].
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// The step identity: `scope/name#occurrence`.
    pub step_id: String,
    /// The step name (the last segment of the id, without the occurrence).
    pub name: String,
    /// What kind of step.
    pub kind: StepKind,
    /// `completed`, or `waiting` for a durable timer that has not fired.
    pub status: StepStatus,
    /// Source line of the step.
    pub line: u32,
    /// When it started.
    #[serde(with = "crate::time_format")]
    #[cfg_attr(feature = "server", schema(value_type = String, format = DateTime))]
    pub started_at: SystemTime,
    /// When it completed.
    #[serde(with = "crate::time_format::option")]
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<SystemTime>,
    /// The journaled output.
    pub output: Value,
}

/// The status of a journaled step.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The output is journaled (a notification: delivered).
    Completed,
    /// A durable timer or a feedback request is waiting (a notification: not yet delivered).
    Waiting,
    /// A notification that was given up after its last attempt.
    Failed,
}

/// A handle to a started run whose output has type `T`.
///
/// Returned by [`Engine::start`]; cheap to clone, and valid after the engine that created it
/// restarts (it is only an id and an engine).
#[derive(Clone)]
pub struct Run<T = Value> {
    engine: Engine,
    id: String,
    _output: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Run<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run").field("id", &self.id).finish()
    }
}

impl<T: DeserializeOwned> Run<T> {
    pub(crate) fn new(engine: Engine, id: String) -> Self {
        Run {
            engine,
            id,
            _output: PhantomData,
        }
    }

    /// The run id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits until the run completes, fails or is cancelled.
    pub async fn wait(&self) -> Result<Outcome<T>> {
        self.until(RunStatus::is_terminal).await
    }

    /// Waits until the run stops executing: it completed, failed, was cancelled, or paused.
    ///
    /// Runs of workflows that never ask a human settle only when they finish.
    ///
    /// After an answer that resolves one of its requests, the run is running again (the
    /// answer resumed it), so this waits for its next settled state; after a quorum vote that
    /// does not resolve, it returns `Paused` with the still-open request.
    pub async fn settled(&self) -> Result<Outcome<T>> {
        self.until(RunStatus::is_settled).await
    }

    async fn until(&self, done: fn(RunStatus) -> bool) -> Result<Outcome<T>> {
        loop {
            self.engine.wait_status(&self.id, done).await?;
            // Resumed between the wait and the read: wait for its next settled state.
            if let Some(outcome) = self.outcome()? {
                return Ok(outcome);
            }
        }
    }

    /// The run's summary.
    pub fn info(&self) -> Result<RunInfo> {
        self.engine.run_info(&self.id)
    }

    /// The outcome as stored; `None` while the run is running.
    fn outcome(&self) -> Result<Option<Outcome<T>>> {
        let record = self.engine.load_run(&self.id)?;
        Ok(Some(match record.status {
            RunStatus::Completed => {
                let output = record.output.unwrap_or(Value::Null);
                Outcome::Completed(serde_json::from_value(output).map_err(|source| Error::Decode {
                    key: format!("output of run {}", self.id),
                    source,
                })?)
            }
            RunStatus::Failed => Outcome::Failed(
                record
                    .failure
                    .unwrap_or_else(|| Failure::new(FailureKind::Engine, "failed")),
            ),
            RunStatus::Cancelled => Outcome::Cancelled {
                reason: record.cancel_reason.unwrap_or_default(),
            },
            RunStatus::Paused => Outcome::Paused(self.engine.pending(&crate::feedback::PendingFilter {
                run_id: Some(self.id.clone()),
                ..Default::default()
            })?),
            RunStatus::Running => return Ok(None),
        }))
    }
}
