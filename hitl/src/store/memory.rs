//! [`MemStore`]: every record in ordered maps behind one lock, gone when dropped.
//!
//! For tests (the engine's own, and workflow authors' — `Engine::builder().store(MemStore::new())`)
//! and as the proof that nothing sled-shaped leaks through the [`Store`] trait. Each method
//! takes the one lock for its whole operation, so every operation is atomic; `flush` has
//! nothing to do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::lost_lease;
use super::{
    FlushFuture, OutboxRecord, RequestChange, RequestQuery, RequestRecord, Resolved, RunQuery, RunRecord,
    StepRecord, StorageStats, Store, StoreFuture, Timer,
};
use crate::error::{Error, Result};
use crate::model::run::RunStatus;
use crate::util::lock;

/// An in-memory [`Store`].
///
/// ```
/// # use hitl::prelude::*;
/// # #[workflow] async fn noop() -> u8 { 1 }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
/// let engine = Engine::builder()
///     .store(hitl::store::MemStore::new())
///     .register(noop)
///     .open()
///     .await?;
/// assert_eq!(engine.start(noop, ()).await?.wait().await?, Outcome::Completed(1));
/// # Ok(()) }
/// ```
///
/// Clones share their records: an engine opened on a clone after another engine on the
/// same records has closed finds everything it stored, which is how `hitl::testing`
/// restarts. Like a sled directory, the records serve one engine at a time.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    data: Arc<Mutex<Data>>,
}

#[derive(Debug, Default)]
struct Data {
    runs: BTreeMap<String, RunRecord>,
    /// Keyed by (run id, step id).
    journal: BTreeMap<(String, String), StepRecord>,
    channels: BTreeMap<(String, String), Value>,
    definitions: BTreeMap<(String, String), Vec<String>>,
    requests: BTreeMap<String, RequestRecord>,
    outbox: BTreeMap<String, OutboxRecord>,
    timers: BTreeMap<Timer, ()>,
    secret: Option<Vec<u8>>,
}

impl Data {
    /// The write fence: `run_id` must still be held at `epoch`.
    fn fence(&self, run_id: &str, epoch: u64) -> Result<()> {
        match self.runs.get(run_id) {
            Some(run) if run.lease_epoch != epoch => Err(lost_lease(run_id, epoch)),
            _ => Ok(()),
        }
    }
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        MemStore::default()
    }

    fn with<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&mut Data) -> Result<T>,
    ) -> StoreFuture<'static, T> {
        let result = operation(&mut lock(&self.data));
        Box::pin(std::future::ready(result))
    }
}

fn limited<T>(items: impl Iterator<Item = T>, limit: Option<usize>) -> Vec<T> {
    items.take(limit.unwrap_or(usize::MAX)).collect()
}

