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

use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::clock::from_millis;
use crate::error::{Error, Result};
use crate::model::outbox::Notify;
use crate::model::request::{RequestSpec, Resolution};

pub use crate::model::problem::AnswerProblem;
pub use crate::model::request::{
    Constraints, EXPIRY_RESPONDER, FeedbackKind, OnExpiry, RequestStatus, Responder, Response, Vote,
};
pub use crate::model::view::{AnswerView, PendingFilter, Request};

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
