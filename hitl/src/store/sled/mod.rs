//! The sled implementation of [`Store`]: a run's record, first steps and open requests in
//! one run document, the rest in a tree per kind of record; one compare-and-swap or one
//! transaction per atomic domain operation. Opening (and the checks made before sled touches
//! a directory) is `open`; the safety net around a failed open, `open_guard`; shared flushes,
//! `group_commit`; the on-disk encoding, `format`; the migrations from formats 1 and 2,
//! `migrate`; the JSON dump, `dump`. This file holds the run and journal operations,
//! `requests` the request, outbox, timer and secret ones, `boundary` the [`Store`] impl over
//! both.
//!
//! A hitl database is a directory holding sled's files plus two of ours:
//! `hitl.json` (the marker: format name and version) and `hitl.lock` (an advisory lock held
//! while an engine has the directory open). Opening refuses, before sled writes anything,
//! a directory that is neither empty nor marked, one locked by another process, and one whose
//! marker names a newer format. A sled panic or corruption error while opening is contained
//! and reported as [`Error::Corrupt`].

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sled::Transactional;

mod boundary;
pub(crate) mod dump;
pub(crate) mod format;
mod group_commit;
mod migrate;
mod open;
mod open_guard;
mod requests;

use group_commit::GroupCommit;
use open::{CleanClose, OpenPath};
use sled::transaction::{ConflictableTransactionError, TransactionError};

use format::Document;

use super::{
    FlushFuture, RunQuery, RunRecord, StepRecord, StoreError, StoreErrorKind, Timer, decode, encode,
    lost_lease, run_key,
};
use crate::error::{Error, Result};
use crate::model::run::RunStatus;

/// How to open the sled database.
#[derive(Debug, Clone)]
pub(crate) struct SledOptions {
    /// `None` for a temporary in-memory database removed on drop.
    pub path: Option<PathBuf>,
    pub cache_capacity: u64,
    pub flush_every_ms: Option<u64>,
}

/// A hitl database in a sled directory.
pub(crate) struct SledStore {
    db: sled::Db,
    runs: sled::Tree,
    journal: sled::Tree,
    channels: sled::Tree,
    definitions: sled::Tree,
    /// The request index: open requests (the pending index) and closed ones (`format`).
    requests: sled::Tree,
    outbox: sled::Tree,
    timers: sled::Tree,
    meta: sled::Tree,
    group_commit: Arc<GroupCommit>,
    /// The wake-ups armed by answers still held in their runs' documents (`requests`,
    /// "settling"): what `due_timers` adds to the `timers` tree. Rebuilt by the open.
    unsettled: Mutex<BTreeMap<Timer, Vec<String>>>,
    /// Declared after the sled handles, so it drops after them and before the lock.
    _clean_close: CleanClose,
    /// Held for as long as the store lives; dropping it releases the directory.
    _lock: Option<File>,
    /// Declared last so it drops last: the path counts as open in this process until the
    /// sled handles above are gone.
    _open: Option<OpenPath>,
}

impl Drop for SledStore {
    /// Before the handles, the clean-close record and the lock go: waits for a group-commit
    /// thread that still holds the database, so that the directory is closed when the store is.
    fn drop(&mut self) {
        self.group_commit.wait_for_flushers();
    }
}

