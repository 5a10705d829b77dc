//! Migrations between on-disk formats, run by the open ([`upgrade`]), each one crash-safe.
//!
//! A migration never changes a record of the format it reads: it writes the converted
//! records into the next format's own trees, and once every step is done and flushed the
//! open flips the marker (`hitl.json`, replaced atomically by a rename) to the current
//! version. A process killed before the flip leaves a database whose marker still names the
//! old format and whose trees of that format are whole, so the next open migrates again from
//! the start (each step first clears the trees it writes). After the flip, the older
//! formats' trees are dropped ([`drop_old_trees`]), also again at every later open in case a
//! kill came first.
//!
//! - **Format 1 → 2** ([`from_v1`]): JSON records packed; one key per step into chunks.
//! - **Format 2 → 3** ([`from_v2`]): a run's record, chunk 0 and open requests into its run
//!   document; later chunks as they were; requests into the request index.
//! - **Format 3 → 4**: nothing to convert (format 4 adds a state, an answer not yet settled,
//!   that format 3 never wrote; `format`), so only the marker changes.
//!
//! A format-1 database goes through every step. A record that does not decode is copied as it is
//! (the current format still reads a JSON run record), so a damaged run fails the way it
//! failed before, with its bytes kept as evidence.

use std::collections::BTreeMap;

use super::format::{Document, v2};
use super::{SledResult, SledStore, format};
use crate::error::Result;
use crate::model::request::{RequestRecord, RequestStatus};
use crate::model::run::RunRecord;
use crate::model::step::StepRecord;

/// The trees of format 1 that format 2 replaced.
const FORMAT_1_TREES: [&str; 4] = ["runs", "journal", "requests", "pending"];

/// Brings a database of format `version` to the current one, leaving the old format's trees
/// as they are; durable when it returns (the caller then flips the marker).
pub(super) fn upgrade(store: &SledStore, version: u32) -> Result<()> {
    if version < 2 {
        from_v1(store)?;
    }
    if version < 3 {
        from_v2(store)?;
    }
    store.db.flush().storage()?;
    crate::failpoint::hit("migrate_before_marker");
    Ok(())
}

/// Writes format 2's trees from format 1's, leaving format 1's as they are.
fn from_v1(store: &SledStore) -> Result<()> {
    let db = &store.db;
    let tree = |name: &str| db.open_tree(name).storage();
    let (runs, journal, requests, pending) = (
        tree(v2::RUNS)?,
        tree(v2::JOURNAL)?,
        tree(v2::REQUESTS)?,
        tree(v2::PENDING)?,
    );
    // What an interrupted migration wrote is written again from the start.
    for tree in [&runs, &journal, &requests, &pending] {
        tree.clear().storage()?;
    }
    let old = |name: &str| db.open_tree(name).storage();

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

    for entry in old("pending")?.iter() {
        let (key, _) = entry.storage()?;
        let Some(split) = key.iter().position(|byte| *byte == 0) else {
            continue;
        };
        let run_id = String::from_utf8_lossy(&key[..split]);
        let request_id = String::from_utf8_lossy(&key[split + 1..]);
        pending
            .insert(v2::pending_key(&run_id, &request_id), &[])
            .storage()?;
    }
    Ok(())
}

/// Writes format 3's trees from format 2's, leaving format 2's as they are.
fn from_v2(store: &SledStore) -> Result<()> {
    for tree in [&store.runs, &store.journal, &store.requests] {
        tree.clear().storage()?;
    }
    let old = |name: &str| store.db.open_tree(name).storage();
    // A document is read back and written again as each of its parts arrives.
    let add_to_document = |run_id: &str, add: &dyn Fn(&mut Document)| -> Result<()> {
        let mut document = match store.runs.get(run_id).storage()? {
            Some(bytes) => super::read_document(run_id, &bytes)?,
            None => Document::default(),
        };
        add(&mut document);
        store.runs.insert(run_id, document.to_bytes()).storage()?;
        Ok(())
    };

    for entry in old(v2::RUNS)?.iter() {
        let (key, bytes) = entry.storage()?;
        // Keys are run ids as text in both formats; the record's bytes move as they are.
        store
            .runs
            .insert(key, Document::of_run(bytes.to_vec()).to_bytes())
            .storage()?;
    }
    for entry in old(v2::JOURNAL)?.iter() {
        let (key, chunk) = entry.storage()?;
        match format::read_chunk_key(&key) {
            Some((run_id, 0)) => add_to_document(&run_id, &|document| document.chunk = chunk.to_vec())?,
            // Later chunks keep their keys.
            _ => {
                store.journal.insert(key, chunk).storage()?;
            }
        }
    }
    for entry in old(v2::REQUESTS)?.iter() {
        let (key, bytes) = entry.storage()?;
        let mut reader = format::Reader::new(&key);
        let Some(request_id) = format::read_id(&mut reader).filter(|_| reader.done()) else {
            // Kept as evidence, where no request key can be: reads skip it, the dump shows it.
            tracing::error!(key = %format::shown_key(&key), "keeping a format-2 request key that is not a request id");
            store
                .requests
                .insert(format::unreadable_request_key(&key), bytes)
                .storage()?;
            continue;
        };
        match format::decode_request(&request_id, &bytes) {
            Ok(request) if request.status == RequestStatus::Pending => {
                add_to_document(&request.run_id, &|document| {
                    document.open.push((request_id.clone(), bytes.to_vec()))
                })?;
                store
                    .requests
                    .insert(format::open_request_key(&request_id), request.run_id.as_bytes())
                    .storage()?;
            }
            // Resolved, or damaged (kept as evidence: reading it reports the damage).
            _ => {
                store
                    .requests
                    .insert(format::closed_request_key(&request_id), bytes)
                    .storage()?;
            }
        }
    }
    crate::failpoint::hit("migrate_v2_after_requests");
    Ok(())
}

/// Drops the trees of formats 1 and 2 once the marker names the current one (a no-op when
/// they are gone).
pub(super) fn drop_old_trees(db: &sled::Db) -> Result<()> {
    let names = db.tree_names();
    let mut dropped = false;
    for name in FORMAT_1_TREES.into_iter().chain(v2::TREES) {
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
