//! The one error type of the library.
//!
//! Infrastructure failures (storage, a foreign database, a divergent replay) are variants
//! of [`Error`]. The user's own task and workflow errors are never forced into it: they flow
//! through unchanged and end up, rendered with `Display`, in [`Failure`](crate::Failure).

use std::path::PathBuf;

/// A `Result` whose error defaults to [`hitl::Error`](Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside hitl itself.
///
/// Messages are lowercase and say what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The directory exists but holds something other than a hitl database.
    #[error(
        "`{path}` is not a hitl database ({found}); choose an empty or new directory, \
         or point `Engine::builder().path(..)` at an existing hitl database"
    )]
    NotAHitlDatabase {
        /// The directory that was opened.
        path: PathBuf,
        /// What was found there instead.
        found: String,
    },

    /// Another process holds the database open (sled databases are single-process).
    #[error(
        "the hitl database `{path}` is in use by another process; stop that process, or talk \
         to it over HTTP (the `hitl` CLI with `--url`) instead of opening the directory"
    )]
    DatabaseLocked {
        /// The directory that was opened.
        path: PathBuf,
    },

    /// The database files are damaged and sled refused (or panicked while) reading them.
    #[error(
        "the hitl database `{path}` is corrupt ({detail}); it was left untouched: restore it \
         from a backup or move it aside"
    )]
    Corrupt {
        /// The directory that was opened.
        path: PathBuf,
        /// What sled reported.
        detail: String,
    },

    /// The database was written by a newer version of hitl.
    #[error(
        "the hitl database `{path}` has format version {found}, but this build reads up to \
         version {supported}; upgrade hitl"
    )]
    UnsupportedFormat {
        /// The directory that was opened.
        path: PathBuf,
        /// The version stored in the database.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },

    /// A storage operation failed (the backend's error is the source).
    #[error("storage error: {0}")]
    Storage(#[source] StoreError),

    /// A filesystem operation outside sled failed (creating the directory, the marker file).
    #[error("i/o error on `{path}`: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A stored value could not be read back.
    #[error(
        "stored value `{key}` could not be decoded ({source}); the database may come from an incompatible version"
    )]
    Decode {
        /// The key of the value.
        key: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// A stored record of one run is damaged (its bytes no longer decode). The run is failed
    /// with [`FailureKind::CorruptRecord`](crate::FailureKind::CorruptRecord); other runs are
    /// unaffected.
    #[error(
        "the stored {record} of run `{run_id}` is corrupt and cannot be read ({detail}); the run \
         cannot be replayed and was failed; other runs are unaffected"
    )]
    CorruptRecord {
        /// The run the record belongs to.
        run_id: String,
        /// Which record: `journal entry of step \`…\``, …
        record: String,
        /// The step whose record it is, for a journal entry.
        step: Option<String>,
        /// What the decoder reported.
        detail: String,
    },

    /// A value could not be turned into JSON.
    #[error("could not serialize {what} to JSON: {source}")]
    Encode {
        /// What was being serialized.
        what: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// Two workflows were registered under the same name and version.
    #[error(
        "a workflow named `{name}` is already registered as version {version}; give one of them another `#[workflow(name = \"…\")]` or `#[workflow(version = n)]`"
    )]
    DuplicateWorkflow {
        /// The contested name.
        name: String,
        /// The contested version.
        version: u32,
    },

    /// No workflow with this name is registered with the engine.
    #[error("no workflow named `{name}` is registered; registered workflows: {}", list_or_none(.registered))]
    UnknownWorkflow {
        /// The name that was asked for.
        name: String,
        /// The names the engine knows.
        registered: Vec<String>,
    },

    /// The JSON input of a workflow does not match its arguments.
    #[error("invalid input for workflow `{workflow}`: {detail}; expected an object with the fields {}", list_or_none(.expected))]
    InvalidInput {
        /// The workflow that was started.
        workflow: String,
        /// What is wrong, naming the field.
        detail: String,
        /// The argument names of the workflow.
        expected: Vec<String>,
    },

    /// No run with this id exists.
    #[error("no run with id `{run_id}`; list runs with `engine.runs()` or `hitl runs`")]
    RunNotFound {
        /// The id that was asked for.
        run_id: String,
    },

    /// A run id was reused for a different workflow or a different input.
    #[error(
        "run id `{run_id}` is already used by a run of `{workflow}` with different input; choose another id"
    )]
    RunIdConflict {
        /// The contested id.
        run_id: String,
        /// The workflow of the existing run.
        workflow: String,
    },

    /// A run handle was used with the wrong workflow type.
    #[error("run `{run_id}` belongs to workflow `{actual}`, not `{expected}`")]
    WrongWorkflow {
        /// The run.
        run_id: String,
        /// The workflow the caller expected.
        expected: String,
        /// The workflow of the run.
        actual: String,
    },

    /// The run was cancelled; returned by context calls so that `?` leaves the body.
    #[error("the run was cancelled: {reason}")]
    Cancelled {
        /// Why it was cancelled.
        reason: String,
    },

    /// Replaying a run met a step that does not match what the journal recorded.
    #[error(
        "non-determinism in step `{step}` ({location}): {detail}; the code changed since the \
         step was journaled, or the workflow body depends on something that is not replayed"
    )]
    NonDeterminism {
        /// The step id.
        step: String,
        /// `file:line` of the step.
        location: String,
        /// What differs.
        detail: String,
    },

    /// No request with this id exists.
    #[error(
        "no feedback request with id `{request_id}`; list open requests with `engine.pending(..)` or `hitl pending`"
    )]
    RequestNotFound {
        /// The id that was asked for.
        request_id: String,
    },

    /// The request has already been answered.
    #[error(
        "request `{request_id}` has already been answered; the first valid answer won and nothing was changed"
    )]
    AlreadyAnswered {
        /// The request.
        request_id: String,
    },

    /// This responder already voted on a quorum request that is still open.
    #[error(
        "`{responder}` already voted on request `{request_id}` ({approvals} of {quorum} approvals); \
         the request stays open for the other responders"
    )]
    AlreadyVoted {
        /// The request.
        request_id: String,
        /// Who voted again.
        responder: String,
        /// Approvals recorded so far.
        approvals: u32,
        /// Approvals needed.
        quorum: u32,
    },

    /// The request's deadline passed.
    #[error("request `{request_id}` has expired and can no longer be answered")]
    RequestExpired {
        /// The request.
        request_id: String,
    },

    /// The request was cancelled with its run.
    #[error("request `{request_id}` was cancelled with its run and can no longer be answered")]
    RequestCancelled {
        /// The request.
        request_id: String,
    },

    /// The responder is not among the request's allowed responders.
    #[error("`{responder}` may not answer request `{request_id}`; allowed responders: {}", list_or_none(.allowed))]
    ResponderNotAllowed {
        /// The request.
        request_id: String,
        /// Who tried.
        responder: String,
        /// Who may.
        allowed: Vec<String>,
    },

    /// The answer does not fit the request; the request stays open.
    #[error("invalid answer to request `{request_id}`: {problem}; the request is still open")]
    InvalidAnswer {
        /// The request.
        request_id: String,
        /// What is wrong.
        problem: super::problem::AnswerProblem,
    },

    /// A feedback request was built wrong (no options, a bad pattern, a quorum without
    /// responders, …).
    #[error("invalid feedback request: {detail}")]
    InvalidRequest {
        /// What is wrong.
        detail: String,
    },

    /// The run has already finished.
    #[error("run `{run_id}` has already {status}")]
    RunFinished {
        /// The run.
        run_id: String,
        /// How it ended.
        status: super::run::RunStatus,
    },

    /// An operator decision was asked for a run that is not blocked.
    #[error("run `{run_id}` is {status}, not blocked: only a blocked run takes an operator decision")]
    RunNotBlocked {
        /// The run.
        run_id: String,
        /// Where it stands.
        status: super::run::RunStatus,
    },

    /// The engine has been closed.
    #[error("the engine is closed; open a new one with `Engine::builder()`")]
    Closed,

    /// An `inject_context` task was called outside a running workflow.
    #[error(
        "`{task}` uses `inject_context` and was called outside a running workflow; call it from a `#[workflow]` (or another `#[task(inject_context)]`) started with `Engine::start`, not directly, from a plain `#[task]` or from `tokio::spawn`"
    )]
    NoContext {
        /// The task's name.
        task: String,
    },
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items
            .iter()
            .map(|item| format!("`{item}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Error::Storage(error)
    }
}

/// A storage backend's failure, opaque: what kind of failure it is, and the backend's own
/// error as its source. Backends build one with [`StoreError::new`]; the engine reports it
/// as [`Error::Storage`].
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// What kind of storage failure a [`StoreError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend cannot be reached or is shutting down; retrying later may succeed.
    Unavailable,
    /// A concurrent writer got there first (a lost lease, a serialization failure).
    Conflict,
    /// Stored bytes are damaged or were written by something else.
    Corrupt,
    /// The backend's disk or network I/O failed.
    Io,
}

impl StoreError {
    /// A failure of `kind` caused by `source` (the backend's own error).
    pub fn new(kind: StoreErrorKind, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError {
            kind,
            source: source.into(),
        }
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            StoreErrorKind::Unavailable => "storage unavailable",
            StoreErrorKind::Conflict => "conflicting write",
            StoreErrorKind::Corrupt => "corrupt storage",
            StoreErrorKind::Io => "storage i/o failed",
        };
        write!(f, "{kind}: {}", self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