impl Store for MemStore {
    fn create_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, Option<RunRecord>> {
        self.with(|data| match data.runs.get(&run.id) {
            Some(existing) => Ok(Some(existing.clone())),
            None => {
                data.runs.insert(run.id.clone(), run.clone());
                Ok(None)
            }
        })
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<RunRecord>> {
        self.with(|data| Ok(data.runs.get(run_id).cloned()))
    }

    fn save_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, ()> {
        self.with(|data| {
            if let Some(stored) = data.runs.get(&run.id)
                && stored.lease_epoch != run.lease_epoch
            {
                return Err(lost_lease(&run.id, run.lease_epoch));
            }
            data.runs.insert(run.id.clone(), run.clone());
            Ok(())
        })
    }

    fn claim_paused<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        now: u64,
        until: u64,
    ) -> StoreFuture<'a, Option<RunRecord>> {
        self.with(|data| {
            let Some(stored) = data.runs.get_mut(run_id).filter(|run| run.status.is_resumable()) else {
                return Ok(None);
            };
            *stored = stored.claimed(owner, until, now);
            Ok(Some(stored.clone()))
        })
    }

    fn claim_lapsed<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
        until: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<RunRecord>> {
        // One process: every `Running` run another engine left behind has lapsed, and
        // this engine's own are never asked for.
        self.with(|data| {
            let mut claimed = Vec::new();
            for run in data.runs.values_mut() {
                if claimed.len() < limit
                    && run.status == RunStatus::Running
                    && run.owner.as_deref() != Some(owner)
                {
                    *run = run.claimed(owner, until, now);
                    claimed.push(run.clone());
                }
            }
            Ok(claimed)
        })
    }

    fn renew_lease<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        epoch: u64,
        until: u64,
    ) -> StoreFuture<'a, ()> {
        self.with(|data| match data.runs.get_mut(run_id) {
            Some(run) if run.held_by(owner, epoch) => {
                run.lease_until = Some(until);
                Ok(())
            }
            _ => Err(lost_lease(run_id, epoch)),
        })
    }

    fn runs<'a>(&'a self, query: &'a RunQuery) -> StoreFuture<'a, Vec<RunRecord>> {
        self.with(|data| {
            let after = query.after.clone();
            let runs = data
                .runs
                .values()
                .filter(|run| after.as_ref().is_none_or(|after| &run.id > after))
                .filter(|run| query.matches(run))
                .cloned();
            Ok(limited(runs, query.limit))
        })
    }

    fn load_journal<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<(String, StepRecord)>> {
        self.with(|data| {
            Ok(data
                .journal
                .range((run_id.to_owned(), String::new())..)
                .take_while(|((run, _), _)| run == run_id)
                .map(|((_, step_id), step)| (step_id.clone(), step.clone()))
                .collect())
        })
    }

    fn append_steps<'a>(
        &'a self,
        run_id: &'a str,
        epoch: u64,
        steps: &'a [(String, StepRecord)],
    ) -> StoreFuture<'a, ()> {
        self.with(|data| {
            data.fence(run_id, epoch)?;
            for (step_id, step) in steps {
                data.journal
                    .insert((run_id.to_owned(), step_id.clone()), step.clone());
            }
            Ok(())
        })
    }

    fn append_channel_set<'a>(
        &'a self,
        run_id: &'a str,
        epoch: u64,
        step_id: &'a str,
        step: &'a StepRecord,
        key: &'a str,
        value: &'a Value,
    ) -> StoreFuture<'a, ()> {
        self.with(|data| {
            data.fence(run_id, epoch)?;
            data.journal
                .insert((run_id.to_owned(), step_id.to_owned()), step.clone());
            data.channels
                .insert((run_id.to_owned(), key.to_owned()), value.clone());
            Ok(())
        })
    }

    fn channel_value<'a>(&'a self, run_id: &'a str, key: &'a str) -> StoreFuture<'a, Option<Value>> {
        self.with(|data| Ok(data.channels.get(&(run_id.to_owned(), key.to_owned())).cloned()))
    }

    fn channels_of<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<(String, Value)>> {
        self.with(|data| {
            Ok(data
                .channels
                .range((run_id.to_owned(), String::new())..)
                .take_while(|((run, _), _)| run == run_id)
                .map(|((_, key), value)| (key.clone(), value.clone()))
                .collect())
        })
    }

    fn save_definition<'a>(
        &'a self,
        workflow: &'a str,
        fingerprint: &'a str,
        sites: &'a [String],
    ) -> StoreFuture<'a, ()> {
        self.with(|data| {
            data.definitions
                .entry((workflow.to_owned(), fingerprint.to_owned()))
                .or_insert_with(|| sites.to_vec());
            Ok(())
        })
    }

    fn load_definition<'a>(
        &'a self,
        workflow: &'a str,
        fingerprint: &'a str,
    ) -> StoreFuture<'a, Option<Vec<String>>> {
        self.with(|data| {
            Ok(data
                .definitions
                .get(&(workflow.to_owned(), fingerprint.to_owned()))
                .cloned())
        })
    }

    fn create_request<'a>(
        &'a self,
        epoch: u64,
        step: &'a StepRecord,
        request: &'a RequestRecord,
        outbox: &'a [OutboxRecord],
        expiry: Option<Timer>,
    ) -> StoreFuture<'a, ()> {
        self.with(|data| {
            data.fence(&request.run_id, epoch)?;
            data.journal
                .insert((request.run_id.clone(), request.step_id.clone()), step.clone());
            data.requests.insert(request.id.clone(), request.clone());
            for record in outbox {
                data.outbox.insert(record.id.clone(), record.clone());
            }
            if let Some(expiry) = expiry {
                data.timers.insert(expiry, ());
            }
            Ok(())
        })
    }

    fn load_request<'a>(&'a self, request_id: &'a str) -> StoreFuture<'a, Option<RequestRecord>> {
        self.with(|data| Ok(data.requests.get(request_id).cloned()))
    }

    fn resolve_request<'a>(
        &'a self,
        request_id: &'a str,
        change: &'a RequestChange<'a>,
    ) -> StoreFuture<'a, Resolved> {
        self.with(|data| {
            let current = data
                .requests
                .get(request_id)
                .cloned()
                .ok_or_else(|| Error::RequestNotFound {
                    request_id: request_id.to_owned(),
                })?;
            let Some(updated) = change(&current)? else {
                return Ok(Resolved {
                    record: current,
                    changed: false,
                    wake: None,
                });
            };
            let wake = Timer::wake_after(&current, &updated);
            if let Some(wake) = &wake {
                data.timers.insert(wake.clone(), ());
            }
            data.requests.insert(request_id.to_owned(), updated.clone());
            Ok(Resolved {
                record: updated,
                changed: true,
                wake,
            })
        })
    }

    fn requests<'a>(&'a self, query: &'a RequestQuery) -> StoreFuture<'a, Vec<RequestRecord>> {
        self.with(|data| {
            let mut requests: Vec<RequestRecord> = data
                .requests
                .values()
                .filter(|request| query.matches(request))
                .cloned()
                .collect();
            requests.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(limited(requests.into_iter(), query.limit))
        })
    }

    fn due_notifications<'a>(&'a self, now: u64, limit: usize) -> StoreFuture<'a, Vec<OutboxRecord>> {
        self.with(|data| {
            let mut due: Vec<OutboxRecord> = data
                .outbox
                .values()
                .filter(|record| {
                    record.delivered_at.is_none() && !record.gave_up && record.next_attempt_at <= now
                })
                .cloned()
                .collect();
            due.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
            due.truncate(limit);
            Ok(due)
        })
    }

    fn outbox_of<'a>(&'a self, request_id: &'a str) -> StoreFuture<'a, Vec<OutboxRecord>> {
        self.with(|data| {
            Ok(data
                .outbox
                .values()
                .filter(|record| record.request_id == request_id)
                .cloned()
                .collect())
        })
    }

    fn save_outbox<'a>(&'a self, record: &'a OutboxRecord) -> StoreFuture<'a, ()> {
        self.with(|data| {
            data.outbox.insert(record.id.clone(), record.clone());
            Ok(())
        })
    }

    fn add_timer<'a>(&'a self, timer: &'a Timer) -> StoreFuture<'a, ()> {
        self.with(|data| {
            data.timers.insert(timer.clone(), ());
            Ok(())
        })
    }

    fn remove_timer<'a>(&'a self, timer: &'a Timer) -> StoreFuture<'a, ()> {
        self.with(|data| {
            data.timers.remove(timer);
            Ok(())
        })
    }

    fn due_timers(&self, before: u64, limit: usize) -> StoreFuture<'_, Vec<Timer>> {
        self.with(move |data| {
            Ok(data
                .timers
                .keys()
                .take_while(|timer| timer.deadline < before)
                .take(limit)
                .cloned()
                .collect())
        })
    }

    fn secret(&self) -> StoreFuture<'_, Vec<u8>> {
        self.with(|data| {
            Ok(data
                .secret
                .get_or_insert_with(|| {
                    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
                    a.as_bytes().iter().chain(b.as_bytes()).copied().collect()
                })
                .clone())
        })
    }

    fn flush(&self) -> FlushFuture {
        Box::pin(std::future::ready(Ok(())))
    }

    fn storage_stats(&self) -> StoreFuture<'_, StorageStats> {
        Box::pin(std::future::ready(Ok(StorageStats::default())))
    }
}
