//! The request side of [`SledStore`]: making and resolving requests, the outbox, timers,
//! the secret, and sizes.

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::format::Document;
use super::{JournalWrite, SledResult, SledStore, abort_error, format};
use crate::error::{Error, Result};
use crate::model::outbox::OutboxRecord;
use crate::model::request::{RequestRecord, RequestStatus};
use crate::store::{RequestChange, RequestQuery, Resolved, StepRecord, StorageStats, Timer, decode, encode};

impl SledStore {
    /// Writes the waiting step, the request (into its run's document while it is open), its
    /// index entry, its notifications and its expiry timer, in one transaction.
    pub(super) fn create_request(
        &self,
        epoch: u64,
        step: &StepRecord,
        request: &RequestRecord,
        outbox: &[OutboxRecord],
        expiry: Option<Timer>,
    ) -> Result<()> {
        let request_bytes = format::encode_request(request)?;
        let open = request.status == RequestStatus::Pending;
        let outbox: Vec<(String, Vec<u8>)> = outbox
            .iter()
            .map(|record| Ok((record.id.clone(), encode("a notification", record)?)))
            .collect::<Result<_>>()?;
        let expiry = expiry.map(|timer| timer.key());
        (
            &self.runs,
            &self.journal,
            &self.requests,
            &self.outbox,
            &self.timers,
        )
            .transaction(|(runs, journal, requests, outbox_tree, timers)| {
                let mut write = JournalWrite::begin(runs, &request.run_id, epoch)?;
                write.append(
                    journal,
                    format::chunk_of(step),
                    &[(request.step_id.as_str(), step)],
                )?;
                let open_requests = &mut write.document().open;
                open_requests.retain(|(id, _)| id != &request.id);
                // A request made again replaces the first, in whichever half it was.
                if open {
                    open_requests.push((request.id.clone(), request_bytes.clone()));
                    requests.remove(format::closed_request_key(&request.id))?;
                    requests.insert(format::open_request_key(&request.id), request.run_id.as_bytes())?;
                } else {
                    requests.remove(format::open_request_key(&request.id))?;
                    requests.insert(format::closed_request_key(&request.id), request_bytes.as_slice())?;
                }
                write.finish(runs)?;
                for (id, bytes) in &outbox {
                    outbox_tree.insert(id.as_bytes(), bytes.as_slice())?;
                }
                if let Some(key) = &expiry {
                    timers.insert(key.as_slice(), &[])?;
                }
                Ok(())
            })
            .map_err(abort_error)
    }

    /// An open request from its run's document, else a closed one from the index. Read in
    /// that order, a request resolved between the two reads is found closed.
    pub(super) fn load_request(&self, request_id: &str) -> Result<Option<RequestRecord>> {
        if let Some(run_id) = self
            .requests
            .get(format::open_request_key(request_id))
            .storage()?
        {
            let run_id = String::from_utf8_lossy(&run_id);
            if let Some(bytes) = self
                .document(&run_id)?
                .as_ref()
                .and_then(|document| document.open_request(request_id))
            {
                return format::decode_request(request_id, bytes).map(Some);
            }
        }
        self.requests
            .get(format::closed_request_key(request_id))
            .storage()?
            .map(|bytes| format::decode_request(request_id, &bytes))
            .transpose()
    }

