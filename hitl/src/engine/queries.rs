//! Read models: run summaries, histories, requests and what changed in a workflow's code.

use crate::clock::from_millis;
use crate::error::{Error, Result};
use crate::model::outbox::{Notify, OutboxRecord};
use crate::model::request::{RequestRecord, RequestStatus};
use crate::model::run::RunRecord;
use crate::model::step::StepKind;
use crate::model::view::{DefinitionChange, HistoryEntry, PendingFilter, Request, RunInfo, StepStatus};
use crate::store::{RequestQuery, RunQuery};
use crate::workflow::WorkflowDefinition;

use super::{Engine, Registered, RunFilter};

impl Engine {
    /// The run's summary.
    pub async fn run_info(&self, run_id: &str) -> Result<RunInfo> {
        let record = self.load_run(run_id).await?;
        self.info_of(record).await
    }

    /// Every run matching `filter`.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunInfo>> {
        let query = RunQuery {
            status: filter.status,
            workflow: filter.workflow.clone(),
            ..RunQuery::default()
        };
        let mut runs = Vec::new();
        for run in self.shared.services.store.runs(&query).await? {
            runs.push(self.info_of(run).await?);
        }
        Ok(runs)
    }

    /// The run's journaled steps, in the order they completed. A feedback step shows its
    /// request (status, answer, responder, votes) and is followed by one entry per
    /// notification with every delivery attempt.
    pub async fn history(&self, run_id: &str) -> Result<Vec<HistoryEntry>> {
        self.load_run(run_id).await?;
        let mut steps = self.shared.services.store.load_journal(run_id).await?;
        // A step that returned `Err` is not in the history: its marker is the check's
        // bookkeeping (the step runs again, and its output replaces the marker).
        steps.retain(|(_, step)| step.kind != StepKind::Errored);
        steps.sort_by_key(|(_, step)| step.seq);
        let mut history = Vec::with_capacity(steps.len());
        for (step_id, step) in steps {
            let name = crate::model::step::name_of(&step_id).to_owned();
            let mut entry = HistoryEntry {
                name,
                step_id,
                kind: step.kind,
                status: if step.finished_at.is_some() {
                    StepStatus::Completed
                } else {
                    StepStatus::Waiting
                },
                line: step.line,
                started_at: from_millis(step.started_at),
                finished_at: step.finished_at.map(from_millis),
                output: step.output,
            };
            let request_id = entry.output["request"].as_str().map(str::to_owned);
            match (step.kind, request_id) {
                (StepKind::Feedback, Some(request_id)) => {
                    let request = self.shared.load_request(&request_id).await?;
                    entry.output = serde_json::json!({
                        "request": request_id,
                        "status": request.status,
                        "resolution": request.resolution,
                        "votes": request.votes,
                        "expires_at": request.expires_at.map(from_millis).map(humantime::format_rfc3339_millis).map(|t| t.to_string()),
                    });
                    let notifications = self.shared.services.store.outbox_of(&request_id).await?;
                    let step_id = entry.step_id.clone();
                    history.push(entry);
                    history.extend(
                        notifications
                            .into_iter()
                            .enumerate()
                            .map(|(index, notification)| HistoryEntry {
                                step_id: format!("{step_id}/notify#{index}"),
                                name: "notify".to_owned(),
                                kind: StepKind::Notification,
                                status: match notification {
                                    OutboxRecord {
                                        delivered_at: Some(_),
                                        ..
                                    } => StepStatus::Completed,
                                    OutboxRecord { gave_up: false, .. } => StepStatus::Waiting,
                                    OutboxRecord { withdrawn: true, .. } => StepStatus::Skipped,
                                    OutboxRecord { .. } => StepStatus::Failed,
                                },
                                line: step.line,
                                started_at: from_millis(request.created_at),
                                finished_at: notification.delivered_at.map(from_millis),
                                output: notification_output(&notification),
                            }),
                    );
                }
                _ => history.push(entry),
            }
        }
        Ok(history)
    }

    pub(super) async fn info_of(&self, record: RunRecord) -> Result<RunInfo> {
        let definition_changed = match self.shared.registry.exact(&record.workflow, record.version) {
            Some(registered) if registered.definition.fingerprint != record.fingerprint => Some(
                self.shared
                    .definition_change(&record, registered.definition)
                    .await?,
            ),
            _ => None,
        };
        Ok(RunInfo {
            id: record.id,
            workflow: record.workflow,
            status: record.status,
            input: record.input,
            output: record.output,
            failure: record.failure,
            cancel_reason: record.cancel_reason,
            created_at: from_millis(record.created_at),
            updated_at: from_millis(record.updated_at),
            definition_changed,
            version: record.version,
            blocked: record.blocked,
            decisions: record.decisions,
        })
    }

    /// The newest registered version of `workflow`.
    pub(super) fn registered(&self, workflow: &str) -> Result<Registered> {
        self.shared
            .registry
            .newest(workflow)
            .ok_or_else(|| Error::UnknownWorkflow {
                name: workflow.to_owned(),
                registered: self.workflows().iter().map(|name| (*name).to_owned()).collect(),
            })
    }

    /// Every unanswered request matching `filter`, oldest first — whether its run waits in
    /// memory or has paused.
    pub async fn pending(&self, filter: &PendingFilter) -> Result<Vec<Request>> {
        self.requests(filter, Some(RequestStatus::Pending)).await
    }

    /// A request, whatever its status.
    pub async fn request(&self, request_id: &str) -> Result<Request> {
        self.shared
            .load_request(request_id)
            .await
            .map(|request| request.view())
    }
}

