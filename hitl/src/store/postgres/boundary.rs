//! [`PgStore`] as a [`Store`](crate::store::Store): each operation one statement or one transaction.

use serde_json::Value;
use tokio_postgres::types::Json;

use super::journal::{ChunkRows, fenced_append};
use super::rows::{
    ADD_TIMER, CLAIM_SET, INSERT_RUN, RUN_COLUMNS, RunParams, SAVE_OUTBOX, big, decode, decoded, limit,
    name_of, outbox_from, outbox_params, request_from, run_from, timer_columns, timer_from, unbig,
};
use super::{PgStore, events};
use crate::store::{
    FlushFuture, OutboxRecord, RequestChange, RequestQuery, RequestRecord, Resolved, RunQuery, RunRecord,
    StepRecord, StorageStats, Store, StoreEvents, StoreFuture, Timer, lost_lease, packed::journal_of,
};

impl Store for PgStore {
    fn create_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, Option<RunRecord>> {
        Box::pin(async move {
            let inserted = self
                .execute(
                    &format!("{INSERT_RUN} ON CONFLICT (id) DO NOTHING"),
                    &RunParams::of(run)?.as_params(),
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
                    &format!(
                        "{INSERT_RUN} ON CONFLICT (id) DO UPDATE SET workflow = EXCLUDED.workflow, \
                         status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, owner = EXCLUDED.owner, \
                         lease_until = EXCLUDED.lease_until, record = EXCLUDED.record \
                         WHERE hitl_runs.lease_epoch = EXCLUDED.lease_epoch"
                    ),
                    &RunParams::of(run)?.as_params(),
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
                        "UPDATE hitl_runs SET {CLAIM_SET} WHERE id = $4 AND status IN ('paused', 'blocked') RETURNING {RUN_COLUMNS}"
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
                    "SELECT steps FROM hitl_journal WHERE run_id = $1 ORDER BY chunk",
                    &[&run_id],
                )
                .await?;
            journal_of(run_id, rows.iter().map(|row| row.get::<_, &[u8]>(0)))
        })
    }

    fn append_steps<'a>(
        &'a self,
        run_id: &'a str,
        epoch: u64,
        steps: &'a [(String, StepRecord)],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let rows = ChunkRows::of(steps);
            // One statement: the run's row is locked FOR SHARE (a claim waits for it), and the
            // steps are written only while the epoch matches.
            let rows = self
                .query(
                    concat!(fenced_append!("written"), " RETURNING 1) SELECT ok FROM allowed"),
                    &[&run_id, &big(epoch), &rows.chunks, &rows.steps],
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
            let rows = ChunkRows::one(step_id, step);
            let rows = self
                .query(
                    concat!(
                        fenced_append!("step"),
                        " RETURNING 1), \
                         channel AS (INSERT INTO hitl_channels (run_id, key, value) SELECT $1, $5, $6 FROM allowed \
                           WHERE allowed.ok ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value RETURNING 1) \
                         SELECT ok FROM allowed",
                    ),
                    &[&run_id, &big(epoch), &rows.chunks, &rows.steps, &key, value],
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
                    "SELECT id, record FROM hitl_requests WHERE id = $1",
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
                    "SELECT id, record FROM hitl_requests WHERE ($1::text IS NULL OR status = $1) \
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
                    let timer = timer_from(row);
                    if timer.is_none() {
                        let kind: &str = row.get(1);
                        tracing::error!(kind, "skipping a timer of an unknown kind");
                    }
                    timer
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
