//! Migrations between on-disk formats, run by the open, each one crash-safe.
//!
//! **Format 1 → 2** ([`from_v1`]) never changes a format-1 record: it writes the converted
//! records into format 2's own trees, flushes them, and only then does the open flip the
//! marker (`hitl.json`, replaced atomically by a rename) to version 2. A process killed
//! before the flip leaves a database whose marker still says 1 and whose format-1 trees are
//! whole, so the next open migrates again from the start (it first drops whatever format-2
//! trees the interrupted run had written). After the flip, format 1's trees are dropped
//! ([`drop_format_1_trees`]), also again at every later open in case a kill came first.
//!
//! A record that does not decode is copied as it is (format 2 still reads a JSON value), so
//! a damaged run fails the way it failed before, with its bytes kept as evidence.

use std::collections::BTreeMap;

use super::{SledResult, SledStore, format};
use crate::error::Result;
use crate::model::request::RequestRecord;
use crate::model::run::RunRecord;
use crate::model::step::StepRecord;

/// The trees of format 1 that format 2 replaces.
const FORMAT_1_TREES: [&str; 4] = ["runs", "journal", "requests", "pending"];

/// Writes format 2's trees from format 1's, leaving format 1's as they are; durable when it
/// returns.
pub(super) fn from_v1(store: &SledStore) -> Result<()> {
    let db = &store.db;
    // What an interrupted migration wrote is written again from the start.
    for tree in [&store.runs, &store.journal, &store.requests, &store.pending] {
        tree.clear().storage()?;
    }
    let old = |name: &str| db.open_tree(name).storage();

    let runs = &store.runs;
    for entry in old("runs")?.iter() {
        let (key, bytes) = entry.storage()?;
        let converted = std::str::from_utf8(&key)
            .ok()
            .and_then(|_| serde_json::from_slice::<RunRecord>(&bytes).ok())
            .map(|run| format::encode_run(&run))
            .transpose()?;
        runs.insert(key, converted.unwrap_or_else(|| bytes.to_vec()))
            .storage()?;
    }
    crate::failpoint::hit("migrate_after_runs");

    // Format 1: one key per step, `run id \0 step id`, in key order (a run's steps together).
    let journal = &store.journal;
    let mut run: Option<String> = None;
    let mut steps: Vec<(String, std::result::Result<StepRecord, Vec<u8>>)> = Vec::new();
    let write_run =
        |run_id: &str, steps: &mut Vec<(String, std::result::Result<StepRecord, Vec<u8>>)>| -> Result<()> {
            // A chunk's entries in the order they were written: by seq; undecodable entries in
            // chunk 0, after the others.
            steps.sort_by_key(|(_, step)| step.as_ref().map_or(u64::MAX, |step| step.seq));
            let mut chunks: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
            for (step_id, step) in steps.drain(..) {
                let (number, appended) = match &step {
                    Ok(step) => {
                        let number = format::chunk_of(step);
                        let chunk = chunks.get(&number).map(Vec::as_slice).unwrap_or_default();
                        (number, format::Chunk::append(chunk, &[(&step_id, step)]))
                    }
                    Err(bytes) => {
                        let chunk = chunks.get(&0).map(Vec::as_slice).unwrap_or_default();
                        (0, format::Chunk::append_raw(chunk, &step_id, bytes))
                    }
                };
                if let Some(appended) = appended {
                    chunks.insert(number, appended);
                }
            }
            for (number, chunk) in chunks {
                journal
                    .insert(format::chunk_key(run_id, number), chunk)
                    .storage()?;
            }
            Ok(())
        };
    for entry in old("journal")?.iter() {
        let (key, bytes) = entry.storage()?;
        let Some(split) = key.iter().position(|byte| *byte == 0) else {
            tracing::error!(key = %format::shown_key(&key), "dropping a format-1 journal key without a step id");
            continue;
        };
        let run_id = String::from_utf8_lossy(&key[..split]).into_owned();
        let step_id = String::from_utf8_lossy(&key[split + 1..]).into_owned();
        if run.as_deref() != Some(run_id.as_str()) {
            if let Some(previous) = run.take() {
                write_run(&previous, &mut steps)?;
            }
            run = Some(run_id);
        }
        let step = serde_json::from_slice::<StepRecord>(&bytes).map_err(|_| bytes.to_vec());
        steps.push((step_id, step));
    }
    if let Some(previous) = run.take() {
        write_run(&previous, &mut steps)?;
    }
    crate::failpoint::hit("migrate_after_journal");

    let requests = &store.requests;
    for entry in old("requests")?.iter() {
        let (key, bytes) = entry.storage()?;
        let request_id = String::from_utf8_lossy(&key).into_owned();
        let converted = serde_json::from_slice::<RequestRecord>(&bytes)
            .ok()
            .map(|request| format::encode_request(&request))
            .transpose()?;
        requests
            .insert(
                format::id_key(&request_id),
                converted.unwrap_or_else(|| bytes.to_vec()),
            )
            .storage()?;
    }

    let pending = &store.pending;
    for entry in old("pending")?.iter() {
        let (key, _) = entry.storage()?;
        let Some(split) = key.iter().position(|byte| *byte == 0) else {
            continue;
        };
        let run_id = String::from_utf8_lossy(&key[..split]);
        let request_id = String::from_utf8_lossy(&key[split + 1..]);
        pending
            .insert(format::pending_key(&run_id, &request_id), &[])
            .storage()?;
    }
    db.flush().storage()?;
    crate::failpoint::hit("migrate_before_marker");
    Ok(())
}

/// Drops format 1's trees once the marker says 2 (a no-op when they are gone).
pub(super) fn drop_format_1_trees(db: &sled::Db) -> Result<()> {
    let names = db.tree_names();
    let mut dropped = false;
    for name in FORMAT_1_TREES {
        if names.iter().any(|existing| existing.as_ref() == name.as_bytes()) {
            db.drop_tree(name).storage()?;
            dropped = true;
        }
    }
    if dropped {
        db.flush().storage()?;
    }
    Ok(())
}
