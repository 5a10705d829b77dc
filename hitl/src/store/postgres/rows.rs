//! How records map to rows and statements: column conversions, the shared SQL, and the
//! writes that run inside another operation's transaction.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql};

use super::{events, pg_error};
use crate::error::{Error, Result};
use crate::store::packed::{decode_request, decode_run, encode_run};
use crate::store::{OutboxRecord, RequestRecord, RunRecord, Timer, TimerAction};

/// A `u64` time or count as PostgreSQL's `BIGINT` (saturating: `u64::MAX` means "no bound").
pub(super) fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn limit(value: Option<usize>) -> Option<i64> {
    value.map(|limit| i64::try_from(limit).unwrap_or(i64::MAX))
}

pub(super) fn unbig(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

/// A serde enum's name (`RunStatus::Paused` → `paused`), as stored in a status column.
pub(super) fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        other => format!("{other:?}"),
    }
}

pub(super) fn parse_name<T: DeserializeOwned>(key: &str, name: String) -> Result<T> {
    serde_json::from_value(Value::String(name)).map_err(|source| Error::Decode {
        key: key.to_owned(),
        source,
    })
}

pub(super) fn decode<T: DeserializeOwned>(key: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|source| Error::Decode {
        key: key.to_owned(),
        source,
    })
}

/// The columns a run is read back from: its packed record, then what the columns say of it.
pub(super) const RUN_COLUMNS: &str = "id, record, status, owner, lease_until, lease_epoch, updated_at";

/// A run as stored: the record, with status and lease as its columns hold them.
pub(super) fn run_from(row: &Row) -> Result<RunRecord> {
    let id: String = row.get(0);
    let key = format!("runs/{id}");
    let mut run = decode_run(&id, row.get(1))?;
    run.status = parse_name(&key, row.get(2))?;
    run.owner = row.get(3);
    run.lease_until = row.get::<_, Option<i64>>(4).map(unbig);
    run.lease_epoch = unbig(row.get(5));
    run.updated_at = unbig(row.get(6));
    Ok(run)
}

/// Decodes each row, skipping (and logging) records that no longer decode.
pub(super) fn decoded<T>(rows: &[Row], what: &str, decode: impl Fn(&Row) -> Result<T>) -> Vec<T> {
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

/// A request from its id and packed record (`SELECT id, record`).
pub(super) fn request_from(row: &Row) -> Result<RequestRecord> {
    decode_request(row.get(0), row.get(1))
}

pub(super) fn outbox_from(row: &Row) -> Result<OutboxRecord> {
    let id: String = row.get(0);
    decode(&format!("outbox/{id}"), row.get(1))
}

pub(super) fn timer_columns(timer: &Timer) -> (i64, &'static str, &str) {
    let (kind, target) = match &timer.action {
        TimerAction::Expire(request_id) => ("e", request_id.as_str()),
        TimerAction::Wake(run_id) => ("w", run_id.as_str()),
    };
    (big(timer.deadline), kind, target)
}

/// The timer of a `deadline, kind, target` row of `hitl_timers` (what [`timer_columns`]
/// wrote); `None` for a kind it does not write.
pub(super) fn timer_from(row: &Row) -> Option<Timer> {
    let target: String = row.get(2);
    let action = match row.get::<_, &str>(1) {
        "e" => TimerAction::Expire(target),
        "w" => TimerAction::Wake(target),
        _ => return None,
    };
    Some(Timer {
        deadline: unbig(row.get(0)),
        action,
    })
}

pub(super) async fn save_outbox_in(
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

pub(super) async fn add_timer_in(
    transaction: &deadpool_postgres::Transaction<'_>,
    timer: &Timer,
) -> Result<()> {
    let statement = transaction.prepare_cached(ADD_TIMER).await.map_err(pg_error)?;
    let (deadline, kind, target) = timer_columns(timer);
    transaction
        .execute(&statement, &[&deadline, &kind, &target, &events::CHANNEL])
        .await
        .map_err(pg_error)?;
    Ok(())
}

pub(super) const SAVE_OUTBOX: &str = "INSERT INTO hitl_outbox (id, request_id, open, next_attempt_at, record) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET open = EXCLUDED.open, \
     next_attempt_at = EXCLUDED.next_attempt_at, record = EXCLUDED.record";

/// Arms a timer and tells the other workers when it is due.
pub(super) const ADD_TIMER: &str = "WITH armed AS (INSERT INTO hitl_timers (deadline, kind, target) VALUES ($1, $2, $3) \
     ON CONFLICT DO NOTHING RETURNING deadline) \
     SELECT pg_notify($4, 't' || chr(9) || deadline) FROM armed";

/// A request resolved: its new state, the wake-up of its run stored (the fallback when no
/// worker acts on the announcement), and the resolution announced. The wake-up is not
/// announced as a timer of its own: the resolution's event already resumes the run on the
/// worker that claims it, and announcing both made every worker read the due timers once
/// more per answer.
pub(super) const RESOLVE_AND_WAKE: &str = "WITH updated AS (UPDATE hitl_requests SET status = $2, record = $3 WHERE id = $1), \
     armed AS (INSERT INTO hitl_timers (deadline, kind, target) VALUES ($4, $5, $6) ON CONFLICT DO NOTHING) \
     SELECT pg_notify($7, $8)";

/// Inserts a run; the caller adds what happens when its id is taken.
pub(super) const INSERT_RUN: &str = "INSERT INTO hitl_runs (id, workflow, status, created_at, updated_at, owner, \
     lease_until, lease_epoch, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// The parameters of [`INSERT_RUN`].
pub(super) struct RunParams<'a> {
    run: &'a RunRecord,
    status: String,
    created_at: i64,
    updated_at: i64,
    lease_until: Option<i64>,
    lease_epoch: i64,
    record: Vec<u8>,
}

impl<'a> RunParams<'a> {
    pub(super) fn of(run: &'a RunRecord) -> Result<Self> {
        Ok(RunParams {
            run,
            status: name_of(&run.status),
            created_at: big(run.created_at),
            updated_at: big(run.updated_at),
            lease_until: run.lease_until.map(big),
            lease_epoch: big(run.lease_epoch),
            record: encode_run(run)?,
        })
    }

    pub(super) fn as_params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.run.id,
            &self.run.workflow,
            &self.status,
            &self.created_at,
            &self.updated_at,
            &self.run.owner,
            &self.lease_until,
            &self.lease_epoch,
            &self.record,
        ]
    }
}

pub(super) struct OutboxParams<'a> {
    id: &'a str,
    request_id: &'a str,
    open: bool,
    next_attempt_at: i64,
    record: Json<&'a OutboxRecord>,
}

impl OutboxParams<'_> {
    pub(super) fn as_params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.id,
            &self.request_id,
            &self.open,
            &self.next_attempt_at,
            &self.record,
        ]
    }
}

pub(super) fn outbox_params(record: &OutboxRecord) -> OutboxParams<'_> {
    OutboxParams {
        id: &record.id,
        request_id: &record.request_id,
        open: record.delivered_at.is_none() && !record.gave_up,
        next_attempt_at: big(record.next_attempt_at),
        record: Json(record),
    }
}

/// Claims set the lease columns; the record's own copy of them is refreshed on the next save.
pub(super) const CLAIM_SET: &str = "status = 'running', owner = $1, lease_until = $3, lease_epoch = hitl_runs.lease_epoch + 1, updated_at = $2";
