//! No stranded data on PostgreSQL: a database of schema 1 (one JSONB row per journal step)
//! migrates to schema 2 (chunk rows of packed steps) when a worker opens it, every journal
//! reads back step for step, and the paused runs in it continue.
//!
//! `tests/fixtures/postgres_schema_v1/dump.sql` holds the runs of `tests/fixtures/format_v1`
//! as the last build of schema 1 copied them (`hitl migrate-store`), so the sled fixture,
//! opened beside it, says what every journal must hold.

mod postgres_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use hitl::clock::ManualClock;
use hitl::prelude::*;
use hitl::store::{PgStore, Store};
use hitl::{Error, PendingFilter};
use hitl_workspace::format_v1::{self, run_ids};
use hitl_workspace::patiently;
use postgres_common::{connect, fresh_database, server_url, sql};

const DUMP: &str = include_str!("fixtures/postgres_schema_v1/dump.sql");
const SLED_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format_v1/db.tar.gz");

const RUNS: [&str; 7] = [
    run_ids::PAUSED_APPROVAL,
    run_ids::PAUSED_TEXT,
    run_ids::PAUSED_QUORUM,
    run_ids::SLEEPING,
    run_ids::COMPLETED,
    run_ids::FAILED,
    run_ids::CANCELLED,
];

/// A fresh database holding the schema-1 fixture; returns its URL.
async fn schema_1_database(server: &str) -> String {
    let url = fresh_database(server).await;
    connect(&url)
        .await
        .batch_execute(DUMP)
        .await
        .expect("the schema-1 dump restores");
    url
}

/// Every journal of the sled fixture, as the current sled store reads it.
async fn sled_journals() -> BTreeMap<String, Vec<(String, hitl::store::StepRecord)>> {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(SLED_FIXTURE)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("the system's `tar` unpacks the fixture");
    assert!(status.success(), "tar failed: {status}");
    let store = hitl::store::open_sled(Path::new(dir.path())).expect("the sled fixture opens");
    let mut journals = BTreeMap::new();
    for run in RUNS {
        journals.insert(run.to_owned(), store.load_journal(run).await.unwrap());
    }
    journals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_schema_1_database_migrates_and_its_runs_continue() {
    let Some(server) = server_url("postgres_a_schema_1_database_migrates_and_its_runs_continue") else {
        return;
    };
    let url = schema_1_database(&server).await;
    let rows_before = sql(&url, "SELECT count(*) FROM hitl_journal").await;
    assert_eq!(
        rows_before,
        [[Some("13".to_owned())]],
        "the fixture's 13 steps, a row each"
    );

    let store = PgStore::connect(&url).await.expect("a schema-1 database opens");
    assert_eq!(
        sql(&url, "SELECT max(version) FROM hitl_migrations").await,
        [[Some(hitl::store::postgres::schema::current_version().to_string())]]
    );
    assert_eq!(
        sql(&url, "SELECT to_regclass('hitl_journal_v1') IS NULL").await,
        [[Some("t".to_owned())]],
        "the old journal table is gone once its rows are moved"
    );
    let expected = sled_journals().await;
    let mut steps = 0;
    for run in RUNS {
        let journal = store.load_journal(run).await.unwrap();
        assert!(!journal.is_empty(), "run {run} has a journal");
        assert_eq!(
            journal, expected[run],
            "run {run}: every step, as it was journaled"
        );
        steps += journal.len();
    }
    assert_eq!(steps, 13);
    drop(store);

    // The paused runs continue from where they stood: only the steps after the waits run.
    // The clock stands where the fixture was closed, so the sleeping run keeps sleeping.
    let manifest: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/format_v1/manifest.json")).unwrap();
    let closed_at = UNIX_EPOCH + Duration::from_millis(manifest["clock_at_close_ms"].as_u64().unwrap());
    let engine = format_v1::register(
        Engine::builder()
            .postgres(&url)
            .clock(ManualClock::new(closed_at)),
    )
    .open()
    .await
    .expect("the engine opens the migrated database");
    let pending: BTreeMap<String, hitl::Request> = engine
        .pending(&PendingFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|request| (request.run_id.clone(), request))
        .collect();
    engine
        .respond(
            &pending[run_ids::PAUSED_APPROVAL].id,
            Response::approve().comment("go"),
            Responder::new("ops"),
        )
        .await
        .unwrap();
    let run = engine
        .run(format_v1::approve_deploy, run_ids::PAUSED_APPROVAL)
        .await
        .unwrap();
    assert_eq!(
        patiently("the approved run ends", run.wait()).await.unwrap(),
        Outcome::Completed("done: plan for api; approved by ops".to_owned())
    );
    assert_eq!(
        format_v1::executions(),
        ["paused-approval/finish#0"],
        "only the step after the approval ran"
    );
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_damaged_schema_1_journal_row_is_kept_and_reported() {
    let Some(server) = server_url("postgres_a_damaged_schema_1_journal_row_is_kept_and_reported") else {
        return;
    };
    let url = schema_1_database(&server).await;
    sql(
        &url,
        "INSERT INTO hitl_journal (run_id, step_id, record) VALUES ('failed', 'zzz#0', '{\"not\": \"a step\"}')",
    )
    .await;

    let store = PgStore::connect(&url)
        .await
        .expect("the migration keeps going past a damaged row");
    let error = store.load_journal(run_ids::FAILED).await.unwrap_err();
    match &error {
        Error::CorruptRecord {
            run_id, step, detail, ..
        } => {
            assert_eq!(run_id, run_ids::FAILED);
            assert_eq!(step.as_deref(), Some("zzz#0"), "{error}");
            assert!(!detail.is_empty(), "{error}");
        }
        other => panic!("expected a corrupt record, got {other}"),
    }
    let expected = sled_journals().await;
    for run in RUNS.iter().filter(|run| **run != run_ids::FAILED) {
        assert_eq!(
            store.load_journal(run).await.unwrap(),
            expected[*run],
            "run {run} is untouched by another run's damage"
        );
    }
}
