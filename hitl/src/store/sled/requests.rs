//! The request side of [`SledStore`]: making and resolving requests, the outbox, timers,
//! the secret, and sizes.

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::{SledResult, SledStore, abort_error, append_to_chunk, format};
use crate::error::{Error, Result};
use crate::model::outbox::OutboxRecord;
use crate::model::request::{RequestRecord, RequestStatus};
use crate::store::{RequestChange, RequestQuery, Resolved, StepRecord, StorageStats, Timer, decode, encode};

impl SledStore {
    pub(super) fn create_request(
        &self,
        epoch: u64,
        step: &StepRecord,
        request: &RequestRecord,
        outbox: &[OutboxRecord],
        expiry: Option<Timer>,
    ) -> Result<()> {
        self.fence(&request.run_id, epoch)?;
        let chunk_key = format::chunk_key(&request.run_id, format::chunk_of(step));
        let request_key = format::id_key(&request.id);
        let request_bytes = format::encode_request(request)?;
        let pending_key = format::pending_key(&request.run_id, &request.id);
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
                let current = journal.get(&chunk_key)?;
                let next = append_to_chunk(
                    &request.run_id,
                    current.as_deref(),
                    &[(request.step_id.as_str(), step)],
                )
                .map_err(ConflictableTransactionError::Abort)?;
                journal.insert(chunk_key.as_slice(), next)?;
                requests.insert(request_key.as_slice(), request_bytes.as_slice())?;
                pending.insert(pending_key.as_slice(), &[])?;
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

    pub(super) fn load_request(&self, request_id: &str) -> Result<Option<RequestRecord>> {
        self.requests
            .get(format::id_key(request_id))
            .storage()?
            .map(|bytes| format::decode_request(request_id, &bytes))
            .transpose()
    }

    pub(super) fn resolve_request(&self, request_id: &str, change: &RequestChange<'_>) -> Result<Resolved> {
        let request_key = format::id_key(request_id);
        let result =
            (&self.requests, &self.pending, &self.timers).transaction(|(requests, pending, timers)| {
                let abort = |error: Error| ConflictableTransactionError::Abort(error);
                let bytes = requests.get(&request_key)?.ok_or_else(|| {
                    abort(Error::RequestNotFound {
                        request_id: request_id.to_owned(),
                    })
                })?;
                let current = format::decode_request(request_id, &bytes).map_err(abort)?;
                let Some(updated) = change(&current).map_err(abort)? else {
                    return Ok(Resolved {
                        record: current,
                        changed: false,
                        wake: None,
                    });
                };
                requests.insert(
                    request_key.as_slice(),
                    format::encode_request(&updated).map_err(abort)?,
                )?;
                let wake = Timer::wake_after(&current, &updated);
                if let Some(timer) = &wake {
                    pending.remove(format::pending_key(&updated.run_id, &updated.id))?;
                    timers.insert(timer.key(), &[])?;
                }
                Ok(Resolved {
                    record: updated,
                    changed: true,
                    wake,
                })
            });
        result.map_err(abort_error)
    }

    /// The pending requests come from the pending index; others from a scan of every request.
    pub(super) fn requests(&self, query: &RequestQuery) -> Result<Vec<RequestRecord>> {
        let mut requests = Vec::new();
        if query.status != Some(RequestStatus::Pending) {
            for entry in self.requests.iter() {
                let (key, bytes) = entry.storage()?;
                let decoded = format::read_id(&mut format::Reader::new(&key))
                    .ok_or_else(|| Error::Decode {
                        key: format::shown_key(&key),
                        source: serde::de::Error::custom("not a request key"),
                    })
                    .and_then(|request_id| format::decode_request(&request_id, &bytes));
                match decoded {
                    Ok(request) if query.matches(&request) => requests.push(request),
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, "skipping a request record that cannot be read"),
                }
            }
        } else {
            let entries = match &query.run_id {
                Some(run_id) => self.pending.scan_prefix(format::id_key(run_id)),
                None => self.pending.iter(),
            };
            for entry in entries {
                let (key, _) = entry.storage()?;
                let Some((_, request_id)) = format::read_pending_key(&key) else {
                    tracing::error!(key = %format::shown_key(&key), "skipping a pending-index key that cannot be read");
                    continue;
                };
                match self.load_request(&request_id) {
                    Ok(Some(request)) if query.matches(&request) => requests.push(request),
                    Ok(_) => {}
                    Err(error @ Error::Decode { .. }) => {
                        tracing::error!(%error, "skipping a request record that cannot be read");
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        requests.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        requests.truncate(query.limit.unwrap_or(usize::MAX));
        Ok(requests)
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
            &self.pending,
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
