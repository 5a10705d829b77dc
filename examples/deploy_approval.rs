//! Deploy approval: deploy first, then ask a human whether to keep it — safely.
//!
//! ```text
//! cargo run --example deploy_approval
//! cargo run --example deploy_approval -- respond <request-id> approve [--comment TEXT]
//! cargo run --example deploy_approval -- respond <request-id> reject [--comment TEXT]
//! ```
//!
//! The first command opens the database directory `./deploy_approval.db` (or `$HITL_DB`) and
//! starts a run of the `release` workflow: it builds a plan, deploys — a side effect, a line
//! appended to `deployments.log` in the directory that *contains* the database directory
//! (the current directory by default) — and then asks "Keep the new deployment?". That is
//! Graflow's "bad example": there, resuming re-runs the task from its first line, so the
//! deployment would happen again. Here the run pauses durably, the program prints the request
//! id and the command that answers it, and exits.
//!
//! The `respond` command is another process, possibly days later: it opens the same
//! database, answers the request as `$USER` (or `operator`), and waits for the run. The run
//! resumes by replay — the plan and the deployment come from the journal, nothing is deployed
//! again — and either completes with the deployment id (approve) or is cancelled with
//! "rejected by <you>" (reject). It prints how many times the deployment ran for that run:
//! always 1.
//!
//! Running the first command again starts a new release with a new run id; earlier runs,
//! paused or finished, stay in the database. Bad input — an unknown subcommand, a missing or
//! unknown request id, a decision other than `approve`/`reject`, a request already answered —
//! prints what is wrong and exits with code 2; any other error exits with code 1.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use hitl::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    service: String,
    image: String,
    replicas: u32,
}

