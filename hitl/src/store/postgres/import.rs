//! Moving up from sled: every record of a stopped store copied into an empty PostgreSQL
//! database (`hitl migrate-store --from DIR --to URL`).
//!
//! The copy is resumable: it first stores the source's link-signing secret together with a
//! marker (`hitl_meta.import`), then copies every record with `ON CONFLICT DO NOTHING`, and
//! removes the marker last. A target that holds data and no marker is refused; one with the
//! marker and the same secret is an interrupted copy of this source, and copying again
//! finishes it. Runs keep their ids, journals, leases and epochs, so that a worker opening
//! the database resumes every paused run where it was and takes over the ones a crash left
//! running; links already sent keep working, because the secret that signed them came along.

use std::collections::BTreeSet;

use tokio_postgres::types::Json;

use super::journal::{ChunkRows, insert_chunks};
use super::rows::{INSERT_RUN, RunParams, big, name_of, timer_columns};
use super::{PgStore, events, pg_error};
use crate::error::{Error, Result};
use crate::store::packed::encode_request;
use crate::store::{RequestQuery, RunQuery, Store, StoreError, StoreErrorKind, Timer};

/// What [`PgStore::import_from`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Runs copied.
    pub runs: usize,
    /// Journaled steps copied.
    pub steps: usize,
    /// Channel values copied.
    pub channels: usize,
    /// Workflow definitions copied.
    pub definitions: usize,
    /// Feedback requests copied.
    pub requests: usize,
    /// Notifications (outbox entries) copied.
    pub notifications: usize,
    /// Timers copied.
    pub timers: usize,
    /// Whether this finished an earlier, interrupted copy.
    pub resumed: bool,
}

impl PgStore {
    /// Copies every record of `source` (a stopped application's store: open it with
    /// [`open_sled`](crate::store::open_sled)) into this database, which must be empty — or
    /// hold an interrupted copy of the same source, which this finishes.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] with [`StoreErrorKind::Conflict`] when this database already holds
    /// other data; the errors of either store.
    pub async fn import_from(&self, source: &dyn Store) -> Result<ImportReport> {
        let secret = source.secret().await?;
        let resumed = self.begin_import(&secret).await?;
        let mut report = ImportReport {
            resumed,
            ..ImportReport::default()
        };
        let mut definitions = BTreeSet::new();
        let mut after = None;
        loop {
            let page = source
                .runs(&RunQuery {
                    after: after.clone(),
                    limit: Some(500),
                    ..RunQuery::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for run in &page {
                let mut journal = source.load_journal(&run.id).await?;
                // In the order the steps were written, as a store appends them.
                journal.sort_by_key(|(_, step)| step.seq);
                let channels = source.channels_of(&run.id).await?;
                let mut client = self.client().await?;
                let transaction = client.transaction().await.map_err(pg_error)?;
                transaction
                    .execute(
                        &format!("{INSERT_RUN} ON CONFLICT (id) DO NOTHING"),
                        &RunParams::of(run)?.as_params(),
                    )
                    .await
                    .map_err(pg_error)?;
                let rows = ChunkRows::of(&journal);
                // Written with the run in one transaction: a stored chunk is a copied one.
                transaction
                    .execute(
                        concat!(insert_chunks!("$1", "$2", "$3", ""), " ON CONFLICT DO NOTHING"),
                        &[&run.id, &rows.chunks, &rows.steps],
                    )
                    .await
                    .map_err(pg_error)?;
                for (key, value) in &channels {
                    transaction
                        .execute(
                            "INSERT INTO hitl_channels (run_id, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                            &[&run.id, key, value],
                        )
                        .await
                        .map_err(pg_error)?;
                }
                transaction.commit().await.map_err(pg_error)?;
                report.runs += 1;
                report.steps += journal.len();
                report.channels += channels.len();
                definitions.insert((run.workflow.clone(), run.fingerprint.clone()));
                crate::failpoint::hit("import_after_run");
            }
        }
        for (workflow, fingerprint) in &definitions {
            if let Some(sites) = source.load_definition(workflow, fingerprint).await? {
                self.save_definition(workflow, fingerprint, &sites).await?;
                report.definitions += 1;
            }
        }
        for request in source.requests(&RequestQuery::default()).await? {
            self.execute(
                "INSERT INTO hitl_requests (id, run_id, workflow, status, created_at, record) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[
                    &request.id,
                    &request.run_id,
                    &request.workflow,
                    &name_of(&request.status),
                    &big(request.created_at),
                    &encode_request(&request)?,
                ],
            )
            .await?;
            report.requests += 1;
            for record in source.outbox_of(&request.id).await? {
                self.execute(
                    "INSERT INTO hitl_outbox (id, request_id, open, next_attempt_at, record) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                    &[
                        &record.id,
                        &record.request_id,
                        &(record.delivered_at.is_none() && !record.gave_up),
                        &big(record.next_attempt_at),
                        &Json(&record),
                    ],
                )
                .await?;
                report.notifications += 1;
            }
        }
        let timers: Vec<Timer> = source.due_timers(u64::MAX, usize::MAX).await?;
        for timer in &timers {
            let (deadline, kind, target) = timer_columns(timer);
            self.execute(
                "INSERT INTO hitl_timers (deadline, kind, target) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&deadline, &kind, &target],
            )
            .await?;
        }
        report.timers = timers.len();
        // Done: the marker goes, and workers already running hear of the runs to claim.
        self.execute("DELETE FROM hitl_meta WHERE key = 'import'", &[])
            .await?;
        self.execute("SELECT pg_notify($1, 't' || chr(9) || '0')", &[&events::CHANNEL])
            .await?;
        tracing::info!(?report, url = %self.redacted_url, "store imported");
        Ok(report)
    }

