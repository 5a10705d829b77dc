//! No stranded data: a database written by any earlier on-disk format opens with this engine,
//! and every run in it continues where it stood.
//!
//! `tests/fixtures/format_v1/db.tar.gz`, `format_v2/` and `format_v3/` were written by
//! `examples/make_format_fixture.rs`, run by the engine of that format, with the workflows of
//! `hitl_workspace::format_v1` (the same for every fixture, so that one story opens them all);
//! `manifest.json` beside each holds its request ids and the time on the engine's clock when
//! it was closed. A fixture is never regenerated (`docs/decisions.md`, "Format fixtures"): it
//! is what a user's disk holds.
//!
//! The engine runs on a manual clock set to the fixture's close, so the sleeping run is not
//! due until the test moves the clock past its deadline.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use hitl::feedback::FeedbackKind;
use hitl::prelude::*;
use hitl::run::{StepKind, StepStatus};
use hitl::{FailureKind, RequestStatus};
use hitl_workspace::format_v1::{self, run_ids};
use hitl_workspace::{WatchedClock, patiently};
use serde_json::Value;

mod format_fixture;
use format_fixture::{Fixture, pending_by_run};

impl Fixture {
    async fn open(&self, clock: &WatchedClock) -> Engine {
        format_v1::register(Engine::builder().path(&self.db).clock(clock.clone()))
            .open()
            .await
            .expect("the current engine opens the fixture's database")
    }
}

/// The `version` of the database's `hitl.json` marker.
fn marker_version(db: &Path) -> u64 {
    let marker: Value = serde_json::from_slice(&std::fs::read(db.join("hitl.json")).unwrap()).unwrap();
    assert_eq!(marker["format"], "hitl", "{marker}");
    marker["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no version in {marker}"))
}

/// The on-disk format this engine writes (`hitl/src/store/sled/format.rs`), which an open
/// of an older database migrates it to.
const CURRENT_FORMAT: u64 = 4;

/// What the marker of a fixture's database says once the current engine has opened and
/// closed it: it is in the current format, whose trees replaced any older format's.
fn assert_format_after_open(db: &Path) {
    assert_eq!(
        marker_version(db),
        CURRENT_FORMAT,
        "the format after opening an older database"
    );
    let dump = dump(db);
    assert_eq!(
        dump[0],
        serde_json::json!({ "format": "hitl", "version": CURRENT_FORMAT })
    );
    let trees: std::collections::BTreeSet<&str> = dump[1..]
        .iter()
        .map(|line| line["tree"].as_str().unwrap())
        .collect();
    for tree in ["runs", "journal", "requests", "outbox", "definitions"] {
        assert!(
            trees.contains(tree),
            "the dump shows the {tree} records: {trees:?}"
        );
    }
    assert!(
        dump.iter().all(|line| line.get("error").is_none()),
        "every record of the migrated database decodes"
    );
}

