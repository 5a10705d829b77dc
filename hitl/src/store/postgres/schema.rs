//! hitl's tables in PostgreSQL, created and upgraded by versioned migrations.
//!
//! Each migration runs in its own transaction and is recorded in `hitl_migrations`. Every
//! worker runs the missing ones at open while holding one advisory lock, so that workers
//! starting together migrate once. A database migrated by a newer hitl keeps working with
//! an older one as long as every migration it does not know is marked additive (new tables,
//! columns, indexes that older code ignores); otherwise the older worker refuses to open.

use tokio_postgres::Client;

use super::pg_error;
use crate::error::{Error, Result};
use crate::store::{StoreError, StoreErrorKind};

/// The advisory lock every migrating worker takes (`"hitl"` in ASCII).
const MIGRATION_LOCK: i64 = 0x6869_746c;

/// One schema change.
pub(super) struct Migration {
    pub(super) version: i32,
    pub(super) description: &'static str,
    /// Older code keeps working on a schema with this change applied.
    pub(super) additive: bool,
    pub(super) sql: &'static str,
    /// Rows to rewrite in Rust after `sql`, in the same transaction.
    pub(super) then: Option<Rewrite>,
}

/// A rewrite of stored rows that SQL alone cannot do (the packed encodings are hitl's).
#[derive(Clone, Copy)]
pub(super) enum Rewrite {
    /// Schema 1's journal rows into chunk rows ([`super::journal::convert_v1`]).
    JournalIntoChunks,
}

impl Rewrite {
    async fn run(self, transaction: &tokio_postgres::Transaction<'_>) -> Result<()> {
        match self {
            Rewrite::JournalIntoChunks => super::journal::convert_v1(transaction).await,
        }
    }
}

/// Every migration this build knows, oldest first.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "runs, journal, channels, definitions, requests, outbox, timers, meta",
        additive: true,
        // Ids sort byte-wise (`COLLATE "C"`), as the `Store` contract's paging needs. Columns
        // hold what queries filter on and the lease; `record` holds the whole record as JSON.
        sql: r#"
CREATE TABLE hitl_runs (
    id TEXT COLLATE "C" PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    owner TEXT,
    lease_until BIGINT,
    lease_epoch BIGINT NOT NULL,
    record JSONB NOT NULL
);
CREATE INDEX hitl_runs_by_status ON hitl_runs (status, lease_until);
CREATE INDEX hitl_runs_by_workflow ON hitl_runs (workflow, id);
CREATE TABLE hitl_journal (
    run_id TEXT COLLATE "C" NOT NULL,
    step_id TEXT COLLATE "C" NOT NULL,
    record JSONB NOT NULL,
    PRIMARY KEY (run_id, step_id)
);
CREATE TABLE hitl_channels (
    run_id TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value JSONB NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE hitl_definitions (
    workflow TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    sites JSONB NOT NULL,
    PRIMARY KEY (workflow, fingerprint)
);
CREATE TABLE hitl_requests (
    id TEXT COLLATE "C" PRIMARY KEY,
    run_id TEXT COLLATE "C" NOT NULL,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    record JSONB NOT NULL
);
CREATE INDEX hitl_requests_by_status ON hitl_requests (status, created_at, id);
CREATE INDEX hitl_requests_by_run ON hitl_requests (run_id);
CREATE TABLE hitl_outbox (
    id TEXT COLLATE "C" PRIMARY KEY,
    request_id TEXT COLLATE "C" NOT NULL,
    open BOOLEAN NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    record JSONB NOT NULL
);
CREATE INDEX hitl_outbox_due ON hitl_outbox (next_attempt_at, id) WHERE open;
CREATE INDEX hitl_outbox_by_request ON hitl_outbox (request_id, id);
CREATE TABLE hitl_timers (
    deadline BIGINT NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (deadline, kind, target)
);
CREATE TABLE hitl_meta (
    key TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
"#,
        then: None,
    },
    Migration {
        version: 2,
        description: "packed records: the journal as chunk rows of packed steps, runs and requests as BYTEA",
        // Older workers read and write the old columns.
        additive: false,
        // The new journal table takes the old one's name; `then` moves the rows and drops the
        // old. Run and request records keep their JSON, as bytes (which read as JSON: a packed
        // record starts with a byte JSON never does); they are packed when next written.
        sql: r#"
ALTER TABLE hitl_runs ALTER COLUMN record TYPE BYTEA USING convert_to(record::text, 'UTF8');
ALTER TABLE hitl_requests ALTER COLUMN record TYPE BYTEA USING convert_to(record::text, 'UTF8');
ALTER TABLE hitl_journal RENAME TO hitl_journal_v1;
ALTER INDEX hitl_journal_pkey RENAME TO hitl_journal_v1_pkey;
CREATE TABLE hitl_journal (
    run_id TEXT COLLATE "C" NOT NULL,
    chunk INT NOT NULL,
    steps BYTEA NOT NULL,
    PRIMARY KEY (run_id, chunk)
);
"#,
        then: Some(Rewrite::JournalIntoChunks),
    },
];

