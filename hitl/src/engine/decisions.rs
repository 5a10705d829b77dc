//! Blocked runs from the operator's side: deciding about one, and checking every waiting run
//! against the registered code before a deploy.

use std::fmt;

use serde::Serialize;

use super::Engine;
use super::registry::CodeOf;
use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::model::compat::{Decision, DecisionAction, Incompatibility, IncompatibilityKind};
use crate::model::run::{RunRecord, RunStatus};
use crate::model::step::{Timer, TimerAction};
use crate::store::{RunQuery, StoreErrorKind};

/// How often [`Engine::decide`] reads a blocked run again when a worker re-checks it at the
/// same moment, and how long it waits for that check between two reads.
const DECIDE_ATTEMPTS: u32 = 50;
const RECHECK_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

impl Engine {
    /// Settles a blocked run as an operator: resume it on the registered code anyway (the
    /// divergence is accepted: journaled steps the code no longer reaches are left aside and
    /// new steps before them run); rewind it to a named step (the journal of that step's
    /// scope after it is set aside and its steps run again — activities too, so mind their
    /// side effects; requests they asked stay in history and are asked again, open ones are
    /// cancelled with their timers and pending notifications, and channel values go back to
    /// what they were); or cancel it. The decision is recorded in the run, with `by` and
    /// `reason`, and shown with it.
    ///
    /// # Errors
    ///
    /// [`Error::RunNotFound`]; [`Error::RunNotBlocked`] when the run is not blocked;
    /// [`Error::InvalidRequest`] to resume a run whose workflow version is not registered
    /// (there is no code to resume it on: register that version, or cancel).
    pub async fn decide(
        &self,
        run_id: &str,
        action: DecisionAction,
        by: &str,
        reason: impl Into<String>,
    ) -> Result<()> {
        let reason = reason.into();
        let mut rewound = false;
        // A worker may re-check the blocked run at the same moment (a wake-up stored by the
        // answer that blocked it claims it, checks it, and blocks it again): its claim moves
        // the lease epoch, and this save is fenced by it. Read the run again and retry.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut record = self.load_run(run_id).await?;
            let blocked = match record.blocked.clone() {
                Some(blocked) if record.status == RunStatus::Blocked => blocked,
                // Being re-checked by a worker: it stays blocked or resumes in a moment.
                Some(_) if record.status == RunStatus::Running && attempts < DECIDE_ATTEMPTS => {
                    tokio::time::sleep(RECHECK_PAUSE).await;
                    continue;
                }
                _ => {
                    return Err(Error::RunNotBlocked {
                        run_id: record.id,
                        status: record.status,
                    });
                }
            };
            if action != DecisionAction::Cancel
                && let CodeOf::VersionMissing(problem) = self.shared.registry.code_of(&record)
            {
                return Err(Error::InvalidRequest {
                    detail: format!("cannot resume run `{run_id}` ({action}): {problem}"),
                });
            }
            if let DecisionAction::Rewind { to } = &action
                && !rewound
            {
                let rewind = self.shared.rewind(&record, to).await?;
                rewound = true;
                tracing::warn!(
                    run_id,
                    to,
                    steps = rewind.steps,
                    cancelled_requests = rewind.cancelled_requests,
                    "run rewound: the steps after it run again, activities included"
                );
            }
            record.decisions.push(Decision {
                action: action.clone(),
                by: by.to_owned(),
                reason: reason.clone(),
                at: to_millis(self.shared.services.clock.now()),
                blocked: blocked.reason,
            });
            if action == DecisionAction::ResumeAnyway {
                let journal = self.shared.services.store.load_journal(run_id).await?;
                record.accepted_before = journal.iter().map(|(_, step)| step.seq + 1).max().unwrap_or(0);
            }
            match self.shared.services.store.save_run(&record).await {
                Ok(()) => break,
                Err(Error::Storage(error))
                    if error.kind() == StoreErrorKind::Conflict && attempts < DECIDE_ATTEMPTS => {}
                Err(error) => return Err(error),
            }
        }
        tracing::warn!(run_id, %action, by, %reason, "operator decision on a blocked run");
        self.shared.services.store.flush().await?;
        match action {
            DecisionAction::ResumeAnyway | DecisionAction::Rewind { .. } => {
                // A wake-up, so that a worker resumes the run even when this engine drives
                // none (the CLI on a database, an operator engine on a shared store).
                let wake = Timer {
                    deadline: to_millis(self.shared.services.clock.now()),
                    action: TimerAction::Wake(run_id.to_owned()),
                };
                self.shared.services.store.add_timer(&wake).await?;
                self.shared.services.store.flush().await?;
                if self.shared.resume_if_paused(run_id).await? {
                    self.shared.services.store.remove_timer(&wake).await?;
                }
                Ok(())
            }
            DecisionAction::Cancel => self.cancel(run_id, format!("{reason} (decided by {by})")).await,
        }
    }

    /// [`decide`](Self::decide) to resume a blocked run anyway.
    pub async fn resume_anyway(&self, run_id: &str, by: &str, reason: impl Into<String>) -> Result<()> {
        self.decide(run_id, DecisionAction::ResumeAnyway, by, reason)
            .await
    }

    /// Checks every run that has not finished against the registered code, running nothing:
    /// which of them the code can resume, and why not. Wire it to a pre-deploy step that
    /// fails when [`CheckReport::all_resumable`] is false.
    ///
    /// A run of a workflow this engine does not register at all is reported too: the new
    /// build would leave it waiting forever.
    pub async fn check_runs(&self) -> Result<CheckReport> {
        let mut runs = Vec::new();
        for record in self.unfinished_runs().await? {
            runs.push(self.check_run(record).await?);
        }
        Ok(CheckReport { runs })
    }

    /// Every run that has not finished (paused, blocked or running), by id.
    pub(super) async fn unfinished_runs(&self) -> Result<Vec<RunRecord>> {
        let mut runs = Vec::new();
        for status in [RunStatus::Paused, RunStatus::Blocked, RunStatus::Running] {
            let query = RunQuery {
                status: Some(status),
                ..RunQuery::default()
            };
            runs.extend(self.shared.services.store.runs(&query).await?);
        }
        runs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(runs)
    }

    async fn check_run(&self, record: RunRecord) -> Result<RunCheck> {
        let problems = match self.shared.registry.code_of(&record) {
            CodeOf::NotHere => vec![Incompatibility::new(
                IncompatibilityKind::VersionNotRegistered,
                "",
                None,
                format!("workflow `{}` is not registered in this build", record.workflow),
            )],
            CodeOf::VersionMissing(problem) => vec![problem],
            CodeOf::Registered(registered) => {
                let journal = self.shared.services.store.load_journal(&record.id).await?;
                self.shared.check(&record, registered, journal).await.problems
            }
        };
        Ok(RunCheck {
            run_id: record.id,
            workflow: record.workflow,
            version: record.version,
            status: record.status,
            resumable: problems.is_empty(),
            problems,
        })
    }
}

