//! What can go wrong in a command, and the exit code each failure gives.

use std::fmt;
use std::process::ExitCode;

/// The exit codes scripts rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Anything else: an unknown id, a token the server refused, a server error.
    Failure = 1,
    /// The command line is wrong (clap uses the same code).
    Usage = 2,
    /// The answer or the cancel was refused: invalid, not allowed, already answered, expired,
    /// cancelled, or the run has finished.
    Refused = 3,
    /// The server or the database cannot be reached (or the database is in use).
    Unreachable = 4,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// A failed command: the message for stderr and the exit code.
#[derive(Debug)]
pub(crate) struct CliError {
    pub exit: Exit,
    pub message: String,
    /// The id asked for does not exist (HTTP 404 or the library's `…NotFound`): the caller
    /// may look for it as a prefix.
    pub not_found: bool,
}

impl CliError {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
            not_found: false,
        }
    }

    /// An error of the library, met with `--db`, worded for the command line: the
    /// library's messages point at Rust calls (`engine.pending(..)`,
    /// `Engine::builder()…`), which a CLI user cannot make.
    pub(crate) fn of(error: &hitl::Error) -> Self {
        use hitl::Error as E;
        let message = match error {
            E::RequestNotFound { request_id } => {
                format!("no request has the id `{request_id}`; `hitl pending` lists the open requests")
            }
            E::RunNotFound { run_id } => format!("no run has the id `{run_id}`; `hitl runs` lists the runs"),
            E::NotAHitlDatabase { path, found } => format!(
                "`{}` is not a hitl database ({found}); give `--db` the application's database \
                 directory (the one that holds `hitl.json`)",
                path.display()
            ),
            E::Closed => "the database was closed while the command ran; run it again".to_owned(),
            other => other.to_string(),
        };
        CliError {
            exit: exit_of(error),
            message,
            not_found: matches!(error, E::RequestNotFound { .. } | E::RunNotFound { .. }),
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError::new(Exit::Usage, message)
    }

    pub(crate) fn refused(message: impl Into<String>) -> Self {
        CliError::new(Exit::Refused, message)
    }

    pub(crate) fn unreachable(message: impl Into<String>) -> Self {
        CliError::new(Exit::Unreachable, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The exit code of an error of the library, met with `--db`.
pub(crate) fn exit_of(error: &hitl::Error) -> Exit {
    use hitl::Error as E;
    match error {
        E::AlreadyAnswered { .. }
        | E::AlreadyVoted { .. }
        | E::RequestExpired { .. }
        | E::RequestCancelled { .. }
        | E::ResponderNotAllowed { .. }
        | E::InvalidAnswer { .. }
        | E::RunFinished { .. }
        | E::RunNotBlocked { .. } => Exit::Refused,
        // A write the store refused (a non-empty copy target): the command was refused.
        E::Storage(storage) if storage.kind() == hitl::store::StoreErrorKind::Conflict => Exit::Refused,
        E::DatabaseLocked { .. }
        | E::NotAHitlDatabase { .. }
        | E::Corrupt { .. }
        | E::UnsupportedFormat { .. }
        | E::Storage(_)
        | E::Io { .. } => Exit::Unreachable,
        _ => Exit::Failure,
    }
}

/// The exit code of an HTTP error status from the server.
pub(crate) fn exit_of_status(status: u16) -> Exit {
    match status {
        400 | 403 | 409 | 410 | 413 | 422 => Exit::Refused,
        502..=504 => Exit::Unreachable,
        _ => Exit::Failure,
    }
}
