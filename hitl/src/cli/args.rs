//! The command line: what `hitl` accepts, as clap derive structs.
//!
//! clap reports its own usage errors with exit code 2; the checks it cannot express (which
//! mode, `--as` only with `--db`) are made by [`Cli::mode`] and [`Respond::responder`] and
//! reported the same way.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgGroup, ArgMatches, Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

/// Answer and inspect human-in-the-loop requests of a hitl application.
///
/// Talks to the application's server with --url (or HITL_URL) and --token (or HITL_TOKEN),
/// or opens its database directory with --db when no process holds it; answers stored there
/// are applied when the application next starts.
#[derive(Debug, Parser)]
#[command(name = "hitl", version, max_term_width = 100)]
#[command(
    after_help = "Exit codes: 0 ok, 1 other failure (unknown id, bad token, server error), \
                        2 usage, 3 answer or cancel refused, 4 server or database unreachable."
)]
pub(crate) struct Cli {
    /// Base URL of the application's hitl server, e.g. http://127.0.0.1:8080.
    #[arg(
        long,
        env = "HITL_URL",
        global = true,
        value_name = "URL",
        help_heading = "Where"
    )]
    pub url: Option<String>,

    /// API token for the server; the server records the responder it names.
    #[arg(
        long,
        env = "HITL_TOKEN",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true,
        help_heading = "Where"
    )]
    pub token: Option<String>,

    /// Open this database directory directly (only while no application holds it).
    #[arg(long, global = true, value_name = "DIR", help_heading = "Where")]
    pub db: Option<PathBuf>,

    /// Use this PostgreSQL database directly, while the workers run (postgres://…); an
    /// answer resumes its run on a worker at once.
    #[arg(
        long,
        env = "HITL_DATABASE_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true,
        help_heading = "Where"
    )]
    pub database_url: Option<String>,

    /// Print the API's JSON objects instead of tables.
    #[arg(long, global = true, help_heading = "Output")]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the requests waiting for an answer, oldest first.
    Pending(Pending),
    /// Show one request: its question, options, constraints and answer.
    Show {
        /// The request id.
        request: String,
    },
    /// Answer a request.
    Respond(Respond),
    /// List runs.
    Runs {
        /// Only runs with this status.
        #[arg(long, value_enum)]
        status: Option<Status>,
    },
    /// Show a run's journaled steps, feedback requests and notifications.
    History {
        /// The run id.
        run: String,
    },
    /// Print every stored record as JSON lines (runs, journals, requests, pending, outbox,
    /// timers, channels, definitions); with --db or --database-url.
    Dump,
    /// Create or upgrade hitl's tables in the database of --database-url (workers do it at
    /// start too; this is for a deploy step that migrates first).
    Migrate,
    /// Copy a stopped application's sled database into an empty PostgreSQL database: every
    /// run, journal, request, notification, timer and the link-signing secret. An
    /// interrupted copy is finished by running the same command again.
    MigrateStore {
        /// The sled database directory (its application must be stopped).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The PostgreSQL database (postgres://…).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Settle a blocked run (one the deployed code cannot resume): resume it on the current
    /// code anyway, rewind it to a step, or cancel it. Recorded in the run with who and why.
    Decide {
        /// The run id.
        run: String,
        /// Resume it on the current code: the divergence is accepted.
        #[arg(long, conflicts_with_all = ["cancel", "rewind_to"], required_unless_present_any = ["cancel", "rewind_to"])]
        resume_anyway: bool,
        /// Rewind it to this completed step (as `hitl history` names it): the steps after it
        /// run again, activities included.
        #[arg(long, value_name = "STEP", conflicts_with = "cancel")]
        rewind_to: Option<String>,
        /// Cancel it.
        #[arg(long)]
        cancel: bool,
        /// Why, recorded with the decision.
        #[arg(long)]
        reason: String,
        /// With --db or --database-url: who decides (over HTTP, your token names it).
        #[arg(long = "as", value_name = "NAME")]
        by: Option<String>,
    },
    /// Print every unfinished run, with its journal and requests, as one JSON document: the
    /// input of a new build's pre-deploy check (`EngineBuilder::check_export`).
    ExportRuns {
        /// Replace free text in answers (comments, text, strings of typed input) by
        /// `[redacted]`.
        #[arg(long)]
        redact: bool,
    },
    /// Cancel a run; its open requests are resolved as cancelled.
    Cancel {
        /// The run id.
        run: String,
        /// Why, recorded with the run (over HTTP, with the responder your token names).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct Pending {
    /// Only requests of runs of this workflow.
    #[arg(long, value_name = "NAME")]
    pub workflow: Option<String>,
    /// Only requests of this run.
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
}

/// `hitl respond`: exactly one answer flag, chosen by the request's kind.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("answer").required(true).multiple(false)
    .args(["approve", "reject", "text", "select", "value"])))]
