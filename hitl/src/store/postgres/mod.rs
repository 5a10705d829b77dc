//! [`PgStore`]: the [`Store`] on PostgreSQL, for many workers on one database (feature
//! `postgres`).
//!
//! Every method is one statement or one transaction, so atomicity is the database's:
//! a claim is an `UPDATE … WHERE status = 'paused'` (of concurrent claims one matches), a
//! lapsed-lease takeover picks rows `FOR UPDATE SKIP LOCKED` (workers claiming together take
//! different runs, none waits), a journal write locks its run's row `FOR SHARE` and writes
//! only if the lease epoch still matches (the fence), and a resolution reads its request
//! `FOR UPDATE` (first valid answer wins). Changes other workers must act on — a resolution,
//! a timer, a released run — are announced with `pg_notify` in the same transaction
//! ([`events`]). Writes are durable when they commit, so [`Store::flush`] has nothing to do.
//!
//! Tables are created by versioned migrations ([`schema`]) at connect; the records are
//! stored as JSONB beside the columns the queries filter on, and the columns are what the
//! store trusts for status and leases.

mod events;
mod import;
pub mod schema;
mod url;

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{Config, NoTls, Row};

pub use import::ImportReport;
pub use schema::MigrationReport;
pub use url::redact;

use super::{
    FlushFuture, OutboxRecord, RequestChange, RequestQuery, RequestRecord, Resolved, RunQuery, RunRecord,
    StepRecord, StorageStats, Store, StoreError, StoreErrorKind, StoreEvents, StoreFuture, Timer,
    TimerAction, lost_lease,
};
use crate::error::{Error, Result};
use crate::model::request::RequestStatus;

/// How many connections a [`PgStore`] opens at most, unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// A [`Store`] on a PostgreSQL database (feature `postgres`).
///
/// ```no_run
/// # async fn open() -> hitl::Result<()> {
/// let store = hitl::store::PgStore::connect("postgres://hitl@localhost/hitl").await?;
/// let engine = hitl::Engine::builder().store(store).open().await?;
/// # Ok(()) }
/// ```
pub struct PgStore {
    pool: Pool,
    config: Config,
    /// The URL without its password, for logs and errors.
    redacted_url: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.redacted_url)
            .finish()
    }
}

/// A failure of the database or its connection, as a [`StoreError`] of the right kind.
pub(crate) fn pg_error(error: tokio_postgres::Error) -> Error {
    let kind = match error.code().map(|code| code.code()) {
        // Serialization failure, deadlock: retrying may succeed.
        Some("40001" | "40P01") => StoreErrorKind::Conflict,
        Some(code) if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") => {
            StoreErrorKind::Unavailable
        }
        Some(code) if code.starts_with("22") || code.starts_with("23") => StoreErrorKind::Corrupt,
        Some(_) => StoreErrorKind::Io,
        None if error.is_closed() => StoreErrorKind::Unavailable,
        None => StoreErrorKind::Unavailable,
    };
    Error::Storage(StoreError::new(kind, error))
}

fn pool_error(error: deadpool_postgres::PoolError) -> Error {
    match error {
        deadpool_postgres::PoolError::Backend(error) => pg_error(error),
        other => Error::Storage(StoreError::new(StoreErrorKind::Unavailable, other.to_string())),
    }
}

/// A `u64` time or count as PostgreSQL's `BIGINT` (saturating: `u64::MAX` means "no bound").
fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn limit(value: Option<usize>) -> Option<i64> {
    value.map(|limit| i64::try_from(limit).unwrap_or(i64::MAX))
}

fn unbig(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

/// A serde enum's name (`RunStatus::Paused` → `paused`), as stored in a status column.
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        other => format!("{other:?}"),
    }
}

fn parse_name<T: DeserializeOwned>(key: &str, name: String) -> Result<T> {
    serde_json::from_value(Value::String(name)).map_err(|source| Error::Decode {
        key: key.to_owned(),
        source,
    })
}

fn decode<T: DeserializeOwned>(key: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|source| Error::Decode {
        key: key.to_owned(),
        source,
    })
}

/// The columns a run is read back from: its JSON, then what the columns say of it.
const RUN_COLUMNS: &str = "id, record::text, status, owner, lease_until, lease_epoch, updated_at";

