//! A feedback request as it is specified, answered and stored: its kind, constraints, expiry
//! policy, responders, votes and resolution.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{Error, Result};
use super::outbox::Notify;

/// The kind of a feedback request.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    /// Approve or reject, with an optional comment.
    Approval,
    /// Free text.
    Text,
    /// One of several options.
    Selection,
    /// Several of several options.
    MultiSelection,
    /// A typed value described by a JSON Schema.
    Input,
}

impl FeedbackKind {
    /// The wire name (`approval`, `text`, `selection`, `multi_selection`, `input`).
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Approval => "approval",
            FeedbackKind::Text => "text",
            FeedbackKind::Selection => "selection",
            FeedbackKind::MultiSelection => "multi_selection",
            FeedbackKind::Input => "input",
        }
    }
}

/// What happens when a request's deadline ([`Feedback::expires_after`](crate::Feedback::expires_after)) passes unanswered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExpiry {
    /// `request_feedback` returns [`Error::RequestExpired`]; the workflow decides.
    Reject,
    /// The request resolves with this answer, recorded with the responder `hitl:expiry`.
    Default(Response),
    /// The run fails.
    FailRun,
}

/// The constraints of a request, as stored with it.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    /// Text: minimum length in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_len: Option<usize>,
    /// Text: maximum length in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    /// Text: a regular expression the whole text must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Multi-selection: minimum number of options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<usize>,
    /// Multi-selection: maximum number of options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<usize>,
}

/// Everything a request says, whatever its answer type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RequestSpec {
    /// What kind it is.
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
    /// The step name given with `Feedback::key`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// In-memory wait before pausing, in ms.
    #[serde(default)]
    pub timeout_ms: u64,
    /// How long until the request expires, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after_ms: Option<u64>,
    /// What happens when the deadline passes.
    #[serde(default = "default_on_expiry")]
    pub on_expiry: OnExpiry,
    /// Where to send the notification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Notify>,
    /// Who may answer (empty: anyone with credentials).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responders: Vec<String>,
    /// Approvals needed.
    #[serde(default = "one")]
    pub quorum: u32,
}

fn default_on_expiry() -> OnExpiry {
    OnExpiry::Reject
}

fn one() -> u32 {
    1
}

impl RequestSpec {
    /// The step name: the key, or the kind.
    pub(crate) fn step_name(&self) -> &str {
        self.key.as_deref().unwrap_or(self.kind.as_str())
    }
}

/// An answer to a request, as a human (or the CLI, or the HTTP API) gives it.
///
/// On the wire (untagged JSON): `{"approved": true, "comment": "…"}`, `{"text": "…"}`,
/// `{"selected": "…"}`, `{"selected": ["…", "…"]}`, `{"value": {…}}`.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Response {
    /// Approve or reject.
    Approval {
        /// Approved?
        approved: bool,
        /// A comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// Free text.
    Text {
        /// The text.
        text: String,
    },
    /// One option.
    Selection {
        /// The option.
        selected: String,
    },
    /// Several options.
    MultiSelection {
        /// The options.
        selected: Vec<String>,
    },
    /// A typed value.
    Input {
        /// The value.
        value: Value,
    },
}

impl Response {
    /// Approve.
    pub fn approve() -> Self {
        Response::Approval {
            approved: true,
            comment: None,
        }
    }

    /// Reject.
    pub fn reject() -> Self {
        Response::Approval {
            approved: false,
            comment: None,
        }
    }

    /// Adds a comment to an approval or rejection (ignored for other kinds).
    pub fn comment(mut self, text: impl Into<String>) -> Self {
        if let Response::Approval { comment, .. } = &mut self {
            *comment = Some(text.into());
        }
        self
    }

    /// Free text.
    pub fn text(text: impl Into<String>) -> Self {
        Response::Text { text: text.into() }
    }

    /// One option.
    pub fn select(option: impl Into<String>) -> Self {
        Response::Selection {
            selected: option.into(),
        }
    }

    /// Several options.
    pub fn select_all<I, S>(options: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Response::MultiSelection {
            selected: options.into_iter().map(Into::into).collect(),
        }
    }

    /// A typed value as JSON.
    pub fn value(value: Value) -> Self {
        Response::Input { value }
    }

    /// A typed value.
    ///
    /// # Errors
    ///
    /// If `value` does not serialize.
    pub fn input<T: Serialize>(value: &T) -> Result<Self> {
        serde_json::to_value(value)
            .map(Response::value)
            .map_err(|source| Error::Encode {
                what: "the input answer".to_owned(),
                source,
            })
    }

    /// The kind of request this response answers.
    pub fn kind(&self) -> FeedbackKind {
        match self {
            Response::Approval { .. } => FeedbackKind::Approval,
            Response::Text { .. } => FeedbackKind::Text,
            Response::Selection { .. } => FeedbackKind::Selection,
            Response::MultiSelection { .. } => FeedbackKind::MultiSelection,
            Response::Input { .. } => FeedbackKind::Input,
        }
    }
}

/// Who answers: a name the credentials vouch for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Responder(String);

impl Responder {
    /// The responder named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Responder(name.into())
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// The responder recorded for answers given by an expiry default.
pub const EXPIRY_RESPONDER: &str = "hitl:expiry";

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
#[non_exhaustive]
pub enum Resolution {
    /// Answered, by a person or by the expiry default.
    Answered {
        /// The validated answer.
        response: Response,
        /// Who answered.
        responder: String,
        /// When, in ms since the epoch.
        answered_at: u64,
        /// Votes so far, for a quorum.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        votes: Vec<Vote>,
    },
    /// The deadline passed; the policy applied.
    Expired {
        /// The expiry policy that applied.
        policy: OnExpiry,
    },
    /// Cancelled with its run.
    Cancelled {
        /// The reason given.
        reason: String,
    },
}

impl Resolution {
    /// An answer recorded by the expiry policy (`OnExpiry::Default`), not by a person.
    pub(crate) fn by_expiry(&self) -> bool {
        matches!(self, Resolution::Answered { responder, .. } if responder == EXPIRY_RESPONDER)
    }
}

/// A request as stored in the `requests` tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RequestRecord {
    /// The format version it was written in.
    pub v: u32,
    /// Its id.
    pub id: String,
    /// The run it belongs to.
    pub run_id: String,
    /// The run's workflow.
    pub workflow: String,
    /// The feedback step's id in the run.
    pub step_id: String,
    /// `file:line` of the `request_feedback` call.
    pub location: String,
    /// What the request asks.
    #[serde(flatten)]
    pub spec: RequestSpec,
    /// Where it stands.
    pub status: RequestStatus,
    /// When it was created, in ms since the epoch.
    pub created_at: u64,
    /// Its deadline, in ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Votes so far, for a quorum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<Vote>,
    /// How it resolved, once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// When it resolved, in ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<u64>,
}
