//! A run's journal in PostgreSQL: one row per chunk of about 8 steps (`seq / 8`), its steps
//! packed as in sled's format 2 ([`Chunk`]), appended on the server.
//!
//! One row per step cost about 365 bytes (tuple header, the run id again, the step id, a JSONB
//! record with its field names, an index entry) for some 35 bytes of packed step. A chunk row
//! holds up to 8 steps with the run id once and one index entry. A step is appended without
//! reading the chunk: the client sends a [`Chunk::concatenable`] chunk and the `ON CONFLICT`
//! branch concatenates its entries to the stored ones (`steps || substring(new FROM 2)`).
//! Each append makes a new version of the row; the index is untouched, so the update is HOT
//! and the page's dead versions are pruned as it fills.

use tokio_postgres::Transaction;

use super::pg_error;
use crate::error::Result;
use crate::model::step::StepRecord;
use crate::store::packed::{Chunk, by_chunk, chunk_of};

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

/// Chunk numbers are `seq / 8`; past `i32::MAX` (17 billion steps) they stay in the last one.
fn number(chunk: u32) -> i32 {
    i32::try_from(chunk).unwrap_or(i32::MAX)
}

/// Migration 2: the journal of schema 1 (one JSONB row per step, now `hitl_journal_v1`) into
/// chunk rows, run by run, then the old table dropped — all in the migration's transaction.
/// An entry that does not decode as a step is kept as its JSON text, in chunk 0, where
/// reading the journal reports it as before.
pub(super) async fn convert_v1(transaction: &Transaction<'_>) -> Result<()> {
    const PAGE: i64 = 500;
    let mut after = String::new();
    loop {
        let runs = transaction
            .query(
                "SELECT DISTINCT run_id FROM hitl_journal_v1 WHERE run_id > $1 ORDER BY run_id LIMIT $2",
                &[&after, &PAGE],
            )
            .await
            .map_err(pg_error)?;
        let Some(last) = runs.last() else { break };
        after = last.get(0);
        let ids: Vec<String> = runs.iter().map(|row| row.get(0)).collect();
        let rows = transaction
            .query(
                "SELECT run_id, step_id, record::text FROM hitl_journal_v1 \
                 WHERE run_id = ANY($1) ORDER BY run_id, step_id",
                &[&ids],
            )
            .await
            .map_err(pg_error)?;
        let mut run_ids = Vec::new();
        let mut chunks = Vec::new();
        let mut steps = Vec::new();
        for run_id in &ids {
            let mut decoded = Vec::new();
            let mut raw = Vec::new();
            for row in rows.iter().filter(|row| row.get::<_, &str>(0) == run_id) {
                let (step_id, text): (String, &str) = (row.get(1), row.get(2));
                match serde_json::from_str::<StepRecord>(text) {
                    Ok(step) => decoded.push((step_id, step)),
                    Err(_) => raw.push(Chunk::concatenable_raw(&step_id, text.as_bytes())),
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
            run_ids.extend(std::iter::repeat_n(run_id.clone(), of_run.chunks.len()));
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
    transaction
        .batch_execute("DROP TABLE hitl_journal_v1")
        .await
        .map_err(pg_error)
}