/// The operations, synchronous (sled is); the [`Store`] impl below wraps each in a ready
/// future. Values are in format 4 (`format`): a run's record, first journal chunk and open
/// requests are one [`Document`].
impl SledStore {
    fn load_run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        match self.runs.get(run_id).storage()? {
            Some(bytes) => decode_run(run_id, run_bytes(run_id, &bytes)?),
            None => Ok(None),
        }
    }

    /// The document of `run_id`, if it has one.
    fn document(&self, run_id: &str) -> Result<Option<Document>> {
        self.runs
            .get(run_id)
            .storage()?
            .map(|bytes| read_document(run_id, &bytes))
            .transpose()
    }

    /// Compare-and-swap on one run document: `change` sees the stored document and returns
    /// the one to store (`None`: leave it); retried when another writer got in between.
    /// Returns whether it wrote.
    fn update_document(
        &self,
        run_id: &str,
        change: impl Fn(Option<Document>) -> Result<Option<Document>>,
    ) -> Result<bool> {
        loop {
            let current = self.runs.get(run_id).storage()?;
            let stored = current
                .as_ref()
                .map(|bytes| read_document(run_id, bytes))
                .transpose()?;
            let Some(new) = change(stored)? else {
                return Ok(false);
            };
            match self
                .runs
                .compare_and_swap(
                    run_id,
                    current.as_ref().map(|bytes| bytes.as_ref()),
                    Some(new.to_bytes()),
                )
                .storage()?
            {
                Ok(()) => return Ok(true),
                Err(_) => continue,
            }
        }
    }

    fn save_run(&self, run: &RunRecord) -> Result<()> {
        let bytes = format::encode_run(run)?;
        self.update_run(&run.id, |stored| match stored {
            Some(stored) if stored.lease_epoch != run.lease_epoch => {
                Err(lost_lease(&run.id, run.lease_epoch))
            }
            _ => Ok(Some(bytes.clone())),
        })
        .map(|_| ())
    }

    /// Compare-and-swap on one run record (in its document, whose other parts are kept):
    /// `change` sees the stored record and returns the bytes to store (`None`: leave it).
    /// Returns whether it wrote.
    fn update_run(
        &self,
        run_id: &str,
        change: impl Fn(Option<RunRecord>) -> Result<Option<Vec<u8>>>,
    ) -> Result<bool> {
        self.update_document(run_id, |document| {
            let mut document = document.unwrap_or_default();
            let stored = decode_run(run_id, &document.run)?;
            Ok(change(stored)?.map(|bytes| {
                document.run = bytes;
                document
            }))
        })
    }

    /// Claims `run_id` for `owner` if the stored record passes `claimable`
    /// ([`RunRecord::claimed`]); the claimed record, or `None` when it did not pass.
    fn claim(
        &self,
        run_id: &str,
        owner: &str,
        now: u64,
        until: u64,
        claimable: impl Fn(&RunRecord) -> bool,
    ) -> Result<Option<RunRecord>> {
        let claimed = std::cell::RefCell::new(None);
        // Each attempt starts from nothing: an attempt whose compare-and-swap lost to another
        // claim must not leave its record behind as if it had won.
        self.update_run(run_id, |stored| {
            *claimed.borrow_mut() = None;
            match stored {
                Some(run) if claimable(&run) => {
                    let next = run.claimed(owner, until, now);
                    let bytes = format::encode_run(&next)?;
                    *claimed.borrow_mut() = Some(next);
                    Ok(Some(bytes))
                }
                _ => Ok(None),
            }
        })?;
        Ok(claimed.into_inner())
    }

    fn claim_paused(&self, run_id: &str, owner: &str, now: u64, until: u64) -> Result<Option<RunRecord>> {
        self.claim(run_id, owner, now, until, |run| run.status.is_resumable())
    }

    /// sled is one process (the directory lock): every `Running` run not this owner's was
    /// left by an engine that is gone.
    fn claim_lapsed(&self, owner: &str, now: u64, until: u64, limit: usize) -> Result<Vec<RunRecord>> {
        let running = RunQuery {
            status: Some(RunStatus::Running),
            ..RunQuery::default()
        };
        let lapsed =
            |run: &RunRecord| run.status == RunStatus::Running && run.owner.as_deref() != Some(owner);
        let mut claimed = Vec::new();
        for run in self.runs(&running)? {
            if claimed.len() >= limit || !lapsed(&run) {
                continue;
            }
            claimed.extend(self.claim(&run.id, owner, now, until, lapsed)?);
        }
        Ok(claimed)
    }

    fn renew_lease(&self, run_id: &str, owner: &str, epoch: u64, until: u64) -> Result<()> {
        let wrote = self.update_run(run_id, |stored| match stored {
            Some(mut run) if run.held_by(owner, epoch) => {
                run.lease_until = Some(until);
                format::encode_run(&run).map(Some)
            }
            _ => Err(lost_lease(run_id, epoch)),
        })?;
        debug_assert!(wrote);
        Ok(())
    }

    fn create_run(&self, run: &RunRecord) -> Result<Option<RunRecord>> {
        let bytes = format::encode_run(run)?;
        let existing = std::cell::RefCell::new(None);
        self.update_run(&run.id, |stored| {
            *existing.borrow_mut() = stored;
            Ok(existing.borrow().is_none().then(|| bytes.clone()))
        })?;
        Ok(existing.into_inner())
    }

    fn runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>> {
        let mut runs = Vec::new();
        let entries = match &query.after {
            Some(after) => self
                .runs
                .range::<&[u8], _>((Bound::Excluded(after.as_bytes()), Bound::Unbounded)),
            None => self.runs.iter(),
        };
        for entry in entries {
            if query.limit.is_some_and(|limit| runs.len() >= limit) {
                break;
            }
            let (key, bytes) = entry.storage()?;
            // One damaged run record must not hide every other run: it is reported and left
            // as it is (its bytes are evidence), and `load_run` of that id reports it too.
            let decoded = std::str::from_utf8(&key)
                .map_err(|_| Error::Decode {
                    key: format::shown_key(&key),
                    source: serde::de::Error::custom("a run id that is not UTF-8"),
                })
                .and_then(|run_id| decode_run(run_id, run_bytes(run_id, &bytes)?));
            match decoded {
                Ok(Some(run)) if query.matches(&run) => runs.push(run),
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "skipping a run record that cannot be read"),
            }
        }
        Ok(runs)
    }

    fn load_journal(&self, run_id: &str) -> Result<Vec<(String, StepRecord)>> {
        // Chunk 0 is empty until the run's first step.
        let first = self
            .document(run_id)?
            .map(|document| document.chunk)
            .filter(|chunk| !chunk.is_empty());
        let later = self
            .journal
            .scan_prefix(format::id_key(run_id))
            .values()
            .collect::<std::result::Result<Vec<_>, _>>()
            .storage()?;
        format::journal_of(
            run_id,
            first
                .iter()
                .map(Vec::as_slice)
                .chain(later.iter().map(|chunk| &chunk[..])),
        )
    }

    fn append_steps(&self, run_id: &str, epoch: u64, steps: &[(String, StepRecord)]) -> Result<()> {
        let chunks = format::by_chunk(steps);
        if let [(0, entries)] = chunks.as_slice() {
            // The common case: one compare-and-swap on the run's document, fenced in it.
            self.update_document(run_id, |document| {
                let mut document = document.unwrap_or_default();
                fence(run_id, epoch, &document)?;
                document.chunk = append_to_chunk(run_id, Some(&document.chunk), entries)?;
                Ok(Some(document))
            })?;
            return Ok(());
        }
        if let [(chunk, entries)] = chunks.as_slice() {
            // One later chunk: the fence read from the document, then one compare-and-swap on
            // the chunk. sled is one process and the engine drives a run from one task, so
            // checking before the write is enough here.
            if let Some(bytes) = self.runs.get(run_id).storage()? {
                fence_run(run_id, epoch, run_bytes(run_id, &bytes)?)?;
            }
            let key = format::chunk_key(run_id, *chunk);
            loop {
                let current = self.journal.get(&key).storage()?;
                let next = append_to_chunk(run_id, current.as_deref(), entries)?;
                match self
                    .journal
                    .compare_and_swap(&key, current, Some(next))
                    .storage()?
                {
                    Ok(()) => return Ok(()),
                    Err(_) => continue,
                }
            }
        }
        (&self.runs, &self.journal)
            .transaction(|(runs, journal)| {
                let mut document = JournalWrite::begin(runs, run_id, epoch)?;
                for (chunk, entries) in &chunks {
                    document.append(journal, *chunk, entries)?;
                }
                document.finish(runs)
            })
            .map_err(abort_error)
    }

    fn append_channel_set(
        &self,
        run_id: &str,
        epoch: u64,
        step_id: &str,
        step: &StepRecord,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        let channel_key = run_key(run_id, key);
        let channel_bytes = encode("a channel value", value)?;
        (&self.runs, &self.journal, &self.channels)
            .transaction(|(runs, journal, channels)| {
                let mut document = JournalWrite::begin(runs, run_id, epoch)?;
                document.append(journal, format::chunk_of(step), &[(step_id, step)])?;
                channels.insert(channel_key.as_slice(), channel_bytes.as_slice())?;
                document.finish(runs)
            })
            .map_err(abort_error)
    }

    fn channel_value(&self, run_id: &str, key: &str) -> Result<Option<Value>> {
        let key = run_key(run_id, key);
        self.channels
            .get(&key)
            .storage()?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }

    fn channels_of(&self, run_id: &str) -> Result<Vec<(String, Value)>> {
        let prefix = run_key(run_id, "");
        self.channels
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, bytes) = entry.storage()?;
                let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                Ok((name, decode(&key, &bytes)?))
            })
            .collect()
    }

    fn save_definition(&self, workflow: &str, fingerprint: &str, sites: &[String]) -> Result<()> {
        let key = run_key(workflow, fingerprint);
        if !self.definitions.contains_key(&key).storage()? {
            self.definitions
                .insert(key, encode("a workflow definition", &sites)?)
                .storage()?;
        }
        Ok(())
    }

    fn load_definition(&self, workflow: &str, fingerprint: &str) -> Result<Option<Vec<String>>> {
        let key = run_key(workflow, fingerprint);
        self.definitions
            .get(&key)
            .storage()?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }
}

