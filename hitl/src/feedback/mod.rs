//! Asking a human: [`Feedback`] requests, their typed answers, and [`Response`]s.
//!
//! `ctx.request_feedback(Feedback::approval("Deploy?"))` journals a request, sends its
//! notifications, waits in memory for [`Feedback::timeout`], and then lets the run pause
//! durably. An answer given with [`Engine::respond`](crate::Engine::respond) — validated
//! against the request before it is stored — resumes the run; the feedback step then returns
//! the typed answer, and every step that completed before it replays from the journal.
//!
//! | kind | built with | answer |
//! |---|---|---|
//! | approval | [`Feedback::approval`] | [`ApprovalAnswer`]: `.approved()`, `.comment()` |
//! | text | [`Feedback::text`] (+ `min_len`, `max_len`, `pattern`) | [`TextAnswer`]: `.text()` |
//! | selection | [`Feedback::selection`] | [`SelectionAnswer`]: `.selected()` |
//! | multi-selection | [`Feedback::multi_selection`] (+ `min_count`, `max_count`) | [`MultiSelectionAnswer`]: `.selected_all()` |
//! | typed input | [`Feedback::input::<T>`](Feedback::input) | [`InputAnswer<T>`]: `.value()` |

mod request;
mod validate;
pub(crate) mod wait;

use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::from_millis;
use crate::error::{Error, Result};
use crate::notify::Notify;

pub use request::{PendingFilter, Request, RequestStatus, Vote};
pub(crate) use request::{RequestRecord, Resolution};
pub use validate::AnswerProblem;
pub(crate) use validate::validate;

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

/// What happens when a request's deadline ([`Feedback::expires_after`]) passes unanswered.
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
pub(crate) struct RequestSpec {
    pub kind: FeedbackKind,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default)]
    pub constraints: Constraints,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// In-memory wait before pausing, in ms.
    #[serde(default)]
    pub timeout_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after_ms: Option<u64>,
    #[serde(default = "default_on_expiry")]
    pub on_expiry: OnExpiry,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Notify>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responders: Vec<String>,
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

    /// Checks the request itself before anything is stored.
    pub(crate) fn check(&self) -> Result<()> {
        let invalid = |detail: String| Err(Error::InvalidRequest { detail });
        if matches!(self.kind, FeedbackKind::Selection | FeedbackKind::MultiSelection) {
            if self.options.is_empty() {
                return invalid("a selection needs at least one option".to_owned());
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(duplicate) = self.options.iter().find(|option| !seen.insert(*option)) {
                return invalid(format!("the option `{duplicate}` is offered twice"));
            }
        }
        if let Some(pattern) = &self.constraints.pattern
            && let Err(error) = regex::Regex::new(pattern)
        {
            return invalid(format!(
                "the pattern `{pattern}` is not a valid regular expression: {error}"
            ));
        }
        if let (Some(min), Some(max)) = (self.constraints.min_len, self.constraints.max_len)
            && min > max
        {
            return invalid(format!("min_len {min} is greater than max_len {max}"));
        }
        if let (Some(min), Some(max)) = (self.constraints.min_count, self.constraints.max_count)
            && min > max
        {
            return invalid(format!("min_count {min} is greater than max_count {max}"));
        }
        if self.quorum == 0 {
            return invalid("a quorum must be at least 1".to_owned());
        }
        if self.quorum > 1 {
            if self.kind != FeedbackKind::Approval {
                return invalid("a quorum applies to approvals only".to_owned());
            }
            if (self.responders.len() as u32) < self.quorum {
                return invalid(format!(
                    "a quorum of {} needs at least as many allowed responders; {} given",
                    self.quorum,
                    self.responders.len()
                ));
            }
        }
        if let Some(schema) = &self.schema
            && let Err(error) = jsonschema::validator_for(schema)
        {
            return invalid(format!("the input schema is invalid: {error}"));
        }
        if let OnExpiry::Default(response) = &self.on_expiry {
            if self.expires_after_ms.is_none() {
                return invalid("`on_expiry` needs `expires_after`".to_owned());
            }
            validate(self, response).map_err(|problem| Error::InvalidRequest {
                detail: format!("the expiry default is not a valid answer: {problem}"),
            })?;
        }
        Ok(())
    }
}

/// A request for human feedback whose answer has type `A`; pass it to
/// [`TaskContext::request_feedback`](crate::TaskContext::request_feedback).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hitl::feedback::{Feedback, OnExpiry};
/// use hitl::Response;
///
/// let ask = Feedback::approval("Keep the new deployment?")
///     .details("Canary error rate: **0.1 %**")
///     .timeout(Duration::from_secs(300))
///     .expires_after(Duration::from_secs(24 * 3600))
///     .on_expiry(OnExpiry::Default(Response::reject().comment("nobody answered")))
///     .responders(["alice", "bob"]);
/// ```
#[derive(Debug, Clone)]
#[must_use = "pass the request to `ctx.request_feedback(..)`"]
pub struct Feedback<A> {
    pub(crate) spec: RequestSpec,
    _answer: PhantomData<fn() -> A>,
}

