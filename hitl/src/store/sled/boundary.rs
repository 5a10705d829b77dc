//! [`SledStore`] as a [`Store`]: each operation of `mod.rs` (synchronous, as sled is) wrapped
//! in a ready future.

use serde_json::Value;

use super::SledStore;
use crate::error::Result;
use crate::store::{
    FlushFuture, OutboxRecord, RequestChange, RequestQuery, RequestRecord, Resolved, RunQuery, RunRecord,
    StepRecord, StorageStats, Store, StoreFuture, Timer,
};

impl Store for SledStore {
    fn create_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, Option<RunRecord>> {
        ready(SledStore::create_run(self, run))
    }
    fn load_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<RunRecord>> {
        ready(SledStore::load_run(self, run_id))
    }
    fn save_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, ()> {
        ready(SledStore::save_run(self, run))
    }
    fn claim_paused<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        now: u64,
        until: u64,
    ) -> StoreFuture<'a, Option<RunRecord>> {
        ready(SledStore::claim_paused(self, run_id, owner, now, until))
    }
    fn claim_lapsed<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
        until: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<RunRecord>> {
        ready(SledStore::claim_lapsed(self, owner, now, until, limit))
    }
    fn renew_lease<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        epoch: u64,
        until: u64,
    ) -> StoreFuture<'a, ()> {
        ready(SledStore::renew_lease(self, run_id, owner, epoch, until))
    }
    fn runs<'a>(&'a self, query: &'a RunQuery) -> StoreFuture<'a, Vec<RunRecord>> {
        ready(SledStore::runs(self, query))
    }
    fn load_journal<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<(String, StepRecord)>> {
        ready(SledStore::load_journal(self, run_id))
    }
    fn append_steps<'a>(
        &'a self,
        run_id: &'a str,
        epoch: u64,
        steps: &'a [(String, StepRecord)],
    ) -> StoreFuture<'a, ()> {
        ready(SledStore::append_steps(self, run_id, epoch, steps))
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
        ready(SledStore::append_channel_set(
            self, run_id, epoch, step_id, step, key, value,
        ))
    }
    fn channel_value<'a>(&'a self, run_id: &'a str, key: &'a str) -> StoreFuture<'a, Option<Value>> {
        ready(SledStore::channel_value(self, run_id, key))
    }
    fn channels_of<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<(String, Value)>> {
        ready(SledStore::channels_of(self, run_id))
    }
    fn save_definition<'a>(
        &'a self,
        workflow: &'a str,
        fingerprint: &'a str,
        sites: &'a [String],
    ) -> StoreFuture<'a, ()> {
        ready(SledStore::save_definition(self, workflow, fingerprint, sites))
    }
    fn load_definition<'a>(
        &'a self,
        workflow: &'a str,
        fingerprint: &'a str,
    ) -> StoreFuture<'a, Option<Vec<String>>> {
        ready(SledStore::load_definition(self, workflow, fingerprint))
    }
    fn create_request<'a>(
        &'a self,
        epoch: u64,
        step: &'a StepRecord,
        request: &'a RequestRecord,
        outbox: &'a [OutboxRecord],
        expiry: Option<Timer>,
    ) -> StoreFuture<'a, ()> {
        ready(SledStore::create_request(
            self, epoch, step, request, outbox, expiry,
        ))
    }
    fn load_request<'a>(&'a self, request_id: &'a str) -> StoreFuture<'a, Option<RequestRecord>> {
        ready(SledStore::load_request(self, request_id))
    }
    fn resolve_request<'a>(
        &'a self,
        request_id: &'a str,
        change: &'a RequestChange<'a>,
    ) -> StoreFuture<'a, Resolved> {
        ready(SledStore::resolve_request(self, request_id, change))
    }
    fn requests<'a>(&'a self, query: &'a RequestQuery) -> StoreFuture<'a, Vec<RequestRecord>> {
        ready(SledStore::requests(self, query))
    }
    fn due_notifications<'a>(&'a self, now: u64, limit: usize) -> StoreFuture<'a, Vec<OutboxRecord>> {
        ready(SledStore::due_notifications(self, now, limit))
    }
    fn outbox_of<'a>(&'a self, request_id: &'a str) -> StoreFuture<'a, Vec<OutboxRecord>> {
        ready(SledStore::outbox_of(self, request_id))
    }
    fn save_outbox<'a>(&'a self, record: &'a OutboxRecord) -> StoreFuture<'a, ()> {
        ready(SledStore::save_outbox(self, record))
    }
    fn add_timer<'a>(&'a self, timer: &'a Timer) -> StoreFuture<'a, ()> {
        ready(SledStore::add_timer(self, timer))
    }
    fn remove_timer<'a>(&'a self, timer: &'a Timer) -> StoreFuture<'a, ()> {
        ready(SledStore::remove_timer(self, timer))
    }
    fn due_timers(&self, before: u64, limit: usize) -> StoreFuture<'_, Vec<Timer>> {
        ready(SledStore::due_timers(self, before, limit))
    }
    fn secret(&self) -> StoreFuture<'_, Vec<u8>> {
        ready(SledStore::secret(self))
    }
    fn flush(&self) -> FlushFuture {
        self.group_commit.flush()
    }
    fn storage_stats(&self) -> StoreFuture<'_, StorageStats> {
        ready(SledStore::storage_stats(self))
    }
}

/// sled answers at once: its result, as a [`Store`] future.
fn ready<'a, T: Send + 'a>(result: Result<T>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(result))
}