/// A run as stored: the record, with status and lease as its columns hold them.
fn run_from(row: &Row) -> Result<RunRecord> {
    let id: String = row.get(0);
    let key = format!("runs/{id}");
    let mut run: RunRecord = decode(&key, row.get(1))?;
    run.status = parse_name(&key, row.get(2))?;
    run.owner = row.get(3);
    run.lease_until = row.get::<_, Option<i64>>(4).map(unbig);
    run.lease_epoch = unbig(row.get(5));
    run.updated_at = unbig(row.get(6));
    Ok(run)
}

/// Decodes each row, skipping (and logging) records that no longer decode.
fn decoded<T>(rows: &[Row], what: &str, decode: impl Fn(&Row) -> Result<T>) -> Vec<T> {
    rows.iter()
        .filter_map(|row| match decode(row) {
            Ok(record) => Some(record),
            Err(error) => {
                tracing::error!(%error, "skipping a {what} that cannot be read");
                None
            }
        })
        .collect()
}

fn request_from(row: &Row) -> Result<RequestRecord> {
    let id: String = row.get(0);
    decode(&format!("requests/{id}"), row.get(1))
}

fn outbox_from(row: &Row) -> Result<OutboxRecord> {
    let id: String = row.get(0);
    decode(&format!("outbox/{id}"), row.get(1))
}