    /// Changes a request in one transaction: an open one in its run's document, moved to
    /// its closed index entry (and its run's wake-up armed) when the change resolves it.
    pub(super) fn resolve_request(&self, request_id: &str, change: &RequestChange<'_>) -> Result<Resolved> {
        let open_key = format::open_request_key(request_id);
        let closed_key = format::closed_request_key(request_id);
        let result = (&self.runs, &self.requests, &self.timers).transaction(|(runs, requests, timers)| {
            let abort = |error: Error| ConflictableTransactionError::Abort(error);
            let unchanged = |record| Resolved {
                record,
                changed: false,
                wake: None,
            };
            let Some(run_id) = requests.get(&open_key)? else {
                // Closed, or unknown.
                let bytes = requests.get(&closed_key)?.ok_or_else(|| {
                    abort(Error::RequestNotFound {
                        request_id: request_id.to_owned(),
                    })
                })?;
                let current = format::decode_request(request_id, &bytes).map_err(abort)?;
                let Some(updated) = change(&current).map_err(abort)? else {
                    return Ok(unchanged(current));
                };
                requests.insert(
                    closed_key.as_slice(),
                    format::encode_request(&updated).map_err(abort)?,
                )?;
                return Ok(Resolved {
                    record: updated,
                    changed: true,
                    wake: None,
                });
            };
            let run_id = String::from_utf8_lossy(&run_id).into_owned();
            let mut document = match runs.get(run_id.as_bytes())? {
                Some(bytes) => super::read_document(&run_id, &bytes).map_err(abort)?,
                None => Default::default(),
            };
            let Some(at) = document.open.iter().position(|(id, _)| id == request_id) else {
                return Err(abort(Error::CorruptRecord {
                    run_id,
                    record: "run document".to_owned(),
                    step: None,
                    detail: format!(
                        "the request index names open request {request_id}, which it does not hold"
                    ),
                }));
            };
            let current = format::decode_request(request_id, &document.open[at].1).map_err(abort)?;
            let Some(updated) = change(&current).map_err(abort)? else {
                return Ok(unchanged(current));
            };
            let bytes = format::encode_request(&updated).map_err(abort)?;
            let wake = Timer::wake_after(&current, &updated);
            if updated.status == RequestStatus::Pending {
                document.open[at].1 = bytes;
            } else {
                document.open.remove(at);
                requests.remove(open_key.as_slice())?;
                requests.insert(closed_key.as_slice(), bytes)?;
            }
            if let Some(timer) = &wake {
                timers.insert(timer.key(), &[])?;
            }
            runs.insert(run_id.as_bytes(), document.to_bytes())?;
            Ok(Resolved {
                record: updated,
                changed: true,
                wake,
            })
        });
        result.map_err(abort_error)
    }