    /// Checks the target and marks the copy as begun; `true` when it resumes one.
    async fn begin_import(&self, secret: &[u8]) -> Result<bool> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        // One importer at a time.
        transaction
            .execute("LOCK TABLE hitl_meta IN EXCLUSIVE MODE", &[])
            .await
            .map_err(pg_error)?;
        let marker = transaction
            .query_opt("SELECT 1 FROM hitl_meta WHERE key = 'import'", &[])
            .await
            .map_err(pg_error)?
            .is_some();
        let stored: Option<Vec<u8>> = transaction
            .query_opt("SELECT value FROM hitl_meta WHERE key = 'secret'", &[])
            .await
            .map_err(pg_error)?
            .map(|row| row.get(0));
        if marker && stored.as_deref() == Some(secret) {
            return Ok(true);
        }
        let empty: bool = transaction
            .query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM hitl_runs) AND NOT EXISTS (SELECT 1 FROM hitl_requests) \
                 AND NOT EXISTS (SELECT 1 FROM hitl_timers) AND NOT EXISTS (SELECT 1 FROM hitl_outbox)",
                &[],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        // A secret alone (an engine opened the empty database) signed nothing yet: replaced.
        if !empty || marker {
            return Err(Error::Storage(StoreError::new(
                StoreErrorKind::Conflict,
                format!(
                    "`{}` already holds hitl data{}: copy into an empty database",
                    self.redacted_url,
                    if marker {
                        " (an interrupted copy of another store)"
                    } else {
                        ""
                    }
                ),
            )));
        }
        transaction
            .execute(
                "INSERT INTO hitl_meta (key, value) VALUES ('secret', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&secret],
            )
            .await
            .map_err(pg_error)?;
        transaction
            .execute(
                "INSERT INTO hitl_meta (key, value) VALUES ('import', ''::bytea)",
                &[],
            )
            .await
            .map_err(pg_error)?;
        transaction.commit().await.map_err(pg_error)?;
        Ok(false)
    }
}