#[command(group(ArgGroup::new("decision").args(["approve", "reject"])))]
pub(crate) struct Respond {
    /// The request id.
    pub request: String,
    /// Approve an approval request.
    #[arg(long)]
    pub approve: bool,
    /// Reject an approval request.
    #[arg(long)]
    pub reject: bool,
    /// A comment with --approve or --reject.
    #[arg(long, requires = "decision", value_name = "TEXT")]
    pub comment: Option<String>,
    /// Answer a text request.
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// Pick an option: once for a selection, once per option for a multi-selection.
    #[arg(long, value_name = "OPTION")]
    pub select: Vec<String>,
    /// Answer a typed-input request with a JSON value, e.g. '{"amount": 120}'.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub value: Option<Value>,
    /// With --db: the responder recorded with the answer (over HTTP, your token names it).
    #[arg(long = "as", value_name = "NAME")]
    pub responder: Option<String>,
}

/// A run status, as `--status` accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Status {
    Running,
    Paused,
    Completed,
    Failed,
    Cancelled,
    Blocked,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Blocked => "blocked",
        }
    }
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not valid JSON ({error})"))
}

/// Where the requests are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A running application's server.
    Http { url: String, token: Option<String> },
    /// A database directory no process holds.
    Database { dir: PathBuf },
    /// A PostgreSQL database, shared with running workers.
    Postgres { url: String },
}

impl Cli {
    /// The mode, from the flags and the environment. `--db` wins over `HITL_URL` and
    /// `HITL_TOKEN` from the environment, but not over `--url` or `--token` on the command
    /// line.
    pub(crate) fn mode(&self, matches: &ArgMatches) -> Result<Mode, String> {
        let from_command_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        if let Some(url) = &self.database_url {
            if self.db.is_some() || from_command_line("url") {
                return Err(
                    "`--database-url` names the database itself: give it alone, without \
                            `--db` or `--url`"
                        .to_owned(),
                );
            }
            return Ok(Mode::Postgres { url: url.clone() });
        }
        match (&self.db, &self.url) {
            (Some(_), Some(_)) if from_command_line("url") => Err(
                "`--db` and `--url` are exclusive: use `--url` while the application runs, \
                     `--db` while it is stopped"
                    .to_owned(),
            ),
            (Some(_), _) if from_command_line("token") => {
                Err("`--token` is for `--url`; with `--db` name the responder with `--as`".to_owned())
            }
            (Some(dir), _) => Ok(Mode::Database { dir: dir.clone() }),
            (None, Some(url)) => Ok(Mode::Http {
                url: url.clone(),
                token: self.token.clone().filter(|token| !token.is_empty()),
            }),
            (None, None) => Err("say where the requests are: `--url URL` (or HITL_URL) to reach \
                                 a running application's server, or `--db DIR` to open the \
                                 database of a stopped one"
                .to_owned()),
        }
    }
}

impl Respond {
    /// The responder to record in `mode`: `--as` with `--db`, the token's owner over HTTP.
    pub(crate) fn responder(&self, mode: &Mode) -> Result<Option<String>, String> {
        match (mode, &self.responder) {
            (Mode::Database { .. } | Mode::Postgres { .. }, Some(name)) if !name.trim().is_empty() => {
                Ok(Some(name.clone()))
            }
            (Mode::Database { .. } | Mode::Postgres { .. }, _) => Err(
                "answering with `--db` or `--database-url` needs `--as NAME`: the responder recorded with the answer"
                    .to_owned(),
            ),
            (Mode::Http { .. }, Some(_)) => Err("`--as` is only for `--db`; over HTTP the \
                                                 responder is the one your token names"
                .to_owned()),
            (Mode::Http { .. }, None) => Ok(None),
        }
    }
}