impl<A> Feedback<A> {
    fn new(kind: FeedbackKind, prompt: impl Into<String>) -> Self {
        Feedback {
            spec: RequestSpec {
                kind,
                prompt: prompt.into(),
                details: None,
                options: Vec::new(),
                constraints: Constraints::default(),
                schema: None,
                default: None,
                key: None,
                timeout_ms: 0,
                expires_after_ms: None,
                on_expiry: OnExpiry::Reject,
                notify: Vec::new(),
                responders: Vec::new(),
                quorum: 1,
            },
            _answer: PhantomData,
        }
    }

    /// How long to wait in memory for an answer before the run pauses durably (default 0:
    /// pause at once). An answer within this window is delivered directly.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.spec.timeout_ms = timeout.as_millis() as u64;
        self
    }

    /// A real deadline: after it the request resolves by [`on_expiry`](Self::on_expiry)
    /// even if nobody answers, also when it passed while no process ran.
    pub fn expires_after(mut self, deadline: Duration) -> Self {
        self.spec.expires_after_ms = Some(deadline.as_millis() as u64);
        self
    }

    /// What expiry does (default [`OnExpiry::Reject`]).
    pub fn on_expiry(mut self, policy: OnExpiry) -> Self {
        self.spec.on_expiry = policy;
        self
    }

    /// Sends a notification when the request is made (never again on replay).
    pub fn notify(mut self, notify: Notify) -> Self {
        self.spec.notify.push(notify);
        self
    }

    /// Only these responders may answer (default: anyone with credentials).
    pub fn responders<I, S>(mut self, responders: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spec.responders = responders.into_iter().map(Into::into).collect();
        self
    }

    /// Approvals only: the request is approved once `n` distinct allowed responders approve;
    /// the first rejection rejects it.
    pub fn quorum(mut self, n: u32) -> Self {
        self.spec.quorum = n;
        self
    }

    /// Context for the human, in Markdown.
    pub fn details(mut self, markdown: impl Into<String>) -> Self {
        self.spec.details = Some(markdown.into());
        self
    }

    /// A stable name for the request's step, instead of its kind (`approval`, …). Repeated
    /// keys count occurrences: in a loop, `k#0`, `k#1`, ….
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.spec.key = Some(key.into());
        self
    }
}

impl Feedback<ApprovalAnswer> {
    /// Approve or reject.
    pub fn approval(prompt: impl Into<String>) -> Self {
        Feedback::new(FeedbackKind::Approval, prompt)
    }
}

impl Feedback<TextAnswer> {
    /// Free text.
    pub fn text(prompt: impl Into<String>) -> Self {
        Feedback::new(FeedbackKind::Text, prompt)
    }

    /// The shortest acceptable answer, in characters.
    pub fn min_len(mut self, chars: usize) -> Self {
        self.spec.constraints.min_len = Some(chars);
        self
    }

    /// The longest acceptable answer, in characters.
    pub fn max_len(mut self, chars: usize) -> Self {
        self.spec.constraints.max_len = Some(chars);
        self
    }

    /// A regular expression (Rust `regex` syntax) the whole answer must match.
    pub fn pattern(mut self, regex: impl Into<String>) -> Self {
        self.spec.constraints.pattern = Some(regex.into());
        self
    }

    /// Text the form starts with.
    pub fn default_text(mut self, text: impl Into<String>) -> Self {
        self.spec.default = Some(Value::String(text.into()));
        self
    }
}

fn options<I, S>(options: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    options.into_iter().map(Into::into).collect()
}

impl Feedback<SelectionAnswer> {
    /// One of `options`.
    pub fn selection<I, S>(prompt: impl Into<String>, choices: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut feedback = Feedback::new(FeedbackKind::Selection, prompt);
        feedback.spec.options = options(choices);
        feedback
    }

    /// The option the form starts with.
    pub fn default_option(mut self, option: impl Into<String>) -> Self {
        self.spec.default = Some(Value::String(option.into()));
        self
    }
}

impl Feedback<MultiSelectionAnswer> {
    /// Any number of `options` (see [`min_count`](Self::min_count), [`max_count`](Self::max_count)).
    pub fn multi_selection<I, S>(prompt: impl Into<String>, choices: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut feedback = Feedback::new(FeedbackKind::MultiSelection, prompt);
        feedback.spec.options = options(choices);
        feedback
    }

    /// The fewest options an answer may select.
    pub fn min_count(mut self, count: usize) -> Self {
        self.spec.constraints.min_count = Some(count);
        self
    }

    /// The most options an answer may select.
    pub fn max_count(mut self, count: usize) -> Self {
        self.spec.constraints.max_count = Some(count);
        self
    }
}

impl Feedback<()> {
    /// A typed value: `Feedback::input::<Refund>("Refund?")`. Its JSON Schema (from
    /// `schemars`) is stored with the request, so answers are validated in any process, and
    /// forms are generated from it.
    pub fn input<T>(prompt: impl Into<String>) -> Feedback<InputAnswer<T>>
    where
        T: Serialize + DeserializeOwned + schemars::JsonSchema,
    {
        let mut feedback = Feedback::new(FeedbackKind::Input, prompt);
        feedback.spec.schema = Some(schemars::schema_for!(T).to_value());
        feedback
    }
}

