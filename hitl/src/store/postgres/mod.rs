//! [`PgStore`]: the [`Store`](crate::store::Store) on PostgreSQL, for many workers on one database (feature
//! `postgres`).
//!
//! Every method is one statement or one transaction, so atomicity is the database's:
//! a claim is an `UPDATE … WHERE status = 'paused'` (of concurrent claims one matches), a
//! lapsed-lease takeover picks rows `FOR UPDATE SKIP LOCKED` (workers claiming together take
//! different runs, none waits), a journal write locks its run's row `FOR SHARE` and writes
//! only if the lease epoch still matches (the fence), and a resolution reads its request
//! `FOR UPDATE` (first valid answer wins). Changes other workers must act on — a resolution,
//! a timer, a released run — are announced with `pg_notify` in the same transaction
//! (`events`). Writes are durable when they commit, so [`Store::flush`](crate::store::Store::flush) has nothing to do.
//!
//! Tables are created by versioned migrations ([`schema`]) at connect; the records are
//! stored beside the columns the queries filter on — runs, requests and journal chunks packed
//! (`crate::store::packed`), the rest as JSONB — and the columns are what the store trusts
//! for status and leases.
//!
//! One concept per file: this one connects (pool, URL, errors) and holds the operations
//! that are transactions of several statements; `boundary` is the [`Store`](crate::store::Store) impl, `rows`
//! maps records to rows, `journal` appends chunks, `events` listens, [`schema`] migrates,
//! `import` copies a sled store in, `dump` shows every record, `url` redacts.

mod boundary;
mod dump;
mod events;
mod import;
mod journal;
mod rows;
pub mod schema;
mod url;

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, NoTls, Row};

pub use import::ImportReport;
pub use schema::MigrationReport;
pub use url::redact;

use super::{
    OutboxRecord, RequestChange, RequestRecord, Resolved, RunRecord, StepRecord, StoreError, StoreErrorKind,
    Timer, lost_lease,
};
use crate::error::{Error, Result};
use crate::store::packed::encode_request;
use journal::{ChunkRows, append_chunks, fenced_append};
use rows::{
    RESOLVE_AND_WAKE, RUN_COLUMNS, add_timer_in, big, name_of, request_from, run_from, save_outbox_in,
    timer_columns, unbig,
};

/// How many connections a [`PgStore`] opens at most, unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// A [`Store`](crate::store::Store) on a PostgreSQL database (feature `postgres`).
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

    /// Connects to a database whose schema is already this build's (or newer by additive
    /// migrations only), migrating nothing: for tools that look at a database without changing
    /// it, such as `hitl --database-url URL dump`.
    ///
    /// # Errors
    ///
    /// As [`connect`](PgStore::connect); and [`Error::Storage`] when the database holds no hitl
    /// schema, or an older one (run [`migrate`](PgStore::migrate) or `hitl migrate` first).
    pub async fn connect_current(url: &str) -> Result<PgStore> {
        let store = PgStore::connect_unmigrated(url, 2)?;
        let version = store.schema_version().await?;
        let current = schema::current_version();
        if version < current {
            return Err(Error::Storage(StoreError::new(
                StoreErrorKind::Unavailable,
                format!(
                    "the database `{}` has hitl schema version {version}, older than this build's \
                     {current}: migrate it first (`hitl --database-url URL migrate`, once the workers \
                     of the older hitl are stopped)",
                    store.redacted_url
                ),
            )));
        }
        Ok(store)
    }

    /// The database's hitl schema version (0 when it has none).
    pub(super) async fn schema_version(&self) -> Result<i32> {
        schema::stored_version(&self.client().await?).await
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
        if schema::stored_version(&client).await? >= schema::current_version() {
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
            .prepare_cached(append_chunks!("$1", "$2", "$3", ""))
            .await
            .map_err(pg_error)?;
        let rows = ChunkRows::one(&request.step_id, step);
        transaction
            .execute(&journal, &[&request.run_id, &rows.chunks, &rows.steps])
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
                    &encode_request(request)?,
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
    /// `append_steps`.
    async fn create_plain_request(
        &self,
        epoch: u64,
        step: &StepRecord,
        request: &RequestRecord,
    ) -> Result<()> {
        let journal = ChunkRows::one(&request.step_id, step);
        let rows = self
            .query(
                concat!(
                    fenced_append!("step"),
                    "), request AS (INSERT INTO hitl_requests (id, run_id, workflow, status, created_at, record) \
                       SELECT $5, $1, $6, $7, $8, $9 FROM allowed WHERE allowed.ok \
                       ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, record = EXCLUDED.record) \
                     SELECT ok FROM allowed",
                ),
                &[
                    &request.run_id,
                    &big(epoch),
                    &journal.chunks,
                    &journal.steps,
                    &request.id,
                    &request.workflow,
                    &name_of(&request.status),
                    &big(request.created_at),
                    &encode_request(request)?,
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
            .prepare_cached("SELECT id, record FROM hitl_requests WHERE id = $1 FOR UPDATE")
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
        let wake = Timer::wake_after(&current, &updated);
        let (status, record) = (name_of(&updated.status), encode_request(&updated)?);
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
