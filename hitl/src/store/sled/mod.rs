//! The sled implementation of [`Store`]: one tree per kind of record, one transaction per
//! atomic domain operation. Opening (and the checks made before sled touches a directory)
//! is `open`; the safety net around a failed open, `open_guard`; shared flushes,
//! `group_commit`.
//!
//! A hitl database is a directory holding sled's files plus two of ours:
//! `hitl.json` (the marker: format name and version) and `hitl.lock` (an advisory lock held
//! while an engine has the directory open). Opening refuses, before sled writes anything,
//! a directory that is neither empty nor marked, one locked by another process, and one whose
//! marker names a newer format. A sled panic or corruption error while opening is contained
//! and reported as [`Error::Corrupt`].

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use sled::Transactional;

mod group_commit;
mod open;
mod open_guard;

use group_commit::GroupCommit;
use open::{CleanClose, OpenPath};
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{FlushFuture, RunRecord, StepRecord, Store, Timer, decode, encode, run_key, run_prefix};
use crate::error::{Error, Result};
use crate::model::outbox::OutboxRecord;
use crate::model::request::{RequestRecord, RequestStatus};
use crate::model::resolve::wake_for as resolution_wake;

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
    requests: sled::Tree,
    pending: sled::Tree,
    outbox: sled::Tree,
    timers: sled::Tree,
    meta: sled::Tree,
    group_commit: Arc<GroupCommit>,
    /// Declared after the sled handles, so it drops after them and before the lock.
    _clean_close: CleanClose,
    /// Held for as long as the store lives; dropping it releases the directory.
    _lock: Option<File>,
    /// Declared last so it drops last: the path counts as open in this process until the
    /// sled handles above are gone.
    _open: Option<OpenPath>,
}

