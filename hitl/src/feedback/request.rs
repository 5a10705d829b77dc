//! Requests as stored, as shown to operators, and how they resolve.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Constraints, FeedbackKind, OnExpiry, RequestSpec, Response};
use crate::clock::from_millis;

/// Where a request stands.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestStatus {
    /// Waiting for an answer.
    Pending,
    /// Answered (or resolved by an expiry default).
    Answered,
    /// Its deadline passed.
    Expired,
    /// Its run was cancelled or failed.
    Cancelled,
}

/// One responder's answer to an approval with a quorum.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// Who voted.
    pub responder: String,
    /// Approve or reject.
    pub approved: bool,
    /// Their comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When, in ms since the epoch.
    pub at: u64,
}

/// How a request resolved; the feedback step's journaled output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum Resolution {
    Answered {
        response: Response,
        responder: String,
        answered_at: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        votes: Vec<Vote>,
    },
    Expired {
        policy: OnExpiry,
    },
    Cancelled {
        reason: String,
    },
}

impl Resolution {
    /// An answer recorded by the expiry policy (`OnExpiry::Default`), not by a person.
    pub(crate) fn by_expiry(&self) -> bool {
        matches!(self, Resolution::Answered { responder, .. } if responder == super::EXPIRY_RESPONDER)
    }
}

/// A request as stored in the `requests` tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RequestRecord {
    pub v: u32,
    pub id: String,
    pub run_id: String,
    pub workflow: String,
    pub step_id: String,
    /// `file:line` of the `request_feedback` call.
    pub location: String,
    #[serde(flatten)]
    pub spec: RequestSpec,
    pub status: RequestStatus,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<Vote>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<u64>,
}

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