fn timer_columns(timer: &Timer) -> (i64, &'static str, &str) {
    let (kind, target) = match &timer.action {
        TimerAction::Expire(request_id) => ("e", request_id.as_str()),
        TimerAction::Wake(run_id) => ("w", run_id.as_str()),
    };
    (big(timer.deadline), kind, target)
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, or the
    /// key-value form) and brings hitl's tables up to this build's schema.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] for a URL that does not parse; [`Error::Storage`] when the
    /// database cannot be reached, or when its schema was migrated by a newer hitl in a way
    /// this build cannot work with.
    pub async fn connect(url: &str) -> Result<PgStore> {
        PgStore::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`connect`](PgStore::connect) with at most `max_connections` connections in the pool
    /// (plus one per engine for listening).
    pub async fn connect_with(url: &str, max_connections: usize) -> Result<PgStore> {
        let store = PgStore::connect_unmigrated(url, max_connections)?;
        store.migrate().await?;
        Ok(store)
    }

    fn connect_unmigrated(url: &str, max_connections: usize) -> Result<PgStore> {
        let redacted_url = redact(url);
        let mut config = Config::from_str(url).map_err(|error| Error::InvalidRequest {
            detail: format!("`{redacted_url}` is not a PostgreSQL URL: {error}"),
        })?;
        if config.get_application_name().is_none() {
            config.application_name("hitl");
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| Error::InvalidRequest {
                detail: format!("cannot build a connection pool for `{redacted_url}`: {error}"),
            })?;
        Ok(PgStore {
            pool,
            config,
            redacted_url,
        })
    }

    /// Applies the migrations this database lacks (what [`connect`](PgStore::connect) does,
    /// and `hitl migrate --database-url …`); concurrent callers migrate once.
    pub async fn migrate(&self) -> Result<MigrationReport> {
        let mut client = self.client().await?;
        schema::migrate(&mut client)
            .await
            .map_err(|error| self.named(error))
    }

    /// Whether the database answers and its schema is current: a worker's readiness.
    async fn ready_async(&self) -> Result<()> {
        let client = self.client().await?;
        if schema::is_current(&client).await? {
            Ok(())
        } else {
            Err(Error::Storage(StoreError::new(
                StoreErrorKind::Unavailable,
                format!(
                    "the hitl schema of `{}` is not migrated to version {}",
                    self.redacted_url,
                    schema::current_version()
                ),
            )))
        }
    }

    /// The URL this store connects to, without its password.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// Whether the database holds no hitl data yet (no run, request, timer or secret).
    pub async fn is_empty(&self) -> Result<bool> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM hitl_runs) AND NOT EXISTS (SELECT 1 FROM hitl_requests) \
                 AND NOT EXISTS (SELECT 1 FROM hitl_timers) AND NOT EXISTS (SELECT 1 FROM hitl_meta)",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.get(0))
    }

    /// Sets the link-signing secret of an empty database (moving a database here keeps the
    /// links already sent working); refused when it already has another one.
    pub async fn import_secret(&self, secret: &[u8]) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO hitl_meta (key, value) VALUES ('secret', $1) ON CONFLICT (key) DO NOTHING",
                &[&secret],
            )
            .await
            .map_err(pg_error)?;
        let stored: Vec<u8> = client
            .query_one("SELECT value FROM hitl_meta WHERE key = 'secret'", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        if stored != secret {
            return Err(Error::Storage(StoreError::new(
                StoreErrorKind::Conflict,
                "the database already has a different link-signing secret",
            )));
        }
        Ok(())
    }

    async fn client(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|error| self.named(pool_error(error)))
    }

    /// Adds the (redacted) URL to an error about reaching the database.
    fn named(&self, error: Error) -> Error {
        match error {
            Error::Storage(inner) if inner.kind() == StoreErrorKind::Unavailable => {
                Error::Storage(StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!("{} ({inner})", self.redacted_url),
                ))
            }
            other => other,
        }
    }

    /// Runs one prepared (and cached) statement.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query(&statement, params).await.map_err(pg_error)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.execute(&statement, params).await.map_err(pg_error)
    }

    async fn load_run_async(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let rows = self
            .query(
                &format!("SELECT {RUN_COLUMNS} FROM hitl_runs WHERE id = $1"),
                &[&run_id],
            )
            .await?;
        rows.first().map(run_from).transpose()
    }

    async fn create_request_async(
        &self,
        epoch: u64,
        step: &StepRecord,
        request: &RequestRecord,
        outbox: &[OutboxRecord],
        expiry: Option<Timer>,
    ) -> Result<()> {
        if outbox.is_empty() && expiry.is_none() {
            return self.create_plain_request(epoch, step, request).await;
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        let fence = transaction
            .prepare_cached("SELECT lease_epoch FROM hitl_runs WHERE id = $1 FOR SHARE")
            .await
            .map_err(pg_error)?;
        if let Some(row) = transaction
            .query_opt(&fence, &[&request.run_id])
            .await
            .map_err(pg_error)?
            && unbig(row.get(0)) != epoch
        {
            return Err(lost_lease(&request.run_id, epoch));
        }
        let journal = transaction
            .prepare_cached(
                "INSERT INTO hitl_journal (run_id, step_id, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_id, step_id) DO UPDATE SET record = EXCLUDED.record",
            )
            .await
            .map_err(pg_error)?;
        transaction
            .execute(&journal, &[&request.run_id, &request.step_id, &Json(step)])
            .await
            .map_err(pg_error)?;
        let insert_request = transaction
            .prepare_cached(
                "INSERT INTO hitl_requests (id, run_id, workflow, status, created_at, record) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, \
                 record = EXCLUDED.record",
            )
            .await
            .map_err(pg_error)?;
        transaction
            .execute(
                &insert_request,
                &[
                    &request.id,
                    &request.run_id,
                    &request.workflow,
                    &name_of(&request.status),
                    &big(request.created_at),
                    &Json(request),
                ],
            )
            .await
            .map_err(pg_error)?;
        for record in outbox {
            save_outbox_in(&transaction, record).await?;
        }
        if let Some(expiry) = &expiry {
            add_timer_in(&transaction, expiry).await?;
        }
        transaction.commit().await.map_err(pg_error)
    }

    /// [`create_request_async`](Self::create_request_async) without notifications or an
    /// expiry, the common case: one statement, so one round trip instead of a transaction
    /// of four. The run's row is locked `FOR SHARE` and the epoch checked as in
    /// [`Store::append_steps`].
    async fn create_plain_request(
        &self,
        epoch: u64,
        step: &StepRecord,
        request: &RequestRecord,
    ) -> Result<()> {
        let rows = self
            .query(
                "WITH fence AS (SELECT lease_epoch FROM hitl_runs WHERE id = $1 FOR SHARE), \
                 allowed AS (SELECT NOT EXISTS (SELECT 1 FROM fence WHERE lease_epoch <> $2) AS ok), \
                 step AS (INSERT INTO hitl_journal (run_id, step_id, record) SELECT $1, $3, $4 FROM allowed \
                   WHERE allowed.ok ON CONFLICT (run_id, step_id) DO UPDATE SET record = EXCLUDED.record), \
                 request AS (INSERT INTO hitl_requests (id, run_id, workflow, status, created_at, record) \
                   SELECT $5, $1, $6, $7, $8, $9 FROM allowed WHERE allowed.ok \
                   ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, record = EXCLUDED.record) \
                 SELECT ok FROM allowed",
                &[
                    &request.run_id,
                    &big(epoch),
                    &request.step_id,
                    &Json(step),
                    &request.id,
                    &request.workflow,
                    &name_of(&request.status),
                    &big(request.created_at),
                    &Json(request),
                ],
            )
            .await?;
        if !rows.first().is_some_and(|row| row.get::<_, bool>(0)) {
            return Err(lost_lease(&request.run_id, epoch));
        }
        Ok(())
    }

    async fn resolve_request_async(&self, request_id: &str, change: &RequestChange<'_>) -> Result<Resolved> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        let select = transaction
            .prepare_cached("SELECT id, record::text FROM hitl_requests WHERE id = $1 FOR UPDATE")
            .await
            .map_err(pg_error)?;
        let row = transaction
            .query_opt(&select, &[&request_id])
            .await
            .map_err(pg_error)?
            .ok_or_else(|| Error::RequestNotFound {
                request_id: request_id.to_owned(),
            })?;
        let current = request_from(&row)?;
        // Dropping the transaction rolls it back: a refused change writes nothing.
        let Some(updated) = change(&current)? else {
            return Ok(Resolved {
                record: current,
                changed: false,
                wake: None,
            });
        };
        let wake = (current.status == RequestStatus::Pending && updated.status != RequestStatus::Pending)
            .then(|| Timer::wake_for(&updated));
        let (status, record) = (name_of(&updated.status), Json(&updated));
        if let Some(wake) = &wake {
            // One statement, one round trip: the update, the stored wake-up, the announcement.
            let resolve = transaction
                .prepare_cached(RESOLVE_AND_WAKE)
                .await
                .map_err(pg_error)?;
            let (deadline, kind, target) = timer_columns(wake);
            let announcement = events::resolved(request_id, &updated.run_id);
            transaction
                .execute(
                    &resolve,
                    &[
                        &request_id,
                        &status,
                        &record,
                        &deadline,
                        &kind,
                        &target,
                        &events::CHANNEL,
                        &announcement,
                    ],
                )
                .await
                .map_err(pg_error)?;
        } else {
            let update = transaction
                .prepare_cached("UPDATE hitl_requests SET status = $2, record = $3 WHERE id = $1")
                .await
                .map_err(pg_error)?;
            transaction
                .execute(&update, &[&request_id, &status, &record])
                .await
                .map_err(pg_error)?;
        }
        transaction.commit().await.map_err(pg_error)?;
        Ok(Resolved {
            record: updated,
            changed: true,
            wake,
        })
    }

    async fn secret_async(&self) -> Result<Vec<u8>> {
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let fresh: Vec<u8> = a.as_bytes().iter().chain(b.as_bytes()).copied().collect();
        self.execute(
            "INSERT INTO hitl_meta (key, value) VALUES ('secret', $1) ON CONFLICT (key) DO NOTHING",
            &[&fresh],
        )
        .await?;
        let rows = self
            .query("SELECT value FROM hitl_meta WHERE key = 'secret'", &[])
            .await?;
        Ok(rows.first().map(|row| row.get(0)).unwrap_or_default())
    }
}

