//! The `hitl` command-line client: answer and inspect the human-in-the-loop requests of an
//! application.
//!
//! Two modes reach the same objects:
//!
//! * `--url URL` (or `HITL_URL`) with `--token` (or `HITL_TOKEN`): the JSON API of a running
//!   application that embeds `hitl::server`. An answer resumes its run at once; the responder
//!   is the one the token names.
//! * `--db DIR`: the database directory of a stopped application, opened directly (sled is
//!   single-process). Answers need `--as NAME` and are applied when the application starts.
//!
//! Layout: [`args`] (the command line), [`backend`] (one interface over [`http`] and
//! [`direct`]), [`render`] (tables), [`error`] (exit codes).

mod args;
mod backend;
mod direct;
mod dump;
mod error;
mod http;
mod migrate;
mod render;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{CommandFactory, FromArgMatches};
use hitl::Response;
use serde_json::Value;

use args::{Cli, Command, Mode, Respond};
use backend::{Backend, Decide, Kind};
use direct::Database;
use error::{CliError, Exit};
use http::Http;

/// Parses the command line, runs the command, prints its result, and returns the exit code.
pub(crate) fn main() -> ExitCode {
    let mut command = Cli::command();
    let matches = command.get_matches_mut();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match run(&cli, &matches) {
        Ok(output) => {
            print(&output);
            ExitCode::SUCCESS
        }
        Err(error) if error.exit == Exit::Usage => command
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                render::escape_controls(&error.message),
            )
            .exit(),
        Err(error) => {
            // Server messages quote ids, options and answers: escaped like the output.
            let message = render::escape_controls(&error.message);
            let _ = writeln!(std::io::stderr(), "error: {message}");
            error.exit.into()
        }
    }
}

/// Prints to stdout; a closed pipe (`hitl pending | head -1`) is not an error.
fn print(output: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(output.as_bytes()).and_then(|()| stdout.flush());
}

fn run(cli: &Cli, matches: &clap::ArgMatches) -> Result<String, CliError> {
    if let Command::MigrateStore { from, to } = &cli.command {
        return migrate::migrate_store(from, to, cli.json);
    }
    let mode = cli.mode(matches).map_err(CliError::usage)?;
    match &cli.command {
        Command::Dump => return dump::dump(&mode),
        Command::Migrate => return migrate::migrate(&mode, cli.json),
        _ => {}
    }
    let responder = match &cli.command {
        Command::Respond(respond) => respond.responder(&mode).map_err(CliError::usage)?,
        Command::Decide { by, .. } => match (&mode, by) {
            (Mode::Http { .. }, Some(_)) => {
                return Err(CliError::usage(
                    "`--as` is only for `--db` and `--database-url`; over HTTP the operator is the one your token names",
                ));
            }
            (Mode::Http { .. }, None) => None,
            (_, Some(name)) if !name.trim().is_empty() => Some(name.clone()),
            _ => {
                return Err(CliError::usage(
                    "deciding with `--db` or `--database-url` needs `--as NAME`: who decides is recorded with the decision",
                ));
            }
        },
        _ => None,
    };
    let backend = match &mode {
        Mode::Http { url, token } => Some(Backend::Http(Http::new(url, token.clone())?)),
        Mode::Database { dir } => Some(Backend::Database(Database::open(dir)?)),
        // Its connections live on the runtime that runs the command.
        Mode::Postgres { .. } => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::new(Exit::Failure, format!("cannot start a runtime: {error}")))?;
    runtime.block_on(async {
        let backend = match (backend, &mode) {
            (Some(backend), _) => backend,
            (None, Mode::Postgres { url }) => Backend::Database(Database::open_postgres(url).await?),
            (None, _) => unreachable!("only PostgreSQL opens on the command's runtime"),
        };
        let output = execute(cli, &backend, responder.as_deref()).await;
        let closed = backend.close().await;
        let output = output?;
        closed?;
        Ok(output)
    })
}