/// A sled failure as the engine reports it: [`Error::Storage`], with its kind.
pub(crate) fn sled_error(error: sled::Error) -> Error {
    let kind = match &error {
        sled::Error::Io(_) => StoreErrorKind::Io,
        sled::Error::Corruption { .. } | sled::Error::Unsupported(_) | sled::Error::CollectionNotFound(_) => {
            StoreErrorKind::Corrupt
        }
        sled::Error::ReportableBug(_) => StoreErrorKind::Corrupt,
    };
    Error::Storage(StoreError::new(kind, error))
}

/// `.storage()?` on a sled result: [`sled_error`] on failure.
pub(crate) trait SledResult<T> {
    fn storage(self) -> Result<T>;
}

impl<T> SledResult<T> for std::result::Result<T, sled::Error> {
    fn storage(self) -> Result<T> {
        self.map_err(sled_error)
    }
}

/// A transaction's error: its abort (an [`Error`]) as it is, sled's own as [`sled_error`].
fn abort_error(error: TransactionError<Error>) -> Error {
    match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => sled_error(error),
    }
}

/// A run document as stored, or the error a damaged one is reported with.
pub(super) fn read_document(run_id: &str, bytes: &[u8]) -> Result<Document> {
    Document::read(bytes).ok_or_else(|| damaged_document(run_id))
}