/// What [`Engine::check_runs`] found: one entry per run that has not finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CheckReport {
    /// Every checked run, by id.
    pub runs: Vec<RunCheck>,
}

impl CheckReport {
    /// Whether the registered code can resume every run.
    pub fn all_resumable(&self) -> bool {
        self.runs.iter().all(|run| run.resumable)
    }

    /// The runs the registered code cannot resume.
    pub fn blocked(&self) -> impl Iterator<Item = &RunCheck> {
        self.runs.iter().filter(|run| !run.resumable)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let blocked = self.blocked().count();
        writeln!(
            f,
            "{} run(s) checked: {} resumable, {blocked} would block",
            self.runs.len(),
            self.runs.len() - blocked
        )?;
        for run in self.blocked() {
            writeln!(
                f,
                "run {} ({} v{}, {}):",
                run.run_id, run.workflow, run.version, run.status
            )?;
            for problem in &run.problems {
                writeln!(f, "  - {problem}")?;
            }
        }
        Ok(())
    }
}

/// Whether the registered code can resume one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RunCheck {
    /// The run.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// The version it runs on.
    pub version: u32,
    /// Where it stands now.
    pub status: RunStatus,
    /// Whether the registered code can resume it.
    pub resumable: bool,
    /// Why not, naming steps and lines.
    pub problems: Vec<Incompatibility>,
}