    /// The open requests of one run come from its document; all open ones from the pending
    /// half of the index; others from a scan of the whole index.
    pub(super) fn requests(&self, query: &RequestQuery) -> Result<Vec<RequestRecord>> {
        let mut requests = Vec::new();
        let mut keep = |decoded: Result<RequestRecord>| match decoded {
            Ok(request) if query.matches(&request) => requests.push(request),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "skipping a request record that cannot be read"),
        };
        let pending = query.status == Some(RequestStatus::Pending);
        if let (true, Some(run_id)) = (pending, &query.run_id) {
            let document = self.document_to_list(run_id)?;
            for (id, bytes) in document.map(|document| document.open).unwrap_or_default() {
                keep(format::decode_request(&id, &bytes));
            }
        } else {
            let entries = if pending {
                self.requests.scan_prefix(format::OPEN_REQUESTS)
            } else {
                self.requests.iter()
            };
            // Consecutive open requests of one run share its document.
            let mut last: Option<(String, Option<Document>)> = None;
            for entry in entries {
                let (key, value) = entry.storage()?;
                let Some((open, request_id)) = format::read_request_key(&key) else {
                    tracing::error!(key = %format::shown_key(&key), "skipping a request-index key that cannot be read");
                    continue;
                };
                if !open {
                    keep(format::decode_request(&request_id, &value));
                    continue;
                }
                let run_id = String::from_utf8_lossy(&value).into_owned();
                if last.as_ref().is_none_or(|(last_run, _)| *last_run != run_id) {
                    let document = self.document_to_list(&run_id)?;
                    last = Some((run_id, document));
                }
                let document = last.as_ref().and_then(|(_, document)| document.as_ref());
                // Not in the document: resolved since the index was read (its closed entry
                // sorts after every open one, so a full scan still meets it).
                if let Some(bytes) = document.and_then(|document| document.open_request(&request_id)) {
                    keep(format::decode_request(&request_id, bytes));
                }
            }
        }
        requests.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        // A request resolved during a full scan can be met twice, open (from its document)
        // and closed: the closed one is the later state.
        requests.dedup_by(|later, earlier| {
            let same = later.id == earlier.id;
            if same && earlier.status == RequestStatus::Pending {
                std::mem::swap(later, earlier);
            }
            same
        });
        requests.truncate(query.limit.unwrap_or(usize::MAX));
        Ok(requests)
    }

    /// A run's document for a listing of its requests: a damaged one is reported and
    /// skipped, so that it does not hide every other run's requests.
    fn document_to_list(&self, run_id: &str) -> Result<Option<Document>> {
        match self.document(run_id) {
            Err(error @ Error::CorruptRecord { .. }) => {
                tracing::error!(%error, "skipping the requests of a run document that cannot be read");
                Ok(None)
            }
            other => other,
        }
    }

    pub(super) fn due_notifications(&self, now: u64, limit: usize) -> Result<Vec<OutboxRecord>> {
        let mut records = Vec::new();
        for entry in self.outbox.iter() {
            let (key, bytes) = entry.storage()?;
            let record: OutboxRecord = match decode(&key, &bytes) {
                Ok(record) => record,
                Err(error) => {
                    tracing::error!(%error, "skipping a notification record that cannot be read");
                    continue;
                }
            };
            if record.delivered_at.is_none() && !record.gave_up && record.next_attempt_at <= now {
                records.push(record);
            }
        }
        records.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
        records.truncate(limit);
        Ok(records)
    }

    pub(super) fn outbox_of(&self, request_id: &str) -> Result<Vec<OutboxRecord>> {
        self.outbox
            .scan_prefix(format!("{request_id}/"))
            .map(|entry| {
                let (key, bytes) = entry.storage()?;
                decode(&key, &bytes)
            })
            .collect()
    }

    pub(super) fn save_outbox(&self, record: &OutboxRecord) -> Result<()> {
        self.outbox
            .insert(record.id.as_bytes(), encode("a notification", record)?)
            .storage()?;
        Ok(())
    }

    pub(super) fn add_timer(&self, timer: &Timer) -> Result<()> {
        self.timers.insert(timer.key(), &[]).storage()?;
        Ok(())
    }

    pub(super) fn remove_timer(&self, timer: &Timer) -> Result<()> {
        self.timers.remove(timer.key()).storage()?;
        Ok(())
    }

    pub(super) fn due_timers(&self, before: u64, limit: usize) -> Result<Vec<Timer>> {
        let mut timers = Vec::new();
        // Keys start with the deadline, big-endian: key order is deadline order.
        for entry in self.timers.range(..before.to_be_bytes().to_vec()) {
            if timers.len() >= limit {
                break;
            }
            let (key, _) = entry.storage()?;
            timers.extend(Timer::from_key(&key));
        }
        Ok(timers)
    }

    pub(super) fn secret(&self) -> Result<Vec<u8>> {
        let fresh: Vec<u8> = uuid::Uuid::new_v4()
            .as_bytes()
            .iter()
            .chain(uuid::Uuid::new_v4().as_bytes())
            .copied()
            .collect();
        // Whoever writes first wins; later callers read the same key.
        let _ = self
            .meta
            .compare_and_swap("secret", None as Option<&[u8]>, Some(fresh))
            .storage()?;
        self.meta.flush().storage()?;
        Ok(self
            .meta
            .get("secret")
            .storage()?
            .map(|key| key.to_vec())
            .unwrap_or_default())
    }

    pub(super) fn storage_stats(&self) -> Result<StorageStats> {
        Ok(StorageStats {
            on_disk: Some(self.db.size_on_disk().storage()?),
            logical: Some(self.logical_size()?),
        })
    }

    pub(super) fn logical_size(&self) -> Result<u64> {
        let mut bytes = 0;
        for tree in [
            &self.runs,
            &self.journal,
            &self.channels,
            &self.definitions,
            &self.requests,
            &self.outbox,
            &self.timers,
            &self.meta,
        ] {
            for entry in tree.iter() {
                let (key, value) = entry.storage()?;
                bytes += (key.len() + value.len()) as u64;
            }
        }
        Ok(bytes)
    }
}
