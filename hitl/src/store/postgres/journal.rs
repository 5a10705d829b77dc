//! A run's journal in PostgreSQL: one row per chunk of about 16 steps (`seq / 16`), its steps
//! packed as in sled's format 2 ([`Chunk`]), appended on the server.
//!
//! One row per step cost about 365 bytes with its index entry (tuple header, the run id
//! again, the step id, a JSONB record with its field names) for some 35 bytes of packed step. A chunk row
//! holds up to 16 steps with the run id once and one index entry. A step is appended without
//! reading the chunk: the client sends a [`Chunk::concatenable`] chunk and the `ON CONFLICT`
//! branch concatenates its entries to the stored ones (`steps || substring(new FROM 2)`).
//! Each append makes a new version of the row; the index is untouched, so the update is HOT
//! and the page's dead versions are pruned as it fills. A step with a large output (past the
//! 2 KB TOAST threshold) makes the chunk's next appends rewrite that output too: up to 16
//! times the bytes of one row per step, for the steps of that chunk.

use tokio_postgres::Transaction;

use super::pg_error;
use crate::error::{Error, Result};
use crate::model::step::StepRecord;
use crate::store::packed::{Chunk, by_chunk, chunk_of};
use crate::store::{StoreError, StoreErrorKind};

/// The `INSERT … SELECT` of journal chunks for run `$run` from the arrays `$chunks` (`int[]`)
/// and `$steps` (`bytea[]`, concatenable chunks) — see [`ChunkRows`]; `$from` names more
/// rows to select from (the fence) and its condition. A literal, to use in `concat!`; follow
/// it with a conflict clause, or use [`append_chunks`].
macro_rules! insert_chunks {
    ($run:literal, $chunks:literal, $steps:literal, $from:literal) => {
        concat!(
            "INSERT INTO hitl_journal (run_id, chunk, steps) SELECT ",
            $run,
            ", c.chunk, c.steps FROM unnest(",
            $chunks,
            "::int[], ",
            $steps,
            "::bytea[]) AS c(chunk, steps)",
            $from
        )
    };
}
pub(super) use insert_chunks;

/// [`insert_chunks`] appending to the stored chunks: the entries of the new one (all after its
/// first byte, the base) follow the stored entries.
macro_rules! append_chunks {
    ($run:literal, $chunks:literal, $steps:literal, $from:literal) => {
        concat!(
            $crate::store::postgres::journal::insert_chunks!($run, $chunks, $steps, $from),
            " ON CONFLICT (run_id, chunk) DO UPDATE \
             SET steps = hitl_journal.steps || substring(EXCLUDED.steps FROM 2)"
        )
    };
}
pub(super) use append_chunks;

/// The start of a statement that appends steps to run `$1` only while its lease epoch is
/// `$2`: `fence` locks the run's row `FOR SHARE` (a claim waits for it), `allowed` is one row
/// whose `ok` says whether the epoch matches (or the run has no row), and the CTE named
/// `$name` appends the chunks `$3` and `$4` ([`ChunkRows`]) when it does. Follow it with the
/// end of that CTE, any others, and `SELECT ok FROM allowed`.
macro_rules! fenced_append {
    ($name:literal) => {
        concat!(
            "WITH fence AS (SELECT lease_epoch FROM hitl_runs WHERE id = $1 FOR SHARE), \
             allowed AS (SELECT NOT EXISTS (SELECT 1 FROM fence WHERE lease_epoch <> $2) AS ok), ",
            $name,
            " AS (",
            $crate::store::postgres::journal::append_chunks!("$1", "$3", "$4", ", allowed WHERE allowed.ok")
        )
    };
}
pub(super) use fenced_append;

/// Steps as the parameters of [`insert_chunks`]: a chunk number and a concatenable chunk each.
pub(super) struct ChunkRows {
    pub(super) chunks: Vec<i32>,
    pub(super) steps: Vec<Vec<u8>>,
}

impl ChunkRows {
    pub(super) fn of(steps: &[(String, StepRecord)]) -> Self {
        let (chunks, steps) = by_chunk(steps)
            .into_iter()
            .map(|(chunk, entries)| (number(chunk), Chunk::concatenable(&entries)))
            .unzip();
        ChunkRows { chunks, steps }
    }

    pub(super) fn one(step_id: &str, step: &StepRecord) -> Self {
        ChunkRows {
            chunks: vec![number(chunk_of(step))],
            steps: vec![Chunk::concatenable(&[(step_id, step)])],
        }
    }
}