async fn save_outbox_in(
    transaction: &deadpool_postgres::Transaction<'_>,
    record: &OutboxRecord,
) -> Result<()> {
    let statement = transaction.prepare_cached(SAVE_OUTBOX).await.map_err(pg_error)?;
    transaction
        .execute(&statement, &outbox_params(record).as_params())
        .await
        .map_err(pg_error)?;
    Ok(())
}

async fn add_timer_in(transaction: &deadpool_postgres::Transaction<'_>, timer: &Timer) -> Result<()> {
    let statement = transaction.prepare_cached(ADD_TIMER).await.map_err(pg_error)?;
    let (deadline, kind, target) = timer_columns(timer);
    transaction
        .execute(&statement, &[&deadline, &kind, &target, &events::CHANNEL])
        .await
        .map_err(pg_error)?;
    Ok(())
}

const SAVE_OUTBOX: &str = "INSERT INTO hitl_outbox (id, request_id, open, next_attempt_at, record) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET open = EXCLUDED.open, \
     next_attempt_at = EXCLUDED.next_attempt_at, record = EXCLUDED.record";

/// Arms a timer and tells the other workers when it is due.
const ADD_TIMER: &str = "WITH armed AS (INSERT INTO hitl_timers (deadline, kind, target) VALUES ($1, $2, $3) \
     ON CONFLICT DO NOTHING RETURNING deadline) \
     SELECT pg_notify($4, 't' || chr(9) || deadline) FROM armed";