#[derive(Debug, thiserror::Error)]
enum DeployError {
    #[error("could not write the deployment log: {0}")]
    Log(#[from] std::io::Error),
    #[error(transparent)]
    Hitl(#[from] hitl::Error),
}

/// An activity: computed once, then read from the journal.
#[task]
async fn build_plan(service: String) -> Plan {
    println!("  [step] planning the release of {service}");
    Plan {
        image: format!("{service}:v42"),
        service,
        replicas: 3,
    }
}

/// The side effect: "deploys" by appending a line to the deployment log. Journaled when it
/// returns `Ok`, so a resumed run never deploys again.
#[task]
async fn deploy(plan: Plan, log: String) -> Result<String, DeployError> {
    // `run id/step id`: stable for this step of this run, across replays and restarts.
    let key = hitl::idempotency_key().unwrap_or_default();
    let run_id = key.split('/').next().unwrap_or_default();
    let deployment = format!("dep-{}", &run_id[..run_id.len().min(8)]);
    let mut file = OpenOptions::new().create(true).append(true).open(&log)?;
    writeln!(file, "{run_id} {deployment} {} x{}", plan.image, plan.replicas)?;
    println!("  [step] deployed {} as {deployment}", plan.image);
    Ok(deployment)
}

/// Deploy, then ask: the order Graflow warns against, safe because `deploy` is a step.
#[workflow(inject_context)]
async fn release(ctx: &TaskContext, service: String, log: String) -> Result<String, DeployError> {
    let plan = build_plan(service).await;
    let deployment = deploy(plan.clone(), log).await?;
    let answer = ctx
        .request_feedback(Feedback::approval("Keep the new deployment?").details(format!(
            "`{}` is live as **{deployment}** on {} replicas. Reject to roll it back.",
            plan.image, plan.replicas
        )))
        .await?;
    if !answer.approved() {
        ctx.cancel_workflow(format!("rejected by {}", answer.responder()))
            .await?;
    }
    Ok(deployment)
}

// --- the command line ---------------------------------------------------------------------------

const USAGE: &str = "usage:
  cargo run --example deploy_approval
  cargo run --example deploy_approval -- respond <request-id> approve|reject [--comment TEXT]";

/// What the command line asks for.
enum Command {
    Start,
    Respond {
        request_id: String,
        approve: bool,
        comment: Option<String>,
    },
    Help,
}

/// A reason to exit: bad arguments or a request that cannot take the answer (code 2), or
/// a failure (code 1).
enum Exit {
    Usage(String),
    Refused(String),
    Failed(String),
}

impl From<hitl::Error> for Exit {
    fn from(error: hitl::Error) -> Self {
        match error {
            hitl::Error::RequestNotFound { .. }
            | hitl::Error::AlreadyAnswered { .. }
            | hitl::Error::AlreadyVoted { .. }
            | hitl::Error::RequestExpired { .. }
            | hitl::Error::RequestCancelled { .. }
            | hitl::Error::InvalidAnswer { .. } => Exit::Refused(error.to_string()),
            other => Exit::Failed(other.to_string()),
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Command, Exit> {
    let Some(subcommand) = args.next() else {
        return Ok(Command::Start);
    };
    match subcommand.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "respond" => {}
        other => return Err(Exit::Usage(format!("unknown subcommand `{other}`"))),
    }
    let request_id = args
        .next()
        .ok_or_else(|| Exit::Usage("`respond` needs the request id".to_owned()))?;
    let approve = match args.next().as_deref() {
        Some("approve") => true,
        Some("reject") => false,
        Some(other) => {
            return Err(Exit::Usage(format!(
                "the decision is `approve` or `reject`, not `{other}`"
            )));
        }
        None => {
            return Err(Exit::Usage(
                "`respond` needs a decision: `approve` or `reject`".to_owned(),
            ));
        }
    };
    let mut comment = None;
    while let Some(arg) = args.next() {
        let text = match arg.strip_prefix("--comment") {
            Some("") => args
                .next()
                .ok_or_else(|| Exit::Usage("`--comment` needs a text".to_owned()))?,
            Some(rest) if rest.starts_with('=') => rest[1..].to_owned(),
            _ => return Err(Exit::Usage(format!("unexpected argument `{arg}`"))),
        };
        comment = Some(text);
    }
    Ok(Command::Respond {
        request_id,
        approve,
        comment,
    })
}

/// The database directory and the deployment log beside it.
fn paths() -> (PathBuf, PathBuf) {
    let db = PathBuf::from(std::env::var("HITL_DB").unwrap_or_else(|_| "deploy_approval.db".to_owned()));
    let log = db.parent().unwrap_or(Path::new("")).join("deployments.log");
    (db, log)
}

async fn open(db: &Path) -> Result<Engine, Exit> {
    Ok(Engine::builder().path(db).register(release).open().await?)
}

/// How many times the deployment of `run_id` ran, from the log.
fn deployments_of(log: &Path, run_id: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.split(' ').next() == Some(run_id))
        .count()
}

/// Starts a release and leaves it paused on the question.
async fn start() -> Result<(), Exit> {
    let (db, log) = paths();
    let engine = open(&db).await?;
    println!("database: {}", db.display());
    let run = engine
        .start(release, ("api".to_owned(), log.display().to_string()))
        .await?;
    println!("started release {}", run.id());
    let outcome = run.settled().await?;
    let run_id = run.id().to_owned();
    drop(run);
    match outcome {
        Outcome::Paused(requests) => {
            for request in &requests {
                println!("\nrelease {run_id} is paused on request {}:", request.id);
                println!("  {}", request.prompt);
                if let Some(details) = &request.details {
                    println!("  {details}");
                }
                let env = std::env::var("HITL_DB")
                    .map(|db| format!("HITL_DB={db} "))
                    .unwrap_or_default();
                println!("\nanswer it with:");
                println!(
                    "  {env}cargo run --example deploy_approval -- respond {} approve|reject [--comment TEXT]",
                    request.id
                );
            }
            println!(
                "\nthe deployment ran {} time(s) so far",
                deployments_of(&log, &run_id)
            );
        }
        other => println!("release {run_id} settled without asking: {other:?}"),
    }
    engine.close().await?;
    Ok(())
}

/// Answers a request and waits for its run to finish.
async fn respond(request_id: String, approve: bool, comment: Option<String>) -> Result<(), Exit> {
    let (db, log) = paths();
    let engine = open(&db).await?;
    let request = engine.request(&request_id).await?;
    let mut response = if approve {
        Response::approve()
    } else {
        Response::reject()
    };
    if let Some(comment) = comment {
        response = response.comment(comment);
    }
    let responder = std::env::var("USER")
        .ok()
        .filter(|user| !user.is_empty())
        .unwrap_or_else(|| "operator".to_owned());
    engine
        .respond(&request_id, response, Responder::new(&responder))
        .await?;
    println!(
        "{responder} {} request {request_id}; resuming release {}",
        if approve { "approved" } else { "rejected" },
        request.run_id
    );
    let outcome = tokio::time::timeout(Duration::from_secs(30), engine.wait(&request.run_id))
        .await
        .map_err(|_| Exit::Failed(format!("release {} did not finish within 30 s", request.run_id)))??;
    match outcome {
        Outcome::Completed(deployment) => {
            println!(
                "release {} completed: deployment {} kept",
                request.run_id,
                deployment.as_str().unwrap_or_default()
            );
        }
        Outcome::Cancelled { reason } => println!("release {} cancelled: {reason}", request.run_id),
        Outcome::Failed(failure) => println!("release {} failed: {failure}", request.run_id),
        other => println!("release {}: {other:?}", request.run_id),
    }
    println!(
        "the deployment ran {} time(s) for this release",
        deployments_of(&log, &request.run_id)
    );
    engine.close().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse(std::env::args().skip(1)) {
        Ok(Command::Start) => start().await,
        Ok(Command::Respond {
            request_id,
            approve,
            comment,
        }) => respond(request_id, approve, comment).await,
        Ok(Command::Help) => {
            println!("{USAGE}");
            Ok(())
        }
        Err(exit) => Err(exit),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit::Usage(message)) => {
            eprintln!("error: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Exit::Refused(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Exit::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
