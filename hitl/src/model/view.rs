//! What operators see: requests, answers, run summaries, history entries, and the filters
//! that select them. Built from the stored records; never stored themselves.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::compat::{Blocked, Decision};
use super::request::{Constraints, FeedbackKind, RequestRecord, RequestStatus, Resolution, Response, Vote};
use super::run::{Failure, RunStatus};
use super::step::StepKind;
use crate::clock::from_millis;

/// A feedback request as operators see it (the HTTP API's wire format).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The request id.
    pub id: String,
    /// The run that asked.
    pub run_id: String,
    /// The run's workflow.
    pub workflow: String,
    /// The feedback step's id in the run.
    pub step_id: String,
    /// `approval`, `text`, `selection`, `multi_selection` or `input`.
    pub kind: FeedbackKind,
    /// The question.
    pub prompt: String,
    /// Context, in Markdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// The options of a selection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Text and count constraints.
    #[serde(default)]
    pub constraints: Constraints,
    /// The JSON Schema of a typed input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// The value a form starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Who may answer (empty: anyone with credentials).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responders: Vec<String>,
    /// Approvals needed.
    pub quorum: u32,
    /// Votes so far, for a quorum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<Vote>,
    /// Where it stands.
    pub status: RequestStatus,
    /// When it was made.
    #[serde(with = "crate::time_format")]
    #[cfg_attr(feature = "server", schema(value_type = String, format = DateTime))]
    pub created_at: SystemTime,
    /// Its deadline, if any.
    #[serde(
        with = "crate::time_format::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<SystemTime>,
    /// The answer, once answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerView>,
    /// `file:line` of the `request_feedback` call.
    pub location: String,
}

/// An answer as operators see it.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerView {
    /// The validated response.
    #[serde(flatten)]
    pub response: Response,
    /// Who answered.
    pub responder: String,
    /// When.
    #[serde(with = "crate::time_format")]
    #[cfg_attr(feature = "server", schema(value_type = String, format = DateTime))]
    pub answered_at: SystemTime,
}

impl RequestRecord {
    pub(crate) fn view(&self) -> Request {
        let answer = match &self.resolution {
            Some(Resolution::Answered {
                response,
                responder,
                answered_at,
                ..
            }) => Some(AnswerView {
                response: response.clone(),
                responder: responder.clone(),
                answered_at: from_millis(*answered_at),
            }),
            _ => None,
        };
        Request {
            id: self.id.clone(),
            run_id: self.run_id.clone(),
            workflow: self.workflow.clone(),
            step_id: self.step_id.clone(),
            kind: self.spec.kind,
            prompt: self.spec.prompt.clone(),
            details: self.spec.details.clone(),
            options: self.spec.options.clone(),
            constraints: self.spec.constraints.clone(),
            schema: self.spec.schema.clone(),
            default: self.spec.default.clone(),
            responders: self.spec.responders.clone(),
            quorum: self.spec.quorum,
            votes: self.votes.clone(),
            status: self.status,
            created_at: from_millis(self.created_at),
            expires_at: self.expires_at.map(from_millis),
            answer,
            location: self.location.clone(),
        }
    }
}

/// Which pending requests [`Engine::pending`](crate::Engine::pending) lists.
#[derive(Debug, Clone, Default)]
pub struct PendingFilter {
    /// Only requests of runs of this workflow.
    pub workflow: Option<String>,
    /// Only requests of this run.
    pub run_id: Option<String>,
    /// Only requests at least this old.
    pub older_than: Option<Duration>,
}

impl PendingFilter {
    pub(crate) fn matches(&self, request: &RequestRecord, now: SystemTime) -> bool {
        self.workflow
            .as_ref()
            .is_none_or(|workflow| &request.workflow == workflow)
            && self.run_id.as_ref().is_none_or(|run| &request.run_id == run)
            && self.older_than.is_none_or(|age| {
                now.duration_since(from_millis(request.created_at))
                    .unwrap_or_default()
                    >= age
            })
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
    /// The workflow version the run started on, and stays on.
    pub version: u32,
    /// Why the registered code cannot resume the run (`blocked` runs only).
    pub blocked: Option<Blocked>,
    /// Operator decisions on the run, oldest first.
    pub decisions: Vec<Decision>,
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

/// One journaled step of a run, as shown by [`Engine::history`](crate::Engine::history).
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
    /// A notification that was never delivered and no longer needed: its request closed
    /// (answered, expired, cancelled, or asked again after a rewind) before a delivery got
    /// through. Its attempts, if any, are in the entry's output.
    Skipped,
}