/// `hitl::store::dump_sled` of `db`: every record as JSON, one value per line.
fn dump(db: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    hitl::store::dump_sled(db, &mut out).expect("the database dumps");
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

async fn statuses(engine: &Engine) -> BTreeMap<String, RunStatus> {
    engine
        .runs(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|info| (info.id, info.status))
        .collect()
}

/// The statuses the runs have once every open request is answered and the sleep is over.
fn finished() -> BTreeMap<String, RunStatus> {
    [
        (run_ids::PAUSED_APPROVAL, RunStatus::Completed),
        (run_ids::PAUSED_TEXT, RunStatus::Completed),
        (run_ids::PAUSED_QUORUM, RunStatus::Completed),
        (run_ids::SLEEPING, RunStatus::Completed),
        (run_ids::COMPLETED, RunStatus::Completed),
        (run_ids::FAILED, RunStatus::Failed),
        (run_ids::CANCELLED, RunStatus::Cancelled),
    ]
    .into_iter()
    .map(|(id, status)| (id.to_owned(), status))
    .collect()
}

/// How the run ends (waiting for it).
async fn outcome<W: Workflow>(engine: &Engine, run_id: &str, workflow: W) -> Outcome<W::Output> {
    let run = engine.run(workflow, run_id).await.unwrap();
    patiently(format!("run {run_id} ends"), run.wait()).await.unwrap()
}

/// One test, not one per format: the fixtures hold the same run ids, and the executions the
/// story counts are this process's.
#[tokio::test]
async fn a_database_of_every_earlier_format_opens_and_every_run_in_it_continues() {
    for format in [1, 2, 3] {
        eprintln!("the format-{format} fixture");
        every_run_in_the_fixture_continues(format).await;
    }
}

/// Opens the fixture of format `format`, checks every run stands where it was left, answers
/// the open requests and ends the sleep, and checks that every run finished without running
/// a completed step again.
async fn every_run_in_the_fixture_continues(format: u32) {
    let executed_before = format_v1::executions().len();
    let fixture = Fixture::unpack(format);
    assert_eq!(
        marker_version(&fixture.db),
        u64::from(format),
        "the fixture's marker names its format"
    );
    assert_eq!(fixture.manifest["format"], format, "the manifest names it too");
    let closed_at = fixture.time("clock_at_close_ms");
    let deadline = fixture.time("sleep_deadline_ms");
    assert!(
        deadline > closed_at,
        "the fixture's sleep was over before it was closed"
    );
    let clock = WatchedClock::new(closed_at);
    let engine = fixture.open(&clock).await;

    // Every run stands where the fixture left it, on the code it started with.
    let expected = BTreeMap::from([
        (run_ids::PAUSED_APPROVAL.to_owned(), RunStatus::Paused),
        (run_ids::PAUSED_TEXT.to_owned(), RunStatus::Paused),
        (run_ids::PAUSED_QUORUM.to_owned(), RunStatus::Paused),
        // Left `Running` by the close; the open recovered it, and it sleeps again.
        (run_ids::SLEEPING.to_owned(), RunStatus::Running),
        (run_ids::COMPLETED.to_owned(), RunStatus::Completed),
        (run_ids::FAILED.to_owned(), RunStatus::Failed),
        (run_ids::CANCELLED.to_owned(), RunStatus::Cancelled),
    ]);
    assert_eq!(statuses(&engine).await, expected);
    for info in engine.runs(&Default::default()).await.unwrap() {
        assert_eq!(
            fixture.manifest["runs"][&info.id]["workflow"], info.workflow,
            "run {}",
            info.id
        );
        assert_eq!(
            info.definition_changed, None,
            "run {}: the fingerprints differ",
            info.id
        );
    }

    // The open requests are listed, as they were asked.
    let pending = pending_by_run(&engine).await;
    assert_eq!(
        pending.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            run_ids::PAUSED_APPROVAL,
            run_ids::PAUSED_QUORUM,
            run_ids::PAUSED_TEXT
        ]
    );
    let approval = &pending[run_ids::PAUSED_APPROVAL];
    assert_eq!(approval.id, fixture.request(run_ids::PAUSED_APPROVAL));
    assert_eq!(approval.kind, FeedbackKind::Approval);
    assert_eq!(approval.prompt, "Deploy api?");
    assert_eq!(approval.details.as_deref(), Some("The plan: **plan for api**"));
    assert_eq!(approval.status, RequestStatus::Pending);
    let text = &pending[run_ids::PAUSED_TEXT];
    assert_eq!(text.id, fixture.request(run_ids::PAUSED_TEXT));
    assert_eq!(text.kind, FeedbackKind::Text);
    assert_eq!(text.prompt, "Ticket for billing?");
    assert_eq!(text.constraints.pattern.as_deref(), Some("[A-Z]+-[0-9]+"));
    assert_eq!(
        text.expires_at,
        Some(text.created_at + format_v1::TEXT_EXPIRES_AFTER)
    );
    let quorum = &pending[run_ids::PAUSED_QUORUM];
    assert_eq!(quorum.id, fixture.request(run_ids::PAUSED_QUORUM));
    assert_eq!(quorum.kind, FeedbackKind::Approval);
    assert_eq!(quorum.prompt, "Two approvals to deploy search?");
    assert_eq!(quorum.quorum, 2);
    assert_eq!(quorum.responders, format_v1::QUORUM_RESPONDERS);
    let votes: Vec<_> = quorum
        .votes
        .iter()
        .map(|vote| (vote.responder.as_str(), vote.approved, vote.comment.as_deref()))
        .collect();
    assert_eq!(votes, [("alice", true, Some("first of two"))]);

    // The undelivered notification is still in the outbox, with its failed attempt.
    let history = engine.history(run_ids::PAUSED_APPROVAL).await.unwrap();
    let notification = history
        .iter()
        .find(|entry| entry.kind == StepKind::Notification)
        .expect("the approval's notification is in its history");
    assert_eq!(notification.output["url"], format_v1::UNREACHABLE_HOOK);
    assert_ne!(notification.status, StepStatus::Completed, "{notification:?}");
    assert!(
        notification.output["attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "the fixture's failed attempt is kept: {notification:?}"
    );

    // The cancelled run's request stays cancelled.
    let cancelled_request = fixture.request(run_ids::CANCELLED);
    assert_eq!(
        engine.request(&cancelled_request).await.unwrap().status,
        RequestStatus::Cancelled
    );
    let error = engine
        .respond(&cancelled_request, Response::approve(), Responder::new("ops"))
        .await
        .unwrap_err();
    assert!(matches!(error, hitl::Error::RequestCancelled { .. }), "{error}");

    // The text request's stored constraint still validates.
    let error = engine
        .respond(&text.id, Response::text("soon"), Responder::new("dana"))
        .await
        .unwrap_err();
    assert!(matches!(error, hitl::Error::InvalidAnswer { .. }), "{error}");

    // Finished runs keep their outcomes.
    assert_eq!(
        engine
            .run(format_v1::quick, run_ids::COMPLETED)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap(),
        Outcome::Completed("plan for web".to_owned())
    );
    match engine
        .run(format_v1::broken, run_ids::FAILED)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap()
    {
        Outcome::Failed(failure) => {
            assert_eq!(failure.kind, FailureKind::Workflow);
            assert_eq!(failure.message, format_v1::FAILURE_MESSAGE);
        }
        other => panic!("the failed run: {other:?}"),
    }
    assert_eq!(
        engine
            .run(format_v1::approve_deploy, run_ids::CANCELLED)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap(),
        Outcome::Cancelled {
            reason: format_v1::CANCEL_REASON.to_owned()
        }
    );

    // Answers resume the paused runs, which finish from where they stopped.
    engine
        .respond(
            &approval.id,
            Response::approve().comment("go"),
            Responder::new("ops"),
        )
        .await
        .unwrap();
    engine
        .respond(&text.id, Response::text("OPS-42"), Responder::new("dana"))
        .await
        .unwrap();
    engine
        .respond(&quorum.id, Response::approve(), Responder::new("bob"))
        .await
        .unwrap();
    assert_eq!(
        outcome(&engine, run_ids::PAUSED_APPROVAL, format_v1::approve_deploy).await,
        Outcome::Completed("done: plan for api; approved by ops".to_owned())
    );
    assert_eq!(
        outcome(&engine, run_ids::PAUSED_TEXT, format_v1::ask_ticket).await,
        Outcome::Completed("done: plan for billing; ticket OPS-42 (prefix OPS)".to_owned())
    );
    assert_eq!(
        outcome(&engine, run_ids::PAUSED_QUORUM, format_v1::approve_quorum).await,
        Outcome::Completed("done: plan for search; approved: true, votes of alice+bob".to_owned())
    );

    // The sleeping run went back to sleep on its journaled deadline, and ends once it is due.
    clock.wait_for_sleep_until(deadline).await;
    assert_eq!(
        engine.run_info(run_ids::SLEEPING).await.unwrap().status,
        RunStatus::Running
    );
    clock.advance(deadline.duration_since(closed_at).unwrap());
    let sleeping = engine.run(format_v1::nap, run_ids::SLEEPING).await.unwrap();
    assert_eq!(
        patiently("the sleeping run ends", sleeping.wait()).await.unwrap(),
        Outcome::Completed("done: plan for cache".to_owned())
    );
    drop(sleeping);
    assert_eq!(statuses(&engine).await, finished());

    // What completed before the database was closed did not run again: only the steps
    // after each wait ran, once.
    let mut executions = format_v1::executions().split_off(executed_before);
    executions.sort();
    assert_eq!(
        executions,
        [
            "paused-approval/finish#0",
            "paused-quorum/finish#0",
            "paused-text/finish#0",
            "sleeping/finish#0",
        ]
    );

    engine.close().await.unwrap();
    assert_format_after_open(&fixture.db);

    // And what this engine wrote opens again.
    let engine = fixture.open(&clock).await;
    assert_eq!(statuses(&engine).await, finished());
    engine.close().await.unwrap();
}

/// Set (to a database directory) only in the child process of the migration crash test.
const MIGRATION_CHILD_ENV: &str = "FORMAT_V1_MIGRATION_CHILD";

/// The child of [`a_migration_killed_at_any_point_leaves_the_old_format_readable_and_completes_later`]:
/// opens the database with `HITL_FAILPOINT` set, which aborts the process mid-migration.
#[test]
fn migration_child() {
    let Ok(db) = std::env::var(MIGRATION_CHILD_ENV) else {
        return;
    };
    hitl::store::dump_sled(Path::new(&db), &mut std::io::sink()).unwrap();
    panic!("the failpoint did not abort the migration");
}

/// The run records of format `format`'s runs tree (`runs`, `runs.2`, `runs.3`), read with sled alone
/// from a copy, as (key, value).
fn old_runs(db: &Path, format: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(db)
        .arg(copy.path().join("db"))
        .status()
        .unwrap();
    assert!(status.success());
    let sled = sled::open(copy.path().join("db")).unwrap();
    let tree = match format {
        1 => "runs",
        2 => "runs.2",
        _ => "runs.3",
    };
    sled.open_tree(tree)
        .unwrap()
        .iter()
        .map(|entry| {
            let (key, value) = entry.unwrap();
            (key.to_vec(), value.to_vec())
        })
        .collect()
}

#[test]
fn a_migration_killed_at_any_point_leaves_the_old_format_readable_and_completes_later() {
    // (fixture, failpoint, the marker after the kill)
    let kills = [
        (1, "migrate_after_runs", 1),
        (1, "migrate_after_journal", 1),
        (1, "migrate_v2_after_requests", 1),
        (1, "migrate_before_marker", 1),
        (1, "migrate_after_marker", CURRENT_FORMAT),
        (2, "migrate_v2_after_requests", 2),
        (2, "migrate_before_marker", 2),
        (2, "migrate_after_marker", CURRENT_FORMAT),
        (3, "migrate_before_marker", 3),
        (3, "migrate_after_marker", CURRENT_FORMAT),
    ];
    for format in [1, 2, 3] {
        let reference = Fixture::unpack(format);
        let old = old_runs(&reference.db, format);
        assert_eq!(old.len(), 7, "the format-{format} fixture's runs");
        let migrated = dump(&reference.db);
        assert_format_after_open(&reference.db);

        for (_, point, marker_after_kill) in kills.iter().filter(|(of, ..)| *of == format) {
            let fixture = Fixture::unpack(format);
            let output = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "migration_child", "--nocapture", "--test-threads=1"])
                .env(MIGRATION_CHILD_ENV, &fixture.db)
                .env("HITL_FAILPOINT", point)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                !output.status.success() && stderr.contains(&format!("hitl failpoint `{point}` hit")),
                "format {format}: the child dies at {point}: {}\n{stderr}",
                output.status
            );
            assert_eq!(
                marker_version(&fixture.db),
                *marker_after_kill,
                "format {format}: the marker after a kill at {point}"
            );
            if *marker_after_kill == u64::from(format) {
                assert_eq!(
                    old_runs(&fixture.db, format),
                    old,
                    "format {format}: after a kill at {point}, the old records are all there"
                );
            }
            assert_eq!(
                dump(&fixture.db),
                migrated,
                "format {format}: after a kill at {point}, the next open migrates to the same records"
            );
            assert_format_after_open(&fixture.db);
        }
    }
}