/// The schema version this build writes.
pub fn current_version() -> i32 {
    MIGRATIONS.last().map_or(0, |migration| migration.version)
}

/// What [`PgStore::migrate`](super::PgStore::migrate) found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied now, oldest first.
    pub applied: Vec<i32>,
    /// The schema version of the database afterwards.
    pub version: i32,
    /// Versions newer than this build knows, all additive (else `migrate` fails).
    pub unknown_additive: Vec<i32>,
}

/// Brings the schema up to this build's version under the migration lock.
pub(super) async fn migrate(client: &mut Client) -> Result<MigrationReport> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    let result = migrate_locked(client).await;
    // The lock is the session's: give it back even when a migration failed.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error);
    let report = result?;
    unlocked?;
    Ok(report)
}

async fn migrate_locked(client: &mut Client) -> Result<MigrationReport> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS hitl_migrations (
                version INT PRIMARY KEY,
                description TEXT NOT NULL,
                additive BOOLEAN NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg_error)?;
    let rows = client
        .query(
            "SELECT version, additive FROM hitl_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let stored: Vec<(i32, bool)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    let known = current_version();
    let newer: Vec<(i32, bool)> = stored
        .iter()
        .copied()
        .filter(|(version, _)| *version > known)
        .collect();
    if let Some((version, _)) = newer.iter().find(|(_, additive)| !additive) {
        return Err(Error::Storage(StoreError::new(
            StoreErrorKind::Unavailable,
            format!(
                "the database's hitl schema has migration {version}, which this build (schema \
                 version {known}) does not know and which is not additive: upgrade hitl on this worker"
            ),
        )));
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        if stored.iter().any(|(version, _)| *version == migration.version) {
            continue;
        }
        let transaction = client.transaction().await.map_err(pg_error)?;
        transaction.batch_execute(migration.sql).await.map_err(pg_error)?;
        if let Some(rewrite) = migration.then {
            rewrite.run(&transaction).await?;
        }
        transaction
            .execute(
                "INSERT INTO hitl_migrations (version, description, additive) VALUES ($1, $2, $3)",
                &[&migration.version, &migration.description, &migration.additive],
            )
            .await
            .map_err(pg_error)?;
        transaction.commit().await.map_err(pg_error)?;
        tracing::info!(
            version = migration.version,
            migration.description,
            "hitl schema migrated"
        );
        applied.push(migration.version);
    }
    if !newer.is_empty() {
        tracing::warn!(
            ?newer,
            "the database has additive hitl migrations newer than this build; working on"
        );
    }
    Ok(MigrationReport {
        applied,
        version: stored
            .iter()
            .map(|(version, _)| *version)
            .chain([known])
            .max()
            .unwrap_or(known),
        unknown_additive: newer.into_iter().map(|(version, _)| version).collect(),
    })
}

/// The database's hitl schema version: its newest applied migration, 0 when it has none.
pub(super) async fn stored_version(client: &impl deadpool_postgres::GenericClient) -> Result<i32> {
    let row = client
        .query_one(
            "SELECT CASE WHEN to_regclass('hitl_migrations') IS NULL THEN 0 \
             ELSE (SELECT COALESCE(MAX(version), 0) FROM hitl_migrations) END",
            &[],
        )
        .await
        .map_err(pg_error)?;
    Ok(row.get(0))
}