async fn execute(cli: &Cli, backend: &Backend, responder: Option<&str>) -> Result<String, CliError> {
    let now = SystemTime::now();
    // Human output is escaped once more as a whole, so nothing a render function missed
    // reaches the terminal raw; `--json` stays the exact values.
    let show = |value: &Value, table: &dyn Fn(&Value) -> String| {
        if cli.json {
            render::json(value)
        } else {
            render::escape_controls(&table(value)).into_owned()
        }
    };
    Ok(match &cli.command {
        Command::Pending(pending) => {
            let run = match &pending.run {
                Some(run) => Some(backend.resolve(Kind::Run, run).await?),
                None => None,
            };
            let requests = backend
                .pending(pending.workflow.as_deref(), run.as_deref())
                .await?;
            show(&requests, &|requests| render::requests_table(requests, now))
        }
        Command::Show { request } => {
            let id = backend.resolve(Kind::Request, request).await?;
            let request = backend.request(&id).await?;
            let command = match backend {
                Backend::Http(_) => "hitl".to_owned(),
                Backend::Database(db) => format!("hitl {} --as NAME", db.where_flag()),
            };
            show(&request, &|request| {
                render::request_detail(request, &command, now)
            })
        }
        Command::Respond(respond) => {
            let id = backend.resolve(Kind::Request, &respond.request).await?;
            let request = backend.request(&id).await?;
            let response = response_for(&request, &id, respond)?;
            let answered = backend.respond(&id, response, responder).await?;
            show(&answered, &|answered| {
                let mut text = render::answered(answered);
                if let (Backend::Database(db), Some("answered")) = (backend, answered["status"].as_str()) {
                    text.push_str(&db.after_answer());
                }
                text
            })
        }
        Command::Runs { status } => {
            let runs = backend.runs(status.map(args::Status::as_str)).await?;
            show(&runs, &|runs| render::runs_table(runs, now))
        }
        Command::History { run } => {
            let run = backend.resolve(Kind::Run, run).await?;
            let steps = backend.history(&run).await?;
            if cli.json {
                show(&steps, &|_| String::new())
            } else {
                let info = backend.run(&run).await?;
                render::escape_controls(&render::history(&info, &steps, now)).into_owned()
            }
        }
        Command::Dump | Command::Migrate | Command::MigrateStore { .. } => {
            unreachable!("`dump`, `migrate` and `migrate-store` run before a backend is opened")
        }
        Command::Decide {
            run,
            cancel,
            rewind_to,
            reason,
            by,
            ..
        } => {
            let run = backend.resolve(Kind::Run, run).await?;
            let action = match (cancel, rewind_to) {
                (true, _) => Decide::Cancel,
                (false, Some(step)) => Decide::Rewind(step.clone()),
                (false, None) => Decide::ResumeAnyway,
            };
            let decided = backend
                .decide(&run, &action, reason, by.as_deref().or(responder))
                .await?;
            show(&decided, &render::decided)
        }
        Command::ExportRuns { redact } => {
            let export = backend.export_runs(*redact).await?;
            serde_json::to_string_pretty(&export).expect("JSON prints")
        }
        Command::Cancel { run, reason } => {
            let run = backend.resolve(Kind::Run, run).await?;
            let cancelled = backend.cancel(&run, reason.as_deref()).await?;
            show(&cancelled, &render::cancelled)
        }
    })
}

/// The answer the flags give, shaped by the request's kind: one `--select` answers a
/// selection, any number a multi-selection. A flag that does not fit the kind is refused
/// here with the flags that do, before anything is sent.
fn response_for(request: &Value, id: &str, flags: &Respond) -> Result<Response, CliError> {
    let kind = request["kind"].as_str().unwrap_or_default();
    let options: Vec<String> = request["options"]
        .as_array()
        .map(|options| {
            options
                .iter()
                .filter_map(|option| option.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let refuse = |what: &str| {
        let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        CliError::refused(format!(
            "request `{id}` is {article} {} request, so {what} does not answer it; use: hitl respond {id} {}",
            kind.replace('_', "-"),
            render::answer_hint(kind, &options)
        ))
    };
    let flag = if flags.approve || flags.reject {
        "--approve/--reject"
    } else if flags.text.is_some() {
        "--text"
    } else if !flags.select.is_empty() {
        "--select"
    } else {
        "--value"
    };
    let response = match kind {
        "approval" if flags.approve || flags.reject => {
            let response = if flags.approve {
                Response::approve()
            } else {
                Response::reject()
            };
            match &flags.comment {
                Some(comment) => response.comment(comment),
                None => response,
            }
        }
        "text" => Response::text(flags.text.clone().ok_or_else(|| refuse(flag))?),
        "selection" => match flags.select.as_slice() {
            [option] => Response::select(option),
            [] => return Err(refuse(flag)),
            _ => return Err(refuse("more than one `--select`")),
        },
        "multi_selection" if !flags.select.is_empty() => Response::select_all(&flags.select),
        "input" => Response::value(flags.value.clone().ok_or_else(|| refuse(flag))?),
        "approval" | "multi_selection" => return Err(refuse(flag)),
        // A kind this CLI does not know: send what the flags say and let the server judge.
        _ => match (&flags.text, flags.select.as_slice(), &flags.value) {
            (Some(text), ..) => Response::text(text),
            (_, [option], _) => Response::select(option),
            (_, [], Some(value)) => Response::value(value.clone()),
            (_, [], None) => Response::Approval {
                approved: flags.approve,
                comment: flags.comment.clone(),
            },
            (_, options, _) => Response::select_all(options),
        },
    };
    Ok(response)
}
