//! The request side of [`SledStore`]: making and resolving requests, the outbox, timers,
//! the secret, and sizes.
//!
//! **Settling.** An answer (any change that resolves a request) is one compare-and-swap on
//! its run's document, where the resolved record stays, its index entry still in the open
//! half: that pair is the run's durable wake-up. The engine spends the wake-up
//! (`remove_timer`) once the run resumed, which moves the record to its closed entry with
//! writes that need no flush of their own ([`SledStore::settle`]). Until then, every read
//! finds the record in the document, resolved; after a crash, the open finds the pair again
//! ([`SledStore::find_unsettled`]) and `due_timers` returns the wake-up.

use std::cell::RefCell;
use std::collections::BTreeMap;

use sled::Transactional;

use super::format::Document;
use super::{JournalWrite, SledResult, SledStore, abort_error, format};
use crate::error::{Error, Result};
use crate::model::outbox::OutboxRecord;
use crate::model::request::{RequestRecord, RequestStatus};
use crate::model::step::TimerAction;
use crate::store::{RequestChange, RequestQuery, Resolved, StepRecord, StorageStats, Timer, decode, encode};
use crate::util::lock;

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

    /// A request its run's document holds (open, or resolved and not yet settled), else a
    /// closed one from the index. Read in that order, a request settled between the two
    /// reads is found closed.
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

    /// Changes a request: an open one by one compare-and-swap on its run's document, a
    /// closed one by one on its closed entry.
    ///
    /// An open request that the change resolves stays in its run's document, read as what it
    /// now is, and its index entry stays in the open half: the answer is one key, so that
    /// answering costs one sled write and one flush (a transaction over the index and the
    /// timers costs sled a batch marker beside the values, BENCHMARKS.md). That entry is the
    /// durable wake-up of its run ([`Self::due_timers`] returns it); spending the wake-up
    /// moves the request to its closed entry ([`Self::settle`]).
    pub(super) fn resolve_request(&self, request_id: &str, change: &RequestChange<'_>) -> Result<Resolved> {
        let indexed_in = self
            .requests
            .get(format::open_request_key(request_id))
            .storage()?
            .map(|run_id| String::from_utf8_lossy(&run_id).into_owned());
        if let Some(run_id) = &indexed_in
            && let Some(resolved) = self.resolve_in_document(run_id, request_id, change)?
        {
            return Ok(resolved);
        }
        // Closed, or settled since the index was read (its closed entry is written before
        // the document lets go of it), or unknown.
        self.resolve_closed(request_id, change, indexed_in.as_deref())
    }

    /// [`Self::resolve_request`] of a request its run's document holds; `None` when the
    /// document does not hold it.
    fn resolve_in_document(
        &self,
        run_id: &str,
        request_id: &str,
        change: &RequestChange<'_>,
    ) -> Result<Option<Resolved>> {
        let outcome = RefCell::new(None);
        self.update_document(run_id, |document| {
            // Each attempt starts from nothing, as a compare-and-swap that lost is retried.
            *outcome.borrow_mut() = None;
            let Some(mut document) = document else {
                return Ok(None);
            };
            let Some(at) = document.open.iter().position(|(id, _)| id == request_id) else {
                return Ok(None);
            };
            let current = format::decode_request(request_id, &document.open[at].1)?;
            let Some(updated) = change(&current)? else {
                *outcome.borrow_mut() = Some(Resolved {
                    record: current,
                    changed: false,
                    wake: None,
                });
                return Ok(None);
            };
            document.open[at].1 = format::encode_request(&updated)?;
            *outcome.borrow_mut() = Some(Resolved {
                wake: Timer::wake_after(&current, &updated),
                record: updated,
                changed: true,
            });
            Ok(Some(document))
        })?;
        let outcome = outcome.into_inner();
        if let Some(Resolved { wake: Some(wake), .. }) = &outcome {
            lock(&self.unsettled)
                .entry(wake.clone())
                .or_default()
                .push(request_id.to_owned());
        }
        Ok(outcome)
    }

    /// [`Self::resolve_request`] of a closed request. `indexed_in` is the run the open half
    /// of the index named, if it named one.
    fn resolve_closed(
        &self,
        request_id: &str,
        change: &RequestChange<'_>,
        indexed_in: Option<&str>,
    ) -> Result<Resolved> {
        let key = format::closed_request_key(request_id);
        loop {
            let Some(bytes) = self.requests.get(&key).storage()? else {
                return Err(match indexed_in {
                    Some(run_id) => Error::CorruptRecord {
                        run_id: run_id.to_owned(),
                        record: "run document".to_owned(),
                        step: None,
                        detail: format!(
                            "the request index names open request {request_id}, which it does not hold"
                        ),
                    },
                    None => Error::RequestNotFound {
                        request_id: request_id.to_owned(),
                    },
                });
            };
            let current = format::decode_request(request_id, &bytes)?;
            let Some(updated) = change(&current)? else {
                return Ok(Resolved {
                    record: current,
                    changed: false,
                    wake: None,
                });
            };
            let written = self
                .requests
                .compare_and_swap(&key, Some(&bytes), Some(format::encode_request(&updated)?))
                .storage()?;
            if written.is_ok() {
                return Ok(Resolved {
                    record: updated,
                    changed: true,
                    wake: None,
                });
            }
        }
    }

    /// Spends the wake-up of answers still in their run's document: each such request moves
    /// to its closed entry and leaves the open half of the index.
    ///
    /// Three plain writes, not a transaction: a sled transaction takes a lock that stops
    /// every other operation of the database, and settling 10,000 answers while their runs
    /// resume made the benchmark's resume-all take twice as long. In that order, each state
    /// between the writes reads right: the closed entry is written first (a reader that
    /// finds the open-half entry but no record in the document reads it), then the document
    /// drops the record by compare-and-swap, then the open-half entry goes. None is flushed:
    /// a crash before a later flush leaves one of those states, and the next open finishes
    /// it ([`Self::find_unsettled`]).
    fn settle(&self, wake: &Timer) -> Result<()> {
        let TimerAction::Wake(run_id) = &wake.action else {
            return Ok(());
        };
        let Some(request_ids) = lock(&self.unsettled).remove(wake) else {
            return Ok(());
        };
        for request_id in &request_ids {
            self.settle_request(run_id, request_id)?;
        }
        Ok(())
    }

    fn settle_request(&self, run_id: &str, request_id: &str) -> Result<()> {
        let closed_key = format::closed_request_key(request_id);
        let copied = RefCell::new(None);
        let made_again = std::cell::Cell::new(false);
        let moved = self.update_document(run_id, |document| {
            let Some(mut document) = document else {
                return Ok(None);
            };
            let Some(at) = document.open.iter().position(|(id, _)| id == request_id) else {
                return Ok(None);
            };
            if format::decode_request(request_id, &document.open[at].1)?.status == RequestStatus::Pending {
                // Made again since the answer (its id reused): open, not ours to move.
                made_again.set(true);
                return Ok(None);
            }
            let (_, record) = document.open.remove(at);
            self.requests
                .insert(closed_key.as_slice(), record.as_slice())
                .storage()?;
            *copied.borrow_mut() = Some(record);
            Ok(Some(document))
        })?;
        if moved {
            self.requests
                .remove(format::open_request_key(request_id))
                .storage()?;
        } else if let (true, Some(copy)) = (made_again.get(), copied.into_inner()) {
            // An attempt that lost its compare-and-swap to the request made again left a copy
            // of the old answer: not the request's state.
            let _ = self
                .requests
                .compare_and_swap(closed_key, Some(copy), None as Option<&[u8]>)
                .storage()?;
        }
        Ok(())
    }

    /// Rebuilds [`Self::unsettled`] from the documents: the answers a process stored and
    /// did not settle (it stopped first, or could not drive the run). Reads one document per
    /// run with an open request, and finishes a settling that a crash cut short (an
    /// open-half entry left beside the closed entry it was moved to).
    pub(super) fn find_unsettled(&self) -> Result<()> {
        let mut indexed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in self.requests.scan_prefix(format::OPEN_REQUESTS) {
            let (key, run_id) = entry.storage()?;
            if let Some((true, request_id)) = format::read_request_key(&key) {
                let run_id = String::from_utf8_lossy(&run_id).into_owned();
                indexed.entry(run_id).or_default().push(request_id);
            }
        }
        let mut unsettled: BTreeMap<Timer, Vec<String>> = BTreeMap::new();
        for (run_id, request_ids) in indexed {
            let Some(document) = self.document_to_list(&run_id)? else {
                continue;
            };
            for request_id in request_ids {
                let Some(bytes) = document.open_request(&request_id) else {
                    if self
                        .requests
                        .contains_key(format::closed_request_key(&request_id))
                        .storage()?
                    {
                        self.requests
                            .remove(format::open_request_key(&request_id))
                            .storage()?;
                    }
                    continue;
                };
                match format::decode_request(&request_id, bytes) {
                    Ok(request) if request.status != RequestStatus::Pending => {
                        unsettled
                            .entry(Timer::wake_for(&request))
                            .or_default()
                            .push(request_id);
                    }
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, "skipping a request record that cannot be read"),
                }
            }
        }
        *lock(&self.unsettled) = unsettled;
        Ok(())
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
                // Not in the document: settled since the index was read (its closed entry
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
        self.settle(timer)
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
        let unsettled = lock(&self.unsettled);
        let due = unsettled.keys().take_while(|timer| timer.deadline < before);
        timers.extend(due.take(limit).cloned());
        timers.sort();
        timers.dedup();
        timers.truncate(limit);
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::store::contract::records::{answered, request, step};
    use crate::store::sled::SledOptions;

    fn open(path: &Path) -> SledStore {
        SledStore::open(&SledOptions {
            path: Some(path.to_owned()),
            cache_capacity: 8 << 20,
            flush_every_ms: None,
        })
        .unwrap()
    }

    /// The request as its run's document holds it.
    fn in_document(store: &SledStore, request_id: &str) -> Option<RequestRecord> {
        let document = store.document("r1").unwrap().expect("the run's document");
        document
            .open_request(request_id)
            .map(|bytes| format::decode_request(request_id, bytes).unwrap())
    }

    /// Makes request `q1` of run `r1` and answers it.
    fn ask_and_answer(store: &SledStore) -> Resolved {
        let pending = request("q1", "r1", 5);
        store
            .create_request(0, &step(0, json!({ "request": "q1" })), &pending, &[], None)
            .unwrap();
        let answer = |current: &RequestRecord| Ok(Some(answered(current, "alice", 100)));
        store.resolve_request("q1", &answer).unwrap()
    }

    /// An answer writes its run's document alone; the request moves to its closed index
    /// entry when the run's wake-up is spent, and a store reopened before that finds the
    /// wake-up again.
    #[test]
    fn an_answer_is_settled_when_its_wake_up_is_spent_and_a_reopen_before_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let store = open(&db);
        let resolved = ask_and_answer(&store);
        let wake = resolved.wake.clone().expect("the answer arms the run's wake-up");
        let answered = resolved.record;
        assert_eq!(
            in_document(&store, "q1").as_ref(),
            Some(&answered),
            "the document holds the answer"
        );
        assert!(
            store
                .requests
                .get(format::open_request_key("q1"))
                .unwrap()
                .is_some()
                && store
                    .requests
                    .get(format::closed_request_key("q1"))
                    .unwrap()
                    .is_none()
                && store.timers.is_empty(),
            "the answer wrote nothing but the document"
        );
        store.db.flush().unwrap();
        drop(store);

        let store = open(&db);
        assert_eq!(
            store.due_timers(u64::MAX, 10).unwrap(),
            std::slice::from_ref(&wake),
            "the reopened store finds the unspent wake-up"
        );
        assert_eq!(store.load_request("q1").unwrap().as_ref(), Some(&answered));
        store.remove_timer(&wake).unwrap();
        assert_eq!(in_document(&store, "q1"), None, "settled out of the document");
        assert_eq!(
            store
                .requests
                .get(format::closed_request_key("q1"))
                .unwrap()
                .map(|bytes| format::decode_request("q1", &bytes).unwrap()),
            Some(answered.clone()),
            "into its closed entry"
        );
        assert_eq!(
            store.requests.get(format::open_request_key("q1")).unwrap(),
            None,
            "and out of the pending index"
        );
        store.db.flush().unwrap();
        drop(store);

        let store = open(&db);
        assert!(
            store.due_timers(u64::MAX, 10).unwrap().is_empty(),
            "a spent wake-up stays spent"
        );
        assert_eq!(store.load_request("q1").unwrap(), Some(answered));
    }

    /// A crash between a settling's document write and its index removal leaves the
    /// open-half entry beside the closed one: reads skip it, and the next open removes it.
    #[test]
    fn a_settling_cut_short_by_a_crash_is_finished_by_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let store = open(&db);
        let answered = ask_and_answer(&store).record;
        // The settling's first two writes, not its third.
        let bytes = format::encode_request(&answered).unwrap();
        store
            .requests
            .insert(format::closed_request_key("q1"), bytes)
            .unwrap();
        store
            .update_document("r1", |document| {
                let mut document = document.unwrap();
                document.open.clear();
                Ok(Some(document))
            })
            .unwrap();
        assert_eq!(store.load_request("q1").unwrap().as_ref(), Some(&answered));
        assert!(store.requests(&RequestQuery::pending(None)).unwrap().is_empty());
        assert_eq!(
            store.requests(&RequestQuery::default()).unwrap(),
            std::slice::from_ref(&answered)
        );
        store.db.flush().unwrap();
        drop(store);

        let store = open(&db);
        assert_eq!(
            store.requests.get(format::open_request_key("q1")).unwrap(),
            None,
            "the open finished the settling"
        );
        assert!(store.due_timers(u64::MAX, 10).unwrap().is_empty());
        assert_eq!(store.load_request("q1").unwrap(), Some(answered));
    }

    /// A request made again (its step ran again after a rewind) while its answer was not
    /// settled is open again: spending the old wake-up leaves it pending.
    #[test]
    fn a_request_made_again_before_its_answer_settled_stays_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let pending = request("q1", "r1", 5);
        let ask = step(0, json!({ "request": "q1" }));
        store.create_request(0, &ask, &pending, &[], None).unwrap();
        let answer = |current: &RequestRecord| Ok(Some(answered(current, "alice", 100)));
        let wake = store.resolve_request("q1", &answer).unwrap().wake.unwrap();
        store.create_request(0, &ask, &pending, &[], None).unwrap();
        store.remove_timer(&wake).unwrap();
        assert_eq!(in_document(&store, "q1"), Some(pending.clone()));
        assert_eq!(store.load_request("q1").unwrap(), Some(pending.clone()));
        assert_eq!(
            store.requests(&RequestQuery::pending(None)).unwrap(),
            [pending],
            "still in the pending index"
        );
    }
}