impl<T: Serialize> Feedback<InputAnswer<T>> {
    /// The value the form starts with.
    pub fn default_value(mut self, value: &T) -> Self {
        self.spec.default = serde_json::to_value(value).ok();
        self
    }
}

/// Who answered, and when; carried by every answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerMeta {
    responder: String,
    answered_at: SystemTime,
    votes: Vec<Vote>,
}

macro_rules! answer_meta_accessors {
    () => {
        /// Who answered (the last vote, for a quorum). `hitl:expiry` for an expiry default.
        pub fn responder(&self) -> &str {
            &self.meta.responder
        }

        /// When the request resolved.
        pub fn answered_at(&self) -> SystemTime {
            self.meta.answered_at
        }

        /// Every vote, for a request with a quorum (else the one answer).
        pub fn votes(&self) -> &[Vote] {
            &self.meta.votes
        }
    };
}

/// The answer to an approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalAnswer {
    approved: bool,
    comment: Option<String>,
    meta: AnswerMeta,
}

impl ApprovalAnswer {
    /// Whether it was approved.
    pub fn approved(&self) -> bool {
        self.approved
    }

    /// The responder's comment.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    answer_meta_accessors!();
}

/// The answer to a text request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextAnswer {
    text: String,
    meta: AnswerMeta,
}

impl TextAnswer {
    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    answer_meta_accessors!();
}

/// The answer to a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionAnswer {
    selected: String,
    meta: AnswerMeta,
}

impl SelectionAnswer {
    /// The selected option.
    pub fn selected(&self) -> &str {
        &self.selected
    }

    answer_meta_accessors!();
}

/// The answer to a multi-selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiSelectionAnswer {
    selected: Vec<String>,
    meta: AnswerMeta,
}

impl MultiSelectionAnswer {
    /// The selected options, in the order they were offered.
    pub fn selected_all(&self) -> &[String] {
        &self.selected
    }

    answer_meta_accessors!();
}

/// The answer to a typed input request.
#[derive(Debug, Clone, PartialEq)]
pub struct InputAnswer<T> {
    value: T,
    meta: AnswerMeta,
}

impl<T> InputAnswer<T> {
    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, owned.
    pub fn into_value(self) -> T {
        self.value
    }

    answer_meta_accessors!();
}

/// An answer type: built from the stored, validated response.
pub trait Answer: Sized + Send + 'static {
    /// Builds the answer.
    #[doc(hidden)]
    fn from_response(response: Response, meta: AnswerMeta) -> Result<Self>;
}

fn mismatch(response: &Response) -> Error {
    Error::InvalidRequest {
        detail: format!("the stored answer `{response:?}` does not fit the request's kind"),
    }
}

impl Answer for ApprovalAnswer {
    fn from_response(response: Response, meta: AnswerMeta) -> Result<Self> {
        match response {
            Response::Approval { approved, comment } => Ok(ApprovalAnswer {
                approved,
                comment,
                meta,
            }),
            other => Err(mismatch(&other)),
        }
    }
}

impl Answer for TextAnswer {
    fn from_response(response: Response, meta: AnswerMeta) -> Result<Self> {
        match response {
            Response::Text { text } => Ok(TextAnswer { text, meta }),
            other => Err(mismatch(&other)),
        }
    }
}

impl Answer for SelectionAnswer {
    fn from_response(response: Response, meta: AnswerMeta) -> Result<Self> {
        match response {
            Response::Selection { selected } => Ok(SelectionAnswer { selected, meta }),
            other => Err(mismatch(&other)),
        }
    }
}

impl Answer for MultiSelectionAnswer {
    fn from_response(response: Response, meta: AnswerMeta) -> Result<Self> {
        match response {
            Response::MultiSelection { selected } => Ok(MultiSelectionAnswer { selected, meta }),
            other => Err(mismatch(&other)),
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> Answer for InputAnswer<T> {
    fn from_response(response: Response, meta: AnswerMeta) -> Result<Self> {
        match response {
            Response::Input { value } => Ok(InputAnswer {
                value: serde_json::from_value(value).map_err(|source| Error::Decode {
                    key: "the typed input answer".to_owned(),
                    source,
                })?,
                meta,
            }),
            other => Err(mismatch(&other)),
        }
    }
}

impl Resolution {
    /// The typed answer for a request resolved as `self`.
    pub(crate) fn into_answer<A: Answer>(self, request_id: &str) -> Result<A> {
        match self {
            Resolution::Answered {
                response,
                responder,
                answered_at,
                votes,
            } => A::from_response(
                response,
                AnswerMeta {
                    responder,
                    answered_at: from_millis(answered_at),
                    votes,
                },
            ),
            Resolution::Expired { .. } => Err(Error::RequestExpired {
                request_id: request_id.to_owned(),
            }),
            Resolution::Cancelled { reason } => Err(Error::Cancelled { reason }),
        }
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