/// A request resolved: its new state, the wake-up of its run stored (the fallback when no
/// worker acts on the announcement), and the resolution announced. The wake-up is not
/// announced as a timer of its own: the resolution's event already resumes the run on the
/// worker that claims it, and announcing both made every worker read the due timers once
/// more per answer.
const RESOLVE_AND_WAKE: &str = "WITH updated AS (UPDATE hitl_requests SET status = $2, record = $3 WHERE id = $1), \
     armed AS (INSERT INTO hitl_timers (deadline, kind, target) VALUES ($4, $5, $6) ON CONFLICT DO NOTHING) \
     SELECT pg_notify($7, $8)";

struct OutboxParams<'a> {
    id: &'a str,
    request_id: &'a str,
    open: bool,
    next_attempt_at: i64,
    record: Json<&'a OutboxRecord>,
}

impl OutboxParams<'_> {
    fn as_params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.id,
            &self.request_id,
            &self.open,
            &self.next_attempt_at,
            &self.record,
        ]
    }
}

fn outbox_params(record: &OutboxRecord) -> OutboxParams<'_> {
    OutboxParams {
        id: &record.id,
        request_id: &record.request_id,
        open: record.delivered_at.is_none() && !record.gave_up,
        next_attempt_at: big(record.next_attempt_at),
        record: Json(record),
    }
}

/// Claims set the lease columns; the record's own copy of them is refreshed on the next save.
const CLAIM_SET: &str = "status = 'running', owner = $1, lease_until = $3, lease_epoch = hitl_runs.lease_epoch + 1, updated_at = $2";

