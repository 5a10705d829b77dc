//! `hitl --database-url URL dump`: every record of a PostgreSQL database as JSON, whatever its
//! encoding in its table (schema 2 packs runs, requests and journal steps).

use std::io::Write;

use serde_json::{Value, json};
use tokio_postgres::Row;

use super::rows::{RUN_COLUMNS, decode, run_from, timer_from, unbig};
use super::schema::stored_version;
use super::{PgStore, pg_error};
use crate::error::Result;
use crate::model::outbox::OutboxRecord;
use crate::store::dump::{DumpLines, shown};
use crate::store::packed::decode_request;

/// Rows read per query: the dump holds at most one page in memory.
const PAGE: usize = 1_000;

impl PgStore {
    /// Writes every record of the database to `out` as JSON lines, and returns how many lines
    /// it wrote — the PostgreSQL counterpart of [`dump_sled`](crate::store::dump_sled), with
    /// the same lines: the first names the schema (`{"format": "hitl-postgres", "schema":
    /// 2}`); then one object per record, `"tree"` naming its kind (`runs`, `journal`,
    /// `requests`, `outbox`, `timers`, `channels`, `definitions`), its key fields, and
    /// `"record"`, the record as the JSON the engine's types serialize to. A value that does
    /// not decode is a line with `"error"` instead, and the dump goes on. The link secret is
    /// not shown.
    ///
    /// It reads while workers run: one read-only snapshot (`REPEATABLE READ`), streamed through
    /// cursors a page of rows at a time. A run's status, owner and lease are shown as its
    /// columns hold them, as every read of the store does.
    pub async fn dump(&self, out: &mut dyn Write) -> Result<u64> {
        let mut client = self.client().await?;
        // One snapshot for the whole dump, read while the workers go on.
        let transaction = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let mut dump = DumpLines::new(out, "the dump's output");
        let schema = stored_version(&transaction).await?;
        dump.line(json!({ "format": "hitl-postgres", "schema": schema }))?;
        each_row(
            &transaction,
            &format!("SELECT {RUN_COLUMNS} FROM hitl_runs ORDER BY id"),
            |row| {
                let run_id: &str = row.get(0);
                // With status and lease as the columns hold them (a claim writes only those).
                let (field, value) = shown(run_from(row));
                dump.line(json!({ "tree": "runs", "run_id": run_id, field: value }))
            },
        )
        .await?;
        each_row(
            &transaction,
            "SELECT run_id, chunk, steps FROM hitl_journal ORDER BY run_id, chunk",
            |row| {
                let (run_id, number): (&str, i32) = (row.get(0), row.get(1));
                dump.chunk(run_id, number, row.get(2))
            },
        )
        .await?;
        each_row(
            &transaction,
            "SELECT id, record FROM hitl_requests ORDER BY id",
            |row| {
                let request_id: &str = row.get(0);
                let (field, value) = shown(decode_request(request_id, row.get(1)));
                dump.line(json!({ "tree": "requests", "request_id": request_id, field: value }))
            },
        )
        .await?;
        each_row(
            &transaction,
            "SELECT id, record::text FROM hitl_outbox ORDER BY id",
            |row| {
                let id: &str = row.get(0);
                let decoded = decode::<OutboxRecord>(&format!("outbox/{id}"), row.get(1));
                let (field, value) = shown(decoded);
                dump.line(json!({ "tree": "outbox", "id": id, field: value }))
            },
        )
        .await?;
        each_row(
            &transaction,
            "SELECT deadline, kind, target FROM hitl_timers ORDER BY deadline, kind, target",
            |row| match timer_from(row) {
                Some(timer) => dump.timer(&timer),
                // A kind hitl does not write, shown as stored.
                None => dump.line(json!({ "tree": "timers", "deadline": unbig(row.get(0)),
                                          "action": row.get::<_, &str>(1), "id": row.get::<_, &str>(2) })),
            },
        )
        .await?;
        each_row(
            &transaction,
            "SELECT run_id, key, value::text FROM hitl_channels ORDER BY run_id, key",
            |row| {
                let (field, value) = shown(decode::<Value>("channel", row.get(2)));
                dump.line(json!({ "tree": "channels", "run_id": row.get::<_, &str>(0),
                                  "key": row.get::<_, &str>(1), field: value }))
            },
        )
        .await?;
        each_row(
            &transaction,
            "SELECT workflow, fingerprint, sites::text FROM hitl_definitions ORDER BY workflow, fingerprint",
            |row| {
                let (field, value) = shown(decode::<Value>("definition", row.get(2)));
                dump.line(json!({ "tree": "definitions", "workflow": row.get::<_, &str>(0),
                                  "fingerprint": row.get::<_, &str>(1), field: value }))
            },
        )
        .await?;
        transaction.commit().await.map_err(pg_error)?;
        Ok(dump.lines)
    }
}

/// Runs `sql` through a cursor, [`PAGE`] rows at a time, and hands each row to `each`.
async fn each_row(
    transaction: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    mut each: impl FnMut(&Row) -> Result<()>,
) -> Result<()> {
    transaction
        .batch_execute(&format!("DECLARE hitl_dump NO SCROLL CURSOR FOR {sql}"))
        .await
        .map_err(pg_error)?;
    loop {
        let rows = transaction
            .query(&format!("FETCH {PAGE} FROM hitl_dump"), &[])
            .await
            .map_err(pg_error)?;
        for row in &rows {
            each(row)?;
        }
        if rows.len() < PAGE {
            break;
        }
    }
    transaction
        .batch_execute("CLOSE hitl_dump")
        .await
        .map_err(pg_error)
}