/// Listing requests whatever their status, for the HTTP API (`GET /api/requests?status=…`).
impl Engine {
    /// Every request of the runs matching `filter` whose status is `status` (any status when
    /// `None`), oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// # use hitl::prelude::*;
    /// # use hitl::{PendingFilter, RequestStatus};
    /// # #[workflow] async fn noop() -> u8 { 1 }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
    /// let engine = Engine::temporary().register(noop).open().await?;
    /// let answered = engine.requests(&PendingFilter::default(), Some(RequestStatus::Answered)).await?;
    /// assert!(answered.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn requests(
        &self,
        filter: &PendingFilter,
        status: Option<RequestStatus>,
    ) -> Result<Vec<Request>> {
        let now = self.shared.services.clock.now();
        let query = RequestQuery {
            status,
            run_id: filter.run_id.clone(),
            workflow: filter.workflow.clone(),
            ..RequestQuery::default()
        };
        Ok(self
            .shared
            .services
            .store
            .requests(&query)
            .await?
            .iter()
            .filter(|request| filter.matches(request, now))
            .map(RequestRecord::view)
            .collect())
    }
}

impl super::Shared {
    pub(super) async fn definition_change(
        &self,
        record: &RunRecord,
        current: &WorkflowDefinition,
    ) -> Result<DefinitionChange> {
        let stored = self
            .services
            .store
            .load_definition(&record.workflow, &record.fingerprint)
            .await?
            .unwrap_or_default();
        let now = current.site_names();
        Ok(DefinitionChange {
            stored_fingerprint: record.fingerprint.clone(),
            current_fingerprint: current.fingerprint.to_owned(),
            added_sites: now
                .iter()
                .filter(|site| !stored.contains(site))
                .cloned()
                .collect(),
            removed_sites: stored
                .iter()
                .filter(|site| !now.contains(site))
                .cloned()
                .collect(),
        })
    }
}

/// A notification's history output: its idempotency id, channel, attempts, and where it
/// goes: `url` for every channel (what the CLI and the run page show; `mailto:` for an
/// e-mail), and an e-mail's `to`.
fn notification_output(notification: &crate::model::outbox::OutboxRecord) -> serde_json::Value {
    let notify = &notification.notify;
    let mut output = serde_json::json!({
        "idempotency_id": notification.id,
        "channel": notify.channel(),
        "url": notify.url(),
        "attempts": notification.attempts,
    });
    if let Notify::Email { to, .. } = notify {
        output["to"] = to.as_str().into();
        output["url"] = format!("mailto:{to}").into();
    }
    output
}