impl Store for SledStore {
    fn load_run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        self.runs
            .get(run_id)?
            .map(|bytes| decode(run_id.as_bytes(), &bytes))
            .transpose()
    }

    fn save_run(&self, run: &RunRecord) -> Result<()> {
        self.runs.insert(run.id.as_bytes(), encode("a run", run)?)?;
        Ok(())
    }

    fn create_run(&self, run: &RunRecord) -> Result<Option<RunRecord>> {
        let bytes = encode("a run", run)?;
        match self
            .runs
            .compare_and_swap(run.id.as_bytes(), None as Option<&[u8]>, Some(bytes))?
        {
            Ok(()) => Ok(None),
            Err(existing) => {
                let current = existing.current.unwrap_or_default();
                Ok(Some(decode(run.id.as_bytes(), &current)?))
            }
        }
    }

    fn list_runs(&self) -> Result<Vec<RunRecord>> {
        let mut runs = Vec::new();
        for entry in self.runs.iter() {
            let (key, bytes) = entry?;
            // One damaged run record must not hide every other run: it is reported and left
            // as it is (its bytes are evidence), and `load_run` of that id reports it too.
            match decode(&key, &bytes) {
                Ok(run) => runs.push(run),
                Err(error) => tracing::error!(%error, "skipping a run record that cannot be read"),
            }
        }
        Ok(runs)
    }

    fn load_journal(&self, run_id: &str) -> Result<Vec<(String, StepRecord)>> {
        let prefix = run_prefix(run_id);
        self.journal
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, bytes) = entry?;
                let step_id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                match serde_json::from_slice(&bytes) {
                    Ok(step) => Ok((step_id, step)),
                    Err(error) => Err(Error::CorruptRecord {
                        run_id: run_id.to_owned(),
                        record: format!("journal entry of step `{step_id}`"),
                        step: Some(step_id),
                        detail: error.to_string(),
                    }),
                }
            })
            .collect()
    }

    fn append_step(&self, run_id: &str, step_id: &str, step: &StepRecord) -> Result<()> {
        self.journal
            .insert(run_key(run_id, step_id), encode("a step output", step)?)?;
        Ok(())
    }

    fn append_channel_set(
        &self,
        run_id: &str,
        step_id: &str,
        step: &StepRecord,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        let step_key = run_key(run_id, step_id);
        let step_bytes = encode("a step output", step)?;
        let channel_key = run_key(run_id, key);
        let channel_bytes = encode("a channel value", value)?;
        (&self.journal, &self.channels)
            .transaction(|(journal, channels)| {
                journal.insert(step_key.as_slice(), step_bytes.as_slice())?;
                channels.insert(channel_key.as_slice(), channel_bytes.as_slice())?;
                Ok(())
            })
            .map_err(transaction_error)
    }

    fn channel_value(&self, run_id: &str, key: &str) -> Result<Option<Value>> {
        let key = run_key(run_id, key);
        self.channels
            .get(&key)?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }

    fn save_definition(&self, workflow: &str, fingerprint: &str, sites: &[String]) -> Result<()> {
        let key = run_key(workflow, fingerprint);
        if !self.definitions.contains_key(&key)? {
            self.definitions
                .insert(key, encode("a workflow definition", &sites)?)?;
        }
        Ok(())
    }

    fn load_definition(&self, workflow: &str, fingerprint: &str) -> Result<Option<Vec<String>>> {
        let key = run_key(workflow, fingerprint);
        self.definitions
            .get(&key)?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }

    fn create_request(
        &self,
        step: &StepRecord,
        request: &RequestRecord,
        outbox: &[OutboxRecord],
        expiry: Option<Timer>,
    ) -> Result<()> {
        let step_key = run_key(&request.run_id, &request.step_id);
        let step_bytes = encode("a step", step)?;
        let request_bytes = encode("a request", request)?;
        let pending_key = run_key(&request.run_id, &request.id);
        let outbox: Vec<(String, Vec<u8>)> = outbox
            .iter()
            .map(|record| Ok((record.id.clone(), encode("a notification", record)?)))
            .collect::<Result<_>>()?;
        let expiry = expiry.map(|timer| timer.key());
        (
            &self.journal,
            &self.requests,
            &self.pending,
            &self.outbox,
            &self.timers,
        )
            .transaction(|(journal, requests, pending, outbox_tree, timers)| {
                journal.insert(step_key.as_slice(), step_bytes.as_slice())?;
                requests.insert(request.id.as_bytes(), request_bytes.as_slice())?;
                pending.insert(pending_key.as_slice(), &[])?;
                for (id, bytes) in &outbox {
                    outbox_tree.insert(id.as_bytes(), bytes.as_slice())?;
                }
                if let Some(key) = &expiry {
                    timers.insert(key.as_slice(), &[])?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }

    fn load_request(&self, request_id: &str) -> Result<Option<RequestRecord>> {
        self.requests
            .get(request_id)?
            .map(|bytes| decode(request_id.as_bytes(), &bytes))
            .transpose()
    }

    fn update_request(
        &self,
        request_id: &str,
        change: &dyn Fn(&RequestRecord) -> Result<Option<RequestRecord>>,
        wake_run: bool,
    ) -> Result<RequestRecord> {
        let result =
            (&self.requests, &self.pending, &self.timers).transaction(|(requests, pending, timers)| {
                let abort = |error: Error| ConflictableTransactionError::Abort(error);
                let bytes = requests.get(request_id.as_bytes())?.ok_or_else(|| {
                    abort(Error::RequestNotFound {
                        request_id: request_id.to_owned(),
                    })
                })?;
                let current: RequestRecord = decode(request_id.as_bytes(), &bytes).map_err(abort)?;
                let Some(updated) = change(&current).map_err(abort)? else {
                    return Ok(current);
                };
                requests.insert(
                    request_id.as_bytes(),
                    encode("a request", &updated).map_err(abort)?,
                )?;
                if updated.status != RequestStatus::Pending {
                    pending.remove(run_key(&updated.run_id, &updated.id))?;
                    if wake_run {
                        timers.insert(resolution_wake(&updated).key(), &[])?;
                    }
                }
                Ok(updated)
            });
        result.map_err(|error| match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => Error::Storage(error),
        })
    }

    fn pending_requests(&self, run_id: Option<&str>) -> Result<Vec<RequestRecord>> {
        let entries = match run_id {
            Some(run_id) => self.pending.scan_prefix(run_prefix(run_id)),
            None => self.pending.iter(),
        };
        let mut requests = Vec::new();
        for entry in entries {
            let (key, _) = entry?;
            let Some(split) = key.iter().position(|byte| *byte == 0) else {
                continue;
            };
            let request_id = String::from_utf8_lossy(&key[split + 1..]).into_owned();
            match self.load_request(&request_id) {
                Ok(Some(request)) => requests.push(request),
                Ok(None) => {}
                Err(error @ Error::Decode { .. }) => {
                    tracing::error!(%error, "skipping a request record that cannot be read");
                }
                Err(error) => return Err(error),
            }
        }
        requests.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(requests)
    }

    fn undelivered(&self) -> Result<Vec<OutboxRecord>> {
        let mut records = Vec::new();
        for entry in self.outbox.iter() {
            let (key, bytes) = entry?;
            let record: OutboxRecord = match decode(&key, &bytes) {
                Ok(record) => record,
                Err(error) => {
                    tracing::error!(%error, "skipping a notification record that cannot be read");
                    continue;
                }
            };
            if record.delivered_at.is_none() && !record.gave_up {
                records.push(record);
            }
        }
        Ok(records)
    }

    fn outbox_of(&self, request_id: &str) -> Result<Vec<OutboxRecord>> {
        self.outbox
            .scan_prefix(format!("{request_id}/"))
            .map(|entry| {
                let (key, bytes) = entry?;
                decode(&key, &bytes)
            })
            .collect()
    }

    fn save_outbox(&self, record: &OutboxRecord) -> Result<()> {
        self.outbox
            .insert(record.id.as_bytes(), encode("a notification", record)?)?;
        Ok(())
    }

    fn add_timer(&self, timer: &Timer) -> Result<()> {
        self.timers.insert(timer.key(), &[])?;
        Ok(())
    }

    fn remove_timer(&self, timer: &Timer) -> Result<()> {
        self.timers.remove(timer.key())?;
        Ok(())
    }

    fn timers(&self) -> Result<Vec<Timer>> {
        let mut timers = Vec::new();
        for entry in self.timers.iter() {
            let (key, _) = entry?;
            timers.extend(Timer::from_key(&key));
        }
        Ok(timers)
    }

    fn secret(&self) -> Result<Vec<u8>> {
        let fresh: Vec<u8> = uuid::Uuid::new_v4()
            .as_bytes()
            .iter()
            .chain(uuid::Uuid::new_v4().as_bytes())
            .copied()
            .collect();
        // Whoever writes first wins; later callers read the same key.
        let _ = self
            .meta
            .compare_and_swap("secret", None as Option<&[u8]>, Some(fresh))?;
        self.meta.flush()?;
        Ok(self
            .meta
            .get("secret")?
            .map(|key| key.to_vec())
            .unwrap_or_default())
    }

    fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    fn logical_size(&self) -> Result<u64> {
        let mut bytes = 0;
        for tree in [
            &self.runs,
            &self.journal,
            &self.channels,
            &self.definitions,
            &self.requests,
            &self.pending,
            &self.outbox,
            &self.timers,
            &self.meta,
        ] {
            for entry in tree.iter() {
                let (key, value) = entry?;
                bytes += (key.len() + value.len()) as u64;
            }
        }
        Ok(bytes)
    }

    fn flush(&self) -> FlushFuture {
        self.group_commit.flush()
    }

    fn flush_blocking(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

fn transaction_error(error: TransactionError<()>) -> Error {
    match error {
        TransactionError::Storage(error) => Error::Storage(error),
        TransactionError::Abort(()) => Error::Storage(sled::Error::ReportableBug(
            "a transaction without aborts aborted".to_owned(),
        )),
    }
}
