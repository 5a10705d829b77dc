//! No stranded data on PostgreSQL: a database of schema 1 (one JSONB row per journal step)
//! migrates to schema 2 (chunk rows of packed steps) when a worker opens it, every journal
//! reads back step for step, and the paused runs in it continue.
//!
//! `tests/fixtures/postgres_schema_v1/dump.sql` holds the runs of `tests/fixtures/format_v1`
//! as the last build of schema 1 copied them (`hitl migrate-store`), so the sled fixture,
//! opened beside it, says what every journal must hold.

mod format_fixture;
mod postgres_common;

use std::collections::BTreeMap;

use format_fixture::{Fixture, pending_by_run};
use hitl::Error;
use hitl::clock::ManualClock;
use hitl::prelude::*;
use hitl::store::{PgStore, Store};
use hitl_workspace::format_v1::{self, run_ids};
use hitl_workspace::patiently;
use postgres_common::{connect, fresh_database, server_url, sql};

const DUMP: &str = include_str!("fixtures/postgres_schema_v1/dump.sql");

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
    let fixture = Fixture::unpack(1);
    let store = hitl::store::open_sled(&fixture.db).expect("the sled fixture opens");
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
    let closed_at = Fixture::unpack(1).time("clock_at_close_ms");
    let engine = format_v1::register(
        Engine::builder()
            .postgres(&url)
            .clock(ManualClock::new(closed_at)),
    )
    .open()
    .await
    .expect("the engine opens the migrated database");
    let pending = pending_by_run(&engine).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_2_converts_long_journals_and_many_runs_page_by_page() {
    let Some(server) = server_url("postgres_migration_2_converts_long_journals_and_many_runs") else {
        return;
    };
    let url = schema_1_database(&server).await;
    // 1,200 more runs of one step (more than two of the migration's pages of 500 runs), a run
    // of 20 steps (two chunks), a run whose only entry is JSON that is not an object, and a
    // run whose id is empty (it sorts before every other).
    sql(
        &url,
        r#"INSERT INTO hitl_journal (run_id, step_id, record)
           SELECT 'many-' || lpad(n::text, 4, '0'), 'only#0',
                  jsonb_build_object('v', 1, 'k', 'task', 'q', 0, 'l', 7, 's', 1000 + n, 'e', 1001 + n, 'o', n)
           FROM generate_series(1, 1200) AS n;
           INSERT INTO hitl_journal (run_id, step_id, record)
           SELECT 'long', 'step#' || lpad(n::text, 2, '0'),
                  jsonb_build_object('v', 1, 'k', 'task', 'q', n, 'l', 9, 'i', 12345, 's', 2000 + n, 'e', 2002 + n,
                                     'o', jsonb_build_object('n', n))
           FROM generate_series(0, 19) AS n;
           INSERT INTO hitl_journal (run_id, step_id, record) VALUES ('odd', 'x#0', '"just a string"');
           INSERT INTO hitl_journal (run_id, step_id, record)
           VALUES ('', 'empty#0', '{"v": 1, "k": "task", "q": 0, "l": 3, "s": 5, "e": 6, "o": "first page"}');"#,
    )
    .await;

    let refused = PgStore::connect_current(&url).await.unwrap_err();
    assert!(refused.to_string().contains("migrate it first"), "{refused}");
    assert_eq!(
        sql(&url, "SELECT max(version) FROM hitl_migrations").await,
        [[Some("1".to_owned())]],
        "a tool that only looks migrates nothing"
    );

    let store = PgStore::connect(&url).await.unwrap();
    assert_eq!(
        sql(&url, "SELECT count(*) FROM hitl_journal WHERE run_id = 'long'").await,
        [[Some("2".to_owned())]],
        "20 steps are two chunks of 16"
    );
    let long = store.load_journal("long").await.unwrap();
    assert_eq!(long.len(), 20);
    for (n, (step_id, step)) in long.iter().enumerate() {
        assert_eq!(step_id, &format!("step#{n:02}"));
        assert_eq!((step.seq, step.line, step.input_hash), (n as u64, 9, 12345));
        assert_eq!(
            (step.started_at, step.finished_at),
            (2000 + n as u64, Some(2002 + n as u64))
        );
        assert_eq!(step.output, serde_json::json!({ "n": n }));
    }
    for n in [1, 500, 501, 1000, 1200] {
        let journal = store.load_journal(&format!("many-{n:04}")).await.unwrap();
        assert_eq!(journal.len(), 1, "run many-{n:04}");
        assert_eq!(journal[0].1.output, serde_json::json!(n));
    }
    assert_eq!(
        sql(&url, "SELECT count(DISTINCT run_id) FROM hitl_journal").await,
        [[Some((RUNS.len() + 1_200 + 3).to_string())]],
        "every run's journal was moved"
    );
    let empty = store.load_journal("").await.unwrap();
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].1.output, serde_json::json!("first page"));
    let odd = store.load_journal("odd").await.unwrap_err();
    assert!(matches!(odd, Error::CorruptRecord { .. }), "{odd}");
}
