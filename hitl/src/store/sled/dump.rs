//! `hitl --db DIR dump`: every record of a sled database as JSON, whatever its encoding on
//! disk (format 4 packs its values and keeps a run's record, first journal chunk and open
//! requests in one document, see `format`; the dump shows each record on its own line).

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::{SledOptions, SledResult, SledStore, format};
use crate::error::Result;
use crate::model::outbox::OutboxRecord;
use crate::store::Timer;
use crate::store::dump::{DumpLines, shown};

/// Writes every record of the hitl database in `dir` to `out` as JSON lines, and returns how
/// many lines it wrote.
///
/// The first line names the format (`{"format": "hitl", "version": 4}`); then one object per
/// record, with `"tree"` naming its kind — `runs`, `journal`, `requests`, `pending`,
/// `outbox`, `timers`, `channels`, `definitions`, `meta` — its key fields, and `"record"`,
/// the record as the JSON the engine's types serialize to (a journal entry's `record` is a
/// [`StepRecord`](crate::store::StepRecord)). A value that does not decode is a line with
/// `"error"` instead of `"record"`, and the dump goes on. The secret in `meta` is not shown.
///
/// The directory is opened like [`Engine::builder().path(dir)`](crate::EngineBuilder::path)
/// opens it: only while no process holds it, and a database of an older format is migrated
/// first.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// hitl::Engine::builder().path(dir.path()).open().await?.close().await?;
/// let mut out = Vec::new();
/// let lines = hitl::store::dump_sled(dir.path(), &mut out)?;
/// assert_eq!(lines, 2, "an empty database: the format line, and the link secret (not shown)");
/// assert!(String::from_utf8(out).unwrap().starts_with(r#"{"format":"hitl","version":4}"#));
/// # Ok(()) }
/// ```
pub fn dump_sled(dir: &Path, out: &mut dyn Write) -> Result<u64> {
    let store = SledStore::open(&SledOptions {
        path: Some(dir.to_owned()),
        cache_capacity: 64 << 20,
        flush_every_ms: None,
    })?;
    let mut dump = DumpLines::new(out, dir);
    dump.line(json!({ "format": "hitl", "version": format::VERSION }))?;
    // A run document's parts, each shown as the record it is: the run, journal chunk 0, and
    // the open requests (with their pending-index lines, from the request index below).
    let mut open_requests = Vec::new();
    for entry in store.runs.iter() {
        let (key, bytes) = entry.storage()?;
        let run_id = String::from_utf8_lossy(&key).into_owned();
        let document = match super::read_document(&run_id, &bytes) {
            Ok(document) => document,
            Err(error) => {
                dump.line(json!({ "tree": "runs", "run_id": run_id, "error": error.to_string() }))?;
                continue;
            }
        };
        if !document.run.is_empty() {
            let (field, value) = shown(format::decode_run(&run_id, &document.run));
            dump.line(json!({ "tree": "runs", "run_id": run_id, field: value }))?;
        }
        if !document.chunk.is_empty() {
            dump.chunk(&run_id, 0, &document.chunk)?;
        }
        open_requests.extend(document.open);
    }
    for entry in store.journal.iter() {
        let (key, chunk) = entry.storage()?;
        let Some((run_id, number)) = format::read_chunk_key(&key) else {
            dump.line(
                json!({ "tree": "journal", "key": format::shown_key(&key), "error": "not a chunk key" }),
            )?;
            continue;
        };
        dump.chunk(&run_id, number, &chunk)?;
    }
    for (request_id, bytes) in open_requests {
        let (field, value) = shown(format::decode_request(&request_id, &bytes));
        dump.line(json!({ "tree": "requests", "request_id": request_id, field: value }))?;
    }
    for entry in store.requests.iter() {
        let (key, value) = entry.storage()?;
        match format::read_request_key(&key) {
            Some((true, request_id)) => dump.line(json!({
                "tree": "pending",
                "run_id": String::from_utf8_lossy(&value),
                "request_id": request_id,
            }))?,
            Some((false, request_id)) => {
                let (field, value) = shown(format::decode_request(&request_id, &value));
                dump.line(json!({ "tree": "requests", "request_id": request_id, field: value }))?;
            }
            None => dump.line(
                json!({ "tree": "requests", "key": format::shown_key(&key), "error": "not a request-index key" }),
            )?,
        }
    }
    for entry in store.outbox.iter() {
        let (key, bytes) = entry.storage()?;
        let (field, value) = shown(crate::store::decode::<OutboxRecord>(&key, &bytes));
        dump.line(json!({ "tree": "outbox", "id": format::shown_key(&key), field: value }))?;
    }
    for entry in store.timers.iter() {
        let (key, _) = entry.storage()?;
        match Timer::from_key(&key) {
            Some(timer) => dump.timer(&timer)?,
            None => dump.line(
                json!({ "tree": "timers", "key": format::shown_key(&key), "error": "not a timer key" }),
            )?,
        }
    }
    for (tree, name, first, second) in [
        (&store.channels, "channels", "run_id", "key"),
        (&store.definitions, "definitions", "workflow", "fingerprint"),
    ] {
        for entry in tree.iter() {
            let (key, bytes) = entry.storage()?;
            let split = key.iter().position(|byte| *byte == 0).unwrap_or(key.len());
            let (field, value) = shown(crate::store::decode::<Value>(&key, &bytes));
            dump.line(json!({
                "tree": name,
                first: String::from_utf8_lossy(&key[..split]),
                second: String::from_utf8_lossy(key.get(split + 1..).unwrap_or_default()),
                field: value,
            }))?;
        }
    }
    for entry in store.meta.iter() {
        let (key, _) = entry.storage()?;
        dump.line(json!({ "tree": "meta", "key": format::shown_key(&key), "record": "(not shown)" }))?;
    }
    Ok(dump.lines)
}
