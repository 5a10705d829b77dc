//! Writes a database fixture of the engine's current on-disk format, which
//! `tests/format_fixtures.rs` opens: `tests/fixtures/format_vN` was written by the format-N
//! engine (`manifest.json` names the commit).
//!
//! ```text
//! cargo run --example make_format_fixture -- tests/fixtures/format_v4
//! ```
//!
//! With the real engine on a fresh directory, it leaves one run in each state a database can
//! hold (the workflows are `hitl_workspace::format_v1`, the same for every fixture, so that
//! one test story opens them all): paused on an
//! approval whose webhook notification is undelivered (one failed attempt recorded), paused
//! on a text request with a deadline and a channel value, paused on a quorum approval with
//! one vote, asleep in a durable sleep (a run waiting only on a timer stays `Running`, so the
//! close leaves it `Running` on disk, as a process that stopped would), completed, failed and
//! cancelled. It then closes the
//! engine cleanly, packs the directory as `db.tar.gz` (with the system's `tar`) and writes
//! `manifest.json` beside it: the run and request ids and the clock's time at close.
//!
//! The engine runs on a manual clock started at the current time and never advanced, so the
//! sleep cannot end and the notification is not retried while the fixture is written,
//! however slow the machine.
//!
//! A fixture is never regenerated once its format has shipped (`docs/decisions.md`, "Format
//! fixtures"), so this refuses to write into a directory that already holds one.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use hitl::clock::ManualClock;
use hitl::prelude::*;
use hitl::run::StepKind;
use hitl_workspace::format_v1::{self, run_ids};
use hitl_workspace::{eventually, wait_for_steps};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run --example make_format_fixture -- <fixture directory>");
        return ExitCode::from(2);
    };
    for file in ["db.tar.gz", "manifest.json"] {
        if out.join(file).exists() {
            eprintln!(
                "{} already exists: a fixture is never regenerated once its format has shipped; \
                 a new format gets a new fixture directory",
                out.join(file).display()
            );
            return ExitCode::from(2);
        }
    }
    match write_fixture(&out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn write_fixture(out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let db = work.path().join("db");
    let clock = ManualClock::starting_now();
    let engine = format_v1::register(Engine::builder().path(&db).clock(clock.clone()))
        .open()
        .await?;

    let approval = engine
        .start_with_id(
            format_v1::approve_deploy,
            run_ids::PAUSED_APPROVAL,
            ("api".to_owned(),),
        )
        .await?;
    let approval_request = only_request(approval.settled().await?)?;
    // One failed delivery attempt is recorded before the database is closed.
    eventually("the webhook notification has a failed attempt", async || {
        let history = engine.history(run_ids::PAUSED_APPROVAL).await.ok()?;
        history
            .iter()
            .find(|entry| entry.kind == StepKind::Notification)
            .filter(|entry| entry.output["attempts"].as_array().is_some_and(|a| !a.is_empty()))
            .map(|_| ())
    })
    .await;

    let text = engine
        .start_with_id(
            format_v1::ask_ticket,
            run_ids::PAUSED_TEXT,
            ("billing".to_owned(),),
        )
        .await?;
    let text_request = only_request(text.settled().await?)?;

    let quorum = engine
        .start_with_id(
            format_v1::approve_quorum,
            run_ids::PAUSED_QUORUM,
            ("search".to_owned(),),
        )
        .await?;
    let quorum_request = only_request(quorum.settled().await?)?;
    engine
        .respond(
            &quorum_request,
            Response::approve().comment("first of two"),
            Responder::new("alice"),
        )
        .await?;
    only_request(quorum.settled().await?)?;

    let sleeping = engine
        .start_with_id(format_v1::nap, run_ids::SLEEPING, ("cache".to_owned(),))
        .await?;
    // A run waiting on nothing but a timer does not pause: it sleeps in memory, and the
    // close leaves it `Running` on disk, to be recovered at the next open.
    wait_for_steps(&engine, run_ids::SLEEPING, 2).await;
    let sleep_deadline = engine
        .history(run_ids::SLEEPING)
        .await?
        .iter()
        .find(|entry| entry.kind == StepKind::Sleep)
        .and_then(|entry| entry.output["deadline"].as_u64())
        .ok_or("the sleeping run journaled no deadline")?;

    let completed = engine
        .start_with_id(format_v1::quick, run_ids::COMPLETED, ("web".to_owned(),))
        .await?;
    expect("completed", completed.wait().await?, |o| {
        matches!(o, Outcome::Completed(_))
    })?;

    let failed = engine
        .start_with_id(
            format_v1::broken,
            run_ids::FAILED,
            ("billing".to_owned(), format_v1::FAILURE_MESSAGE.to_owned()),
        )
        .await?;
    expect("failed", failed.wait().await?, |o| {
        matches!(o, Outcome::Failed(_))
    })?;

    let cancelled = engine
        .start_with_id(
            format_v1::approve_deploy,
            run_ids::CANCELLED,
            ("legacy".to_owned(),),
        )
        .await?;
    let cancelled_request = only_request(cancelled.settled().await?)?;
    engine
        .cancel(run_ids::CANCELLED, format_v1::CANCEL_REASON)
        .await?;
    expect("cancelled", cancelled.wait().await?, |o| {
        matches!(o, Outcome::Cancelled { .. })
    })?;

    let mut runs = serde_json::Map::new();
    for info in engine.runs(&Default::default()).await? {
        runs.insert(
            info.id.clone(),
            json!({ "workflow": info.workflow, "status": info.status }),
        );
    }
    let closed_at = engine.now();
    drop((approval, text, quorum, sleeping, completed, failed, cancelled));
    engine.close().await?;

    std::fs::create_dir_all(out)?;
    let status = Command::new("tar")
        .arg("-czf")
        .arg(out.join("db.tar.gz"))
        .arg("-C")
        .arg(&db)
        .arg(".")
        .status()?;
    if !status.success() {
        return Err(format!("tar failed: {status}").into());
    }
    let manifest = json!({
        "format": marker_version(&db)?,
        "written_by": format!("hitl {} at commit {}", env!("CARGO_PKG_VERSION"), commit()),
        "clock_at_close_ms": millis(closed_at),
        "clock_at_close": humantime::format_rfc3339_millis(closed_at).to_string(),
        "sleep_deadline_ms": sleep_deadline,
        "requests": {
            run_ids::PAUSED_APPROVAL: approval_request,
            run_ids::PAUSED_TEXT: text_request,
            run_ids::PAUSED_QUORUM: quorum_request,
            run_ids::CANCELLED: cancelled_request,
        },
        "runs": Value::Object(runs),
    });
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    println!("wrote {} and manifest.json", out.join("db.tar.gz").display());
    Ok(())
}

/// The format version the engine marked the database with (`hitl.json`).
fn marker_version(db: &Path) -> Result<u64, Box<dyn std::error::Error>> {
    let marker: Value = serde_json::from_slice(&std::fs::read(db.join("hitl.json"))?)?;
    marker["version"]
        .as_u64()
        .ok_or_else(|| format!("no version in the marker {marker}").into())
}

/// The id of the one open request of a paused run.
fn only_request<T: std::fmt::Debug>(outcome: Outcome<T>) -> Result<String, String> {
    match outcome {
        Outcome::Paused(requests) if requests.len() == 1 => Ok(requests[0].id.clone()),
        other => Err(format!("expected a run paused on one request, got {other:?}")),
    }
}

fn expect<T: std::fmt::Debug>(
    what: &str,
    outcome: Outcome<T>,
    is: impl Fn(&Outcome<T>) -> bool,
) -> Result<(), String> {
    if is(&outcome) {
        Ok(())
    } else {
        Err(format!("expected the run to be {what}, got {outcome:?}"))
    }
}

fn millis(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as u64
}

/// The commit this was built from, for the record.
fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |output| String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        )
}
