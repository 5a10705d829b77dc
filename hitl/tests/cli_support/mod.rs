//! Shared by the CLI tests: running the built `hitl` binary, and the workflows an application
//! under test runs.

#![allow(dead_code)] // each test file uses a part

use std::path::Path;
use std::process::Command;

use hitl::prelude::*;
use hitl::{PendingFilter, Request};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a test waits for something that must happen before it calls it a hang: generous,
/// so that a loaded machine makes a test slower, never red (the same bound as the workspace's
/// `hitl_workspace::PATIENCE`, which this crate's tests cannot depend on).
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// What one run of the binary did.
pub struct Ran {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `hitl args…` with no `HITL_*` variables from the environment.
pub fn hitl<I, S>(args: I) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    hitl_with_env(args, &[])
}

/// Runs `hitl args…` with these `HITL_*` variables set (and no others).
pub fn hitl_with_env<I, S>(args: I, env: &[(&str, &str)]) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<String> = args.into_iter().map(|arg| arg.as_ref().to_owned()).collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hitl"));
    command.args(&args);
    for name in [
        "HITL_URL",
        "HITL_TOKEN",
        "HITL_TOKENS",
        "HITL_SECRET",
        "HITL_DATABASE_URL",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("the hitl binary runs");
    Ran {
        args,
        code: output.status.code().expect("hitl exits with a code"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

impl Ran {
    /// Its stdout as JSON lines (what `dump` prints), each line one value; panics otherwise.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is one JSON value"))
            .collect()
    }

    /// Asserts the exit code, showing everything the binary printed if it differs.
    #[track_caller]
    pub fn exits(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "`hitl {}` exited {}, expected {code}\n--- stdout\n{}--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that stdout contains each of `parts`.
    #[track_caller]
    pub fn prints(&self, parts: &[&str]) -> &Self {
        for part in parts {
            assert!(
                self.stdout.contains(part),
                "`hitl {}` printed no `{part}`:\n{}",
                self.args.join(" "),
                self.stdout
            );
        }
        self
    }

    /// Asserts that stderr contains each of `parts`.
    #[track_caller]
    pub fn complains(&self, parts: &[&str]) -> &Self {
        for part in parts {
            assert!(
                self.stderr.contains(part),
                "`hitl {}` said no `{part}` on stderr:\n{}",
                self.args.join(" "),
                self.stderr
            );
        }
        self
    }

    /// stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!(
                "`hitl {}` printed no JSON ({error}):\n{}",
                self.args.join(" "),
                self.stdout
            )
        })
    }
}

// --- the application's workflows ---------------------------------------------------------

#[workflow(inject_context)]
pub async fn deploy(ctx: &TaskContext, service: String) -> hitl::Result<String> {
    let answer = ctx
        .request_feedback(
            Feedback::approval(format!("Deploy {service} to production?"))
                .details("Canary error rate: **0.1 %**")
                .responders(["alice", "bob"]),
        )
        .await?;
    let verdict = if answer.approved() { "approved" } else { "rejected" };
    Ok(format!(
        "{verdict} by {}: {}",
        answer.responder(),
        answer.comment().unwrap_or("-")
    ))
}

#[workflow(inject_context)]
pub async fn release_notes(ctx: &TaskContext, version: String) -> hitl::Result<String> {
    let answer = ctx
        .request_feedback(Feedback::text(format!("Release notes for {version}?")).min_len(10))
        .await?;
    Ok(answer.text().to_owned())
}

#[workflow(inject_context)]
pub async fn pick_region(ctx: &TaskContext) -> hitl::Result<String> {
    let answer = ctx
        .request_feedback(Feedback::selection(
            "Which region first?",
            ["eu-west", "us-east", "ap-south"],
        ))
        .await?;
    Ok(answer.selected().to_owned())
}

#[workflow(inject_context)]
pub async fn pick_checks(ctx: &TaskContext) -> hitl::Result<Vec<String>> {
    let answer = ctx
        .request_feedback(Feedback::multi_selection("Which checks?", ["lint", "unit", "e2e"]).min_count(1))
        .await?;
    Ok(answer.selected_all().to_vec())
}

/// The typed input of `refund`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Refund {
    pub amount: u32,
    pub reason: String,
}

#[workflow(inject_context)]
pub async fn refund(ctx: &TaskContext, order: String) -> hitl::Result<String> {
    let answer = ctx
        .request_feedback(Feedback::input::<Refund>(format!("Refund for order {order}?")))
        .await?;
    let value = answer.value();
    Ok(format!("{order}: {} ({})", value.amount, value.reason))
}

/// An engine on `dir` with every workflow above registered.
pub async fn application(dir: &Path) -> Engine {
    Engine::builder()
        .path(dir)
        .register(deploy)
        .register(release_notes)
        .register(pick_region)
        .register(pick_checks)
        .register(refund)
        .open()
        .await
        .expect("the application opens its database")
}

/// Closes the application and waits until it has let go of `dir` (its aborted tasks drop
/// their handles asynchronously), as a stopped process would have; then `hitl --db` can open
/// it.
pub async fn stop(engine: Engine, dir: &Path) {
    engine.close().await.expect("the application closes");
    let lock = std::fs::File::options()
        .write(true)
        .open(dir.join("hitl.lock"))
        .expect("a hitl database has a lock file");
    let deadline = std::time::Instant::now() + PATIENCE;
    while let Err(std::fs::TryLockError::WouldBlock) = lock.try_lock() {
        assert!(
            std::time::Instant::now() < deadline,
            "the closed engine still holds {}",
            dir.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await; // no event for a file lock
    }
}

/// The open request of a paused run.
pub async fn request_of(engine: &Engine, run_id: &str) -> Request {
    let filter = PendingFilter {
        run_id: Some(run_id.to_owned()),
        ..PendingFilter::default()
    };
    let mut requests = engine.pending(&filter).await.expect("pending requests");
    assert_eq!(requests.len(), 1, "run `{run_id}` should wait on one request");
    requests.remove(0)
}

/// Waits until the run is paused and returns its open request.
pub async fn paused<T: serde::de::DeserializeOwned>(run: &hitl::Run<T>) -> Request {
    match run.settled().await.expect("the run settles") {
        Outcome::Paused(mut requests) => requests.remove(0),
        _ => panic!("run `{}` should pause", run.id()),
    }
}