impl Store for PgStore {
    fn create_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, Option<RunRecord>> {
        Box::pin(async move {
            let inserted = self
                .execute(
                    "INSERT INTO hitl_runs (id, workflow, status, created_at, updated_at, owner, lease_until, \
                     lease_epoch, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
                    &[
                        &run.id,
                        &run.workflow,
                        &name_of(&run.status),
                        &big(run.created_at),
                        &big(run.updated_at),
                        &run.owner,
                        &run.lease_until.map(big),
                        &big(run.lease_epoch),
                        &Json(run),
                    ],
                )
                .await?;
            if inserted == 1 {
                // A run stored for another worker to claim: tell the workers.
                if run.owner.is_none() && run.status == crate::model::run::RunStatus::Running {
                    self.execute(
                        "SELECT pg_notify($1, 'q' || chr(9) || $2)",
                        &[&events::CHANNEL, &run.id],
                    )
                    .await?;
                }
                return Ok(None);
            }
            self.load_run_async(&run.id).await
        })
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<RunRecord>> {
        Box::pin(self.load_run_async(run_id))
    }

    fn save_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let written = self
                .execute(
                    "INSERT INTO hitl_runs (id, workflow, status, created_at, updated_at, owner, lease_until, \
                     lease_epoch, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO UPDATE \
                     SET workflow = EXCLUDED.workflow, status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, \
                     owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until, record = EXCLUDED.record \
                     WHERE hitl_runs.lease_epoch = EXCLUDED.lease_epoch",
                    &[
                        &run.id,
                        &run.workflow,
                        &name_of(&run.status),
                        &big(run.created_at),
                        &big(run.updated_at),
                        &run.owner,
                        &run.lease_until.map(big),
                        &big(run.lease_epoch),
                        &Json(run),
                    ],
                )
                .await?;
            if written == 0 {
                return Err(lost_lease(&run.id, run.lease_epoch));
            }
            Ok(())
        })
    }

    fn runs<'a>(&'a self, query: &'a RunQuery) -> StoreFuture<'a, Vec<RunRecord>> {
        Box::pin(async move {
            let rows = self
                .query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM hitl_runs WHERE ($1::text IS NULL OR status = $1) \
                         AND ($2::text IS NULL OR workflow = $2) AND ($3::bigint IS NULL OR created_at < $3) \
                         AND ($4::text IS NULL OR id > $4) ORDER BY id LIMIT $5"
                    ),
                    &[
                        &query.status.as_ref().map(name_of),
                        &query.workflow,
                        &query.created_before.map(big),
                        &query.after,
                        &limit(query.limit),
                    ],
                )
                .await?;
            Ok(decoded(&rows, "run", run_from))
        })
    }

    fn claim_paused<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        now: u64,
        until: u64,
    ) -> StoreFuture<'a, Option<RunRecord>> {
        Box::pin(async move {
            let rows = self
                .query(
                    &format!(
                        "UPDATE hitl_runs SET {CLAIM_SET} WHERE id = $4 AND status = 'paused' RETURNING {RUN_COLUMNS}"
                    ),
                    &[&owner, &big(now), &big(until), &run_id],
                )
                .await?;
            rows.first().map(run_from).transpose()
        })
    }

    fn claim_lapsed<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
        until: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<RunRecord>> {
        Box::pin(async move {
            // SKIP LOCKED: workers claiming at once take different runs, and none waits.
            let rows = self
                .query(
                    &format!(
                        "UPDATE hitl_runs SET {CLAIM_SET} WHERE id IN (SELECT id FROM hitl_runs \
                         WHERE status = 'running' AND owner IS DISTINCT FROM $1 \
                         AND (lease_until IS NULL OR lease_until < $2) ORDER BY lease_until NULLS FIRST, id \
                         LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING {RUN_COLUMNS}"
                    ),
                    &[&owner, &big(now), &big(until), &big(limit as u64)],
                )
                .await?;
            rows.iter().map(run_from).collect()
        })
    }

    fn renew_lease<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        epoch: u64,
        until: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let renewed = self
                .execute(
                    "UPDATE hitl_runs SET lease_until = $4 WHERE id = $1 AND owner = $2 AND lease_epoch = $3",
                    &[&run_id, &owner, &big(epoch), &big(until)],
                )
                .await?;
            if renewed == 0 {
                return Err(lost_lease(run_id, epoch));
            }
            Ok(())
        })
    }

    fn release_lease<'a>(&'a self, run_id: &'a str, owner: &'a str, epoch: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let released = self
                .query(
                    "WITH released AS (UPDATE hitl_runs SET lease_until = NULL \
                     WHERE id = $1 AND owner = $2 AND lease_epoch = $3 RETURNING id) \
                     SELECT pg_notify($4, 'q' || chr(9) || id) FROM released",
                    &[&run_id, &owner, &big(epoch), &events::CHANNEL],
                )
                .await?;
            if released.is_empty() {
                return Err(lost_lease(run_id, epoch));
            }
            Ok(())
        })
    }

    fn load_journal<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<(String, StepRecord)>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT step_id, record::text FROM hitl_journal WHERE run_id = $1 ORDER BY step_id",
                    &[&run_id],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    let step_id: String = row.get(0);
                    match serde_json::from_str(row.get(1)) {
                        Ok(step) => Ok((step_id, step)),
                        Err(error) => Err(Error::CorruptRecord {
                            run_id: run_id.to_owned(),
                            record: format!("journal entry of step `{step_id}`"),
                            step: Some(step_id),
                            detail: error.to_string(),
                        }),
                    }
                })
                .collect()
        })
    }

    fn append_steps<'a>(
        &'a self,
        run_id: &'a str,
        epoch: u64,
        steps: &'a [(String, StepRecord)],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let ids: Vec<&str> = steps.iter().map(|(id, _)| id.as_str()).collect();
            let records: Vec<Json<&StepRecord>> = steps.iter().map(|(_, step)| Json(step)).collect();
            // One statement: the run's row is locked FOR SHARE (a claim waits for it), and the
            // steps are written only while the epoch matches.
            let rows = self
                .query(
                    "WITH fence AS (SELECT lease_epoch FROM hitl_runs WHERE id = $1 FOR SHARE), \
                     allowed AS (SELECT NOT EXISTS (SELECT 1 FROM fence WHERE lease_epoch <> $2) AS ok), \
                     written AS (INSERT INTO hitl_journal (run_id, step_id, record) \
                       SELECT $1, s.step_id, s.record FROM unnest($3::text[], $4::jsonb[]) AS s(step_id, record), allowed \
                       WHERE allowed.ok \
                       ON CONFLICT (run_id, step_id) DO UPDATE SET record = EXCLUDED.record RETURNING 1) \
                     SELECT ok FROM allowed",
                    &[&run_id, &big(epoch), &ids, &records],
                )
                .await?;
            if !rows.first().is_some_and(|row| row.get::<_, bool>(0)) {
                return Err(lost_lease(run_id, epoch));
            }
            Ok(())
        })
    }

    fn append_channel_set<'a>(
        &'a self,
        run_id: &'a str,
        epoch: u64,
        step_id: &'a str,
        step: &'a StepRecord,
        key: &'a str,
        value: &'a Value,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let rows = self
                .query(
                    "WITH fence AS (SELECT lease_epoch FROM hitl_runs WHERE id = $1 FOR SHARE), \
                     allowed AS (SELECT NOT EXISTS (SELECT 1 FROM fence WHERE lease_epoch <> $2) AS ok), \
                     step AS (INSERT INTO hitl_journal (run_id, step_id, record) SELECT $1, $3, $4 FROM allowed \
                       WHERE allowed.ok ON CONFLICT (run_id, step_id) DO UPDATE SET record = EXCLUDED.record RETURNING 1), \
                     channel AS (INSERT INTO hitl_channels (run_id, key, value) SELECT $1, $5, $6 FROM allowed \
                       WHERE allowed.ok ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value RETURNING 1) \
                     SELECT ok FROM allowed",
                    &[&run_id, &big(epoch), &step_id, &Json(step), &key, value],
                )
                .await?;
            if !rows.first().is_some_and(|row| row.get::<_, bool>(0)) {
                return Err(lost_lease(run_id, epoch));
            }
            Ok(())
        })
    }

    fn channel_value<'a>(&'a self, run_id: &'a str, key: &'a str) -> StoreFuture<'a, Option<Value>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT value FROM hitl_channels WHERE run_id = $1 AND key = $2",
                    &[&run_id, &key],
                )
                .await?;
            Ok(rows.first().map(|row| row.get(0)))
        })
    }

    fn channels_of<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<(String, Value)>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT key, value FROM hitl_channels WHERE run_id = $1 ORDER BY key",
                    &[&run_id],
                )
                .await?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    fn save_definition<'a>(
        &'a self,
        workflow: &'a str,
        fingerprint: &'a str,
        sites: &'a [String],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO hitl_definitions (workflow, fingerprint, sites) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&workflow, &fingerprint, &Json(sites)],
            )
            .await?;
            Ok(())
        })
    }

    fn load_definition<'a>(
        &'a self,
        workflow: &'a str,
        fingerprint: &'a str,
    ) -> StoreFuture<'a, Option<Vec<String>>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT sites::text FROM hitl_definitions WHERE workflow = $1 AND fingerprint = $2",
                    &[&workflow, &fingerprint],
                )
                .await?;
            rows.first()
                .map(|row| decode(&format!("definitions/{workflow}/{fingerprint}"), row.get(0)))
                .transpose()
        })
    }

    fn create_request<'a>(
        &'a self,
        epoch: u64,
        step: &'a StepRecord,
        request: &'a RequestRecord,
        outbox: &'a [OutboxRecord],
        expiry: Option<Timer>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.create_request_async(epoch, step, request, outbox, expiry))
    }

    fn load_request<'a>(&'a self, request_id: &'a str) -> StoreFuture<'a, Option<RequestRecord>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT id, record::text FROM hitl_requests WHERE id = $1",
                    &[&request_id],
                )
                .await?;
            rows.first().map(request_from).transpose()
        })
    }

    fn resolve_request<'a>(
        &'a self,
        request_id: &'a str,
        change: &'a RequestChange<'a>,
    ) -> StoreFuture<'a, Resolved> {
        Box::pin(self.resolve_request_async(request_id, change))
    }

    fn requests<'a>(&'a self, query: &'a RequestQuery) -> StoreFuture<'a, Vec<RequestRecord>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT id, record::text FROM hitl_requests WHERE ($1::text IS NULL OR status = $1) \
                     AND ($2::text IS NULL OR run_id = $2) AND ($3::text IS NULL OR workflow = $3) \
                     ORDER BY created_at, id LIMIT $4",
                    &[
                        &query.status.as_ref().map(name_of),
                        &query.run_id,
                        &query.workflow,
                        &limit(query.limit),
                    ],
                )
                .await?;
            Ok(decoded(&rows, "request", request_from))
        })
    }

    fn due_notifications<'a>(&'a self, now: u64, limit: usize) -> StoreFuture<'a, Vec<OutboxRecord>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT id, record::text FROM hitl_outbox WHERE open AND next_attempt_at <= $1 \
                     ORDER BY next_attempt_at, id LIMIT $2",
                    &[&big(now), &big(limit as u64)],
                )
                .await?;
            Ok(decoded(&rows, "notification", outbox_from))
        })
    }

    fn claim_notifications<'a>(
        &'a self,
        now: u64,
        until: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<OutboxRecord>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "UPDATE hitl_outbox SET next_attempt_at = $2, \
                     record = jsonb_set(record, '{next_attempt_at}', to_jsonb($2::bigint)) \
                     WHERE id IN (SELECT id FROM hitl_outbox WHERE open AND next_attempt_at <= $1 \
                     ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     RETURNING id, record::text",
                    &[&big(now), &big(until), &big(limit as u64)],
                )
                .await?;
            let mut claimed = decoded(&rows, "notification", outbox_from);
            claimed.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(claimed)
        })
    }

    fn outbox_of<'a>(&'a self, request_id: &'a str) -> StoreFuture<'a, Vec<OutboxRecord>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT id, record::text FROM hitl_outbox WHERE request_id = $1 ORDER BY id",
                    &[&request_id],
                )
                .await?;
            Ok(decoded(&rows, "notification", outbox_from))
        })
    }

    fn save_outbox<'a>(&'a self, record: &'a OutboxRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.execute(SAVE_OUTBOX, &outbox_params(record).as_params())
                .await?;
            Ok(())
        })
    }

    fn add_timer<'a>(&'a self, timer: &'a Timer) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (deadline, kind, target) = timer_columns(timer);
            self.query(ADD_TIMER, &[&deadline, &kind, &target, &events::CHANNEL])
                .await?;
            Ok(())
        })
    }

    fn remove_timer<'a>(&'a self, timer: &'a Timer) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (deadline, kind, target) = timer_columns(timer);
            self.execute(
                "DELETE FROM hitl_timers WHERE deadline = $1 AND kind = $2 AND target = $3",
                &[&deadline, &kind, &target],
            )
            .await?;
            Ok(())
        })
    }

    fn due_timers(&self, before: u64, limit: usize) -> StoreFuture<'_, Vec<Timer>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT deadline, kind, target FROM hitl_timers WHERE deadline < $1 \
                     ORDER BY deadline, kind, target LIMIT $2",
                    &[&big(before), &big(limit as u64)],
                )
                .await?;
            Ok(rows
                .iter()
                .filter_map(|row| {
                    let target: String = row.get(2);
                    let action = match row.get::<_, &str>(1) {
                        "e" => TimerAction::Expire(target),
                        "w" => TimerAction::Wake(target),
                        other => {
                            tracing::error!(kind = other, "skipping a timer of an unknown kind");
                            return None;
                        }
                    };
                    Some(Timer {
                        deadline: unbig(row.get(0)),
                        action,
                    })
                })
                .collect())
        })
    }

    fn secret(&self) -> StoreFuture<'_, Vec<u8>> {
        Box::pin(self.secret_async())
    }

    fn flush(&self) -> FlushFuture {
        // Every write is durable when its statement or transaction commits.
        Box::pin(std::future::ready(Ok(())))
    }

    fn storage_stats(&self) -> StoreFuture<'_, StorageStats> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE 'hitl\\_%'",
                    &[],
                )
                .await?;
            Ok(StorageStats {
                on_disk: rows.first().map(|row| unbig(row.get(0))),
                logical: None,
            })
        })
    }

    fn ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.ready_async())
    }

    fn shared(&self) -> bool {
        true
    }

    fn clock(&self) -> StoreFuture<'_, Option<u64>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                    &[],
                )
                .await?;
            Ok(rows.first().map(|row| unbig(row.get(0))))
        })
    }

    fn events(&self) -> StoreFuture<'_, Option<StoreEvents>> {
        Box::pin(async move {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(events::listen(
                self.config.clone(),
                self.redacted_url.clone(),
                sender,
            ));
            Ok(Some(receiver))
        })
    }
}