/// Chunk numbers are `seq / 16`, capped at `i32::MAX` by [`chunk_of`].
fn number(chunk: u32) -> i32 {
    i32::try_from(chunk).unwrap_or(i32::MAX)
}

/// Migration 2: the journal of schema 1 (one JSONB row per step, now `hitl_journal_v1`) into
/// chunk rows, run by run, then the old table dropped — all in the migration's transaction.
/// An entry that does not decode as a step is kept as its JSON text, in chunk 0, where
/// reading the journal reports it as before.
pub(super) async fn convert_v1(transaction: &Transaction<'_>) -> Result<()> {
    const PAGE: i64 = 500;
    let mut after: Option<String> = None;
    let mut converted: i64 = 0;
    loop {
        let runs = transaction
            .query(
                "SELECT DISTINCT run_id FROM hitl_journal_v1 WHERE ($1::text IS NULL OR run_id > $1) \
                 ORDER BY run_id LIMIT $2",
                &[&after, &PAGE],
            )
            .await
            .map_err(pg_error)?;
        let Some(last) = runs.last() else { break };
        after = Some(last.get(0));
        let ids: Vec<String> = runs.iter().map(|row| row.get(0)).collect();
        let rows = transaction
            .query(
                "SELECT run_id, step_id, record::text FROM hitl_journal_v1 \
                 WHERE run_id = ANY($1) ORDER BY run_id, step_id",
                &[&ids],
            )
            .await
            .map_err(pg_error)?;
        converted += rows.len() as i64;
        let mut run_ids = Vec::new();
        let mut chunks = Vec::new();
        let mut steps = Vec::new();
        for of_run in rows.chunk_by(|a, b| a.get::<_, &str>(0) == b.get::<_, &str>(0)) {
            let run_id: &str = of_run[0].get(0);
            let mut decoded = Vec::new();
            let mut raw = Vec::new();
            for row in of_run {
                let (step_id, text): (String, &str) = (row.get(1), row.get(2));
                match serde_json::from_str::<StepRecord>(text) {
                    Ok(step) => decoded.push((step_id, step)),
                    Err(_) => raw.push(Chunk::concatenable_raw(&step_id, kept_as_json(text).as_bytes())),
                }
            }
            // In the order the steps were written; undecodable entries in chunk 0, last.
            decoded.sort_by_key(|(_, step)| step.seq);
            let mut of_run = ChunkRows::of(&decoded);
            if !raw.is_empty() {
                let zero = match of_run.chunks.iter().position(|chunk| *chunk == 0) {
                    Some(index) => index,
                    None => {
                        of_run.chunks.push(0);
                        of_run.steps.push(vec![0]);
                        of_run.chunks.len() - 1
                    }
                };
                for entry in raw {
                    of_run.steps[zero].extend_from_slice(&entry[1..]);
                }
            }
            run_ids.extend(std::iter::repeat_n(run_id.to_owned(), of_run.chunks.len()));
            chunks.extend(of_run.chunks);
            steps.extend(of_run.steps);
        }
        transaction
            .execute(
                "INSERT INTO hitl_journal (run_id, chunk, steps) \
                 SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[])",
                &[&run_ids, &chunks, &steps],
            )
            .await
            .map_err(pg_error)?;
    }
    // Every row was read before the old table goes.
    let total: i64 = transaction
        .query_one("SELECT count(*) FROM hitl_journal_v1", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    if total != converted {
        return Err(Error::Storage(StoreError::new(
            StoreErrorKind::Unavailable,
            format!(
                "migration 2 read {converted} of the {total} journal rows; nothing was changed \
                 (the migration's transaction is rolled back): report this with the database's \
                 `hitl_journal` table"
            ),
        )));
    }
    transaction
        .batch_execute("DROP TABLE hitl_journal_v1")
        .await
        .map_err(pg_error)
}

/// A schema-1 entry that is not a step, kept as JSON that reads as an object (so that the
/// packed-step decoder, which takes anything not starting with `{` for a packed step, never
/// takes it for one): objects as they are, any other value inside `{"not_a_step": …}`.
fn kept_as_json(text: &str) -> String {
    if text.trim_start().starts_with('{') {
        text.to_owned()
    } else {
        format!("{{\"not_a_step\": {text}}}")
    }
}