/// The run record's bytes of a stored document, without copying the rest.
fn run_bytes<'a>(run_id: &str, document: &'a [u8]) -> Result<&'a [u8]> {
    Document::run_of(document).ok_or_else(|| damaged_document(run_id))
}

/// A document's run record; `None` for a document that has steps but no record yet.
fn decode_run(run_id: &str, run: &[u8]) -> Result<Option<RunRecord>> {
    match run {
        [] => Ok(None),
        run => format::decode_run(run_id, run).map(Some),
    }
}

fn damaged_document(run_id: &str) -> Error {
    Error::CorruptRecord {
        run_id: run_id.to_owned(),
        record: "run document".to_owned(),
        step: None,
        detail: "its framing does not decode; it was left as it is".to_owned(),
    }
}

/// The write fence: the run must still be held at `epoch` (a document without a run record,
/// which only a store handed steps before their run has, is not fenced).
fn fence(run_id: &str, epoch: u64, document: &Document) -> Result<()> {
    fence_run(run_id, epoch, &document.run)
}

/// [`fence`] on a document's run record bytes.
fn fence_run(run_id: &str, epoch: u64, run: &[u8]) -> Result<()> {
    if run.is_empty() || format::run_epoch(run_id, run)? == epoch {
        Ok(())
    } else {
        Err(lost_lease(run_id, epoch))
    }
}

