//! `Run<T>`, the handle to a started run, and the [`Outcome`] it settles with.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Engine;
use crate::error::{Error, Result};
use crate::model::compat::Blocked;
use crate::model::run::{Failure, FailureKind, RunStatus};
use crate::model::view::{PendingFilter, Request, RunInfo};

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
    Paused(Vec<Request>),
    /// The registered code cannot resume the run; see [`RunStatus::Blocked`].
    Blocked(Blocked),
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

    /// Waits until the run stops executing: it completed, failed, was cancelled, paused, or
    /// is blocked (the registered code cannot resume it).
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
            if let Some(outcome) = self.outcome().await? {
                return Ok(outcome);
            }
        }
    }

    /// The run's summary.
    pub async fn info(&self) -> Result<RunInfo> {
        self.engine.run_info(&self.id).await
    }

    /// The outcome as stored; `None` while the run is running.
    async fn outcome(&self) -> Result<Option<Outcome<T>>> {
        let record = self.engine.load_run(&self.id).await?;
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
            RunStatus::Paused => Outcome::Paused(
                self.engine
                    .pending(&PendingFilter {
                        run_id: Some(self.id.clone()),
                        ..Default::default()
                    })
                    .await?,
            ),
            RunStatus::Blocked => match record.blocked {
                Some(blocked) => Outcome::Blocked(blocked),
                None => return Ok(None),
            },
            RunStatus::Running => return Ok(None),
        }))
    }
}