/// Journal writes in a transaction: chunk 0 goes to the run's document (read and fenced
/// first), later chunks to the journal tree.
pub(super) struct JournalWrite<'a> {
    run_id: &'a str,
    document: Document,
    /// Whether the document changed, so that `finish` writes it.
    changed: bool,
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<Error>>;

impl<'a> JournalWrite<'a> {
    pub(super) fn begin(
        runs: &sled::transaction::TransactionalTree,
        run_id: &'a str,
        epoch: u64,
    ) -> TxResult<Self> {
        let abort = ConflictableTransactionError::Abort;
        let document = match runs.get(run_id)? {
            Some(bytes) => read_document(run_id, &bytes).map_err(abort)?,
            None => Document::default(),
        };
        fence(run_id, epoch, &document).map_err(abort)?;
        Ok(JournalWrite {
            run_id,
            document,
            changed: false,
        })
    }

    pub(super) fn append(
        &mut self,
        journal: &sled::transaction::TransactionalTree,
        chunk: u32,
        entries: &[(&str, &StepRecord)],
    ) -> TxResult<()> {
        let abort = ConflictableTransactionError::Abort;
        if chunk == 0 {
            let run_id = self.run_id;
            let document = self.document();
            document.chunk = append_to_chunk(run_id, Some(&document.chunk), entries).map_err(abort)?;
            return Ok(());
        }
        let key = format::chunk_key(self.run_id, chunk);
        let current = journal.get(&key)?;
        let next = append_to_chunk(self.run_id, current.as_deref(), entries).map_err(abort)?;
        journal.insert(key, next)?;
        Ok(())
    }

    /// The run's document, to change (it is written by `finish`).
    pub(super) fn document(&mut self) -> &mut Document {
        self.changed = true;
        &mut self.document
    }

    pub(super) fn finish(self, runs: &sled::transaction::TransactionalTree) -> TxResult<()> {
        if self.changed {
            runs.insert(self.run_id.as_bytes(), self.document.to_bytes())?;
        }
        Ok(())
    }
}

/// `chunk` (absent: a new one) with `entries` appended; a chunk whose framing is damaged is
/// reported as the run's corrupt record rather than overwritten.
fn append_to_chunk(run_id: &str, chunk: Option<&[u8]>, entries: &[(&str, &StepRecord)]) -> Result<Vec<u8>> {
    format::Chunk::append(chunk.unwrap_or_default(), entries).ok_or_else(|| Error::CorruptRecord {
        run_id: run_id.to_owned(),
        record: "journal chunk".to_owned(),
        step: None,
        detail: "the chunk's framing does not decode; the step was not written".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::run::RunStatus;

    /// A claim whose compare-and-swap lost must not report a win (it did, from the record its
    /// losing attempt had prepared): of 8 threads claiming one paused run, one wins, every time.
    #[test]
    fn a_claim_that_lost_its_compare_and_swap_does_not_win() {
        let store = Arc::new(
            SledStore::open(&SledOptions {
                path: None,
                cache_capacity: 8 << 20,
                flush_every_ms: None,
            })
            .unwrap(),
        );
        for round in 0..300 {
            let run_id = format!("run-{round}");
            let mut run: RunRecord = serde_json::from_value(serde_json::json!({
                "v": 1, "id": run_id, "workflow": "w", "status": "paused", "input": {},
                "fingerprint": "f", "created_at": 1, "updated_at": 1,
            }))
            .unwrap();
            run.status = RunStatus::Paused;
            store.create_run(&run).unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(8));
            let winners: usize = (0..8)
                .map(|n| {
                    let (store, barrier, run_id) = (Arc::clone(&store), Arc::clone(&barrier), run_id.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        store
                            .claim_paused(&run_id, &format!("w{n}"), 2, 100)
                            .unwrap()
                            .is_some() as usize
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|thread| thread.join().unwrap())
                .sum();
            assert_eq!(winners, 1, "round {round}: one claim wins");
        }
    }
}
