//! Durable storage: what the engine writes, and the [`Store`] boundary it writes through.
//!
//! The engine talks only to the [`Store`] trait, through a `Box<dyn Store>`: the default
//! backend is an embedded sled database in a directory (`Engine::builder().path(..)`),
//! [`MemStore`] keeps everything in memory (tests), and any other backend plugs in with
//! [`EngineBuilder::store`](crate::EngineBuilder::store).
//!
//! # Writing a backend
//!
//! A backend stores six kinds of record — [`RunRecord`], [`StepRecord`] (a run's journal),
//! [`RequestRecord`], [`OutboxRecord`], [`Timer`] and workflow definitions — plus channel
//! values and one secret. All of them are `serde` types: a backend may store them as JSON
//! (what sled does) or map their fields to columns. It never interprets them beyond what its
//! queries filter on (a run's `status`, `workflow`, `created_at`; a request's `status`,
//! `run_id`, `workflow`, `created_at`; a notification's `delivered_at`, `gave_up`,
//! `next_attempt_at`; a timer's `deadline`).
//!
//! Every method is one atomic operation, and its doc comment is its contract. Three carry
//! the weight:
//!
//! * [`Store::create_request`] writes the feedback step's waiting entry, the request, its
//!   notifications and its expiry timer **together**: a crash leaves all or none.
//! * [`Store::resolve_request`] runs the engine's rule (`change`) on the request *as stored*,
//!   inside the backend's transaction, writes the result, removes it from the pending
//!   requests when it resolves, and arms its run's wake-up ([`Timer::wake_for`]) in the same
//!   transaction. Concurrent calls must serialize (a row lock, a serializable transaction, a
//!   mutex): that is "first valid answer wins".
//! * [`Store::flush`] resolves once every earlier write is durable; the engine waits on it in
//!   `Durability::Flush`. A backend whose writes are durable on commit returns at once.
//!
//! Return backend failures as [`Error::Storage`] with a [`StoreError`] of the right
//! [`StoreErrorKind`]; a stored value that no longer decodes as [`Error::Decode`]. The
//! contract suite, `contract::check_all` (feature `contract`), checks each promise and is
//! what hitl runs against its own backends.
//!
//! # The sled backend
//!
//! sled stores the same records in its own compact form (format 4, described in
//! `store/sled/format.rs`): a paused run is two keys — its run document (the run record, its
//! first 16 steps and its open requests) and its request's index entry — plus one journal
//! chunk per 16 later steps, whose values are packed JSON (field names from a dictionary,
//! integers as varints, UUIDs as 16 bytes).
//! [`dump_sled`] (the `hitl --db DIR dump` command) shows every record as JSON again. A
//! database of an older format is migrated in place when it is opened. An answer is one
//! compare-and-swap of the run document; the request moves to its closed index entry once
//! the run has resumed (`remove_timer` of its wake-up).
//!
//! One step is one write: a compare-and-swap of its journal chunk (a channel `set` also
//! writes `channels`, in one transaction). With `Durability::Flush` the engine then waits
//! for [`Store::flush`], which concurrent runs share (group commit).

#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub(crate) mod dump;
pub(crate) mod memory;
pub(crate) mod packed;
#[cfg(feature = "postgres")]
pub mod postgres;
pub(crate) mod sled;

use std::future::Future;
use std::pin::Pin;

use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

pub use crate::model::error::{StoreError, StoreErrorKind};
pub use crate::model::outbox::OutboxRecord;
pub use crate::model::request::{RequestRecord, RequestSpec, Resolution};
pub use crate::model::run::RunRecord;
pub use crate::model::step::{StepRecord, Timer, TimerAction};
pub use memory::MemStore;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub(crate) use sled::SledStore;
pub use sled::dump::dump_sled;

/// Opens the sled database in `dir` as a [`Store`] — only while no process holds it; a
/// database of an older format is migrated first — for tools that read a whole store, such
/// as copying it into PostgreSQL (`PgStore::import_from`, `hitl migrate-store`).
///
/// # Errors
///
/// What [`EngineBuilder::open`](crate::EngineBuilder::open) reports for a directory it
/// cannot use: not a hitl database, locked by a running application, corrupt, too new.
pub fn open_sled(dir: &std::path::Path) -> Result<Box<dyn Store>> {
    Ok(Box::new(SledStore::open(&sled::SledOptions {
        path: Some(dir.to_owned()),
        cache_capacity: 64 << 20,
        flush_every_ms: None,
    })?))
}

/// The version written into every stored record (its `v`); sled's on-disk format has its
/// own version (`store/sled/format.rs`).
pub(crate) const FORMAT_VERSION: u32 = 1;

/// What every [`Store`] method returns: a boxed future, so that `Arc<dyn Store>` works.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A pending flush shared with other writers.
pub type FlushFuture = StoreFuture<'static, ()>;

/// The rule [`Store::resolve_request`] runs inside its transaction: given the request as
/// stored, the request as it must be stored next (`Ok(None)`: leave it), or the error that
/// refuses the change (nothing is written).
pub type RequestChange<'a> = dyn Fn(&RequestRecord) -> Result<Option<RequestRecord>> + Send + Sync + 'a;

/// What [`Store::resolve_request`] did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Resolved {
    /// The request as stored now.
    pub record: RequestRecord,
    /// Whether the change wrote anything.
    pub changed: bool,
    /// The wake-up of the request's run armed in the same transaction, when the change
    /// resolved the request ([`Timer::wake_for`]).
    pub wake: Option<Timer>,
}

/// Which runs [`Store::runs`] returns: matching every given filter, in id order, after the
/// cursor, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RunQuery {
    /// Only runs in this status.
    pub status: Option<crate::model::run::RunStatus>,
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs created before this time (ms since the epoch).
    pub created_before: Option<u64>,
    /// Only runs whose id sorts after this one (the last id of the previous page).
    pub after: Option<String>,
    /// At most this many (`None`: all).
    pub limit: Option<usize>,
}

impl RunQuery {
    /// Every run.
    pub fn all() -> Self {
        RunQuery::default()
    }

    /// Whether `run` matches every filter except the cursor and limit.
    pub fn matches(&self, run: &RunRecord) -> bool {
        self.status.is_none_or(|status| run.status == status)
            && self
                .workflow
                .as_ref()
                .is_none_or(|workflow| &run.workflow == workflow)
            && self.created_before.is_none_or(|before| run.created_at < before)
    }
}

/// Which requests [`Store::requests`] returns: matching every given filter, oldest first
/// (by creation time, then id), at most `limit`.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RequestQuery {
    /// Only requests in this status.
    pub status: Option<crate::model::request::RequestStatus>,
    /// Only requests of this run.
    pub run_id: Option<String>,
    /// Only requests of runs of this workflow.
    pub workflow: Option<String>,
    /// At most this many (`None`: all).
    pub limit: Option<usize>,
}

impl RequestQuery {
    /// The unanswered requests (of one run, if given).
    pub fn pending(run_id: Option<&str>) -> Self {
        RequestQuery {
            status: Some(crate::model::request::RequestStatus::Pending),
            run_id: run_id.map(str::to_owned),
            ..RequestQuery::default()
        }
    }

    /// Whether `request` matches every filter except the limit.
    pub fn matches(&self, request: &RequestRecord) -> bool {
        self.status.is_none_or(|status| request.status == status)
            && self.run_id.as_ref().is_none_or(|run| &request.run_id == run)
            && self
                .workflow
                .as_ref()
                .is_none_or(|workflow| &request.workflow == workflow)
    }
}

/// The error a fenced writer gets: `run_id` is no longer held at `epoch`.
pub fn lost_lease(run_id: &str, epoch: u64) -> Error {
    Error::Storage(StoreError::new(
        StoreErrorKind::Conflict,
        format!("run `{run_id}` is no longer held at lease epoch {epoch}: another claim took it"),
    ))
}

/// What another process did that this engine may have to act on, from
/// [`Store::events`]. Events are hints: the engine also polls, so a lost event delays an
/// action by at most one poll interval and never loses it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreEvent {
    /// A request was resolved (answered, expired or cancelled): its waiting step, or its
    /// paused run, can go on.
    RequestResolved {
        /// The request's run.
        run_id: String,
        /// The request.
        request_id: String,
    },
    /// A timer was armed by another process.
    TimerArmed {
        /// When it is due (ms since the epoch).
        deadline: u64,
    },
    /// A run is waiting for a worker to claim it (its starter was at its concurrency limit,
    /// or released it on shutdown).
    RunReady {
        /// The run.
        run_id: String,
    },
    /// Events may have been missed (the listener reconnected): look at everything again.
    Lagged,
}

/// The receiving end of [`Store::events`].
pub type StoreEvents = tokio::sync::mpsc::UnboundedReceiver<StoreEvent>;

/// What a backend can say about its size; `None` where it cannot tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageStats {
    /// Bytes the backend uses on disk.
    pub on_disk: Option<u64>,
    /// Bytes of keys and values stored.
    pub logical: Option<u64>,
}

/// The storage boundary: one method per atomic domain operation.
///
/// The engine talks only to this trait, through an `Arc<dyn Store>`; plug a backend in with
/// [`EngineBuilder::store`](crate::EngineBuilder::store). Each method's promise is written
/// on it and checked, for every backend, by the contract suite (`hitl::store::contract`,
/// feature `contract`). Errors are [`Error`]s: a backend's own failure is
/// [`Error::Storage`] with a [`StoreError`]; a record that no longer decodes is
/// [`Error::Decode`] (or [`Error::CorruptRecord`] for a run's journal entry).
pub trait Store: Send + Sync + 'static {
    /// Inserts `run` unless its id is taken; returns the existing record when it is
    /// (creating a run is idempotent by id).
    fn create_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, Option<RunRecord>>;
    /// The run with this id, if any.
    fn load_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<RunRecord>>;
    /// Writes (replaces) a run record — only if the stored record has the same
    /// `lease_epoch`: a writer whose run was claimed since (by another owner, or again) gets
    /// [`Error::Storage`] with [`StoreErrorKind::Conflict`] and must drop the run.
    fn save_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, ()>;
    /// The runs matching `query`, in id order. A record that cannot be decoded is skipped
    /// (and logged), so that one damaged run does not hide the others.
    fn runs<'a>(&'a self, query: &'a RunQuery) -> StoreFuture<'a, Vec<RunRecord>>;

    /// Claims a paused run for `owner`: if it is `Paused` or `Blocked` (a blocked run is
    /// claimed to be checked against the code again), it becomes `Running`, owned by
    /// `owner` until `until`, one epoch later ([`RunRecord::claimed`]), and is returned;
    /// otherwise nothing changes and `None` is returned. Of concurrent claims one wins.
    fn claim_paused<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        now: u64,
        until: u64,
    ) -> StoreFuture<'a, Option<RunRecord>>;
    /// Claims up to `limit` `Running` runs whose lease has lapsed at `now` (another owner's
    /// runs that it no longer renews), as [`claim_paused`](Store::claim_paused) does. A
    /// single-process backend (sled, memory) may treat every `Running` run as lapsed when
    /// it opens: no other process can hold one.
    fn claim_lapsed<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
        until: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<RunRecord>>;
    /// Extends the lease `owner` holds at `epoch` to `until`; a
    /// [`StoreErrorKind::Conflict`] when it no longer holds it.
    fn renew_lease<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        epoch: u64,
        until: u64,
    ) -> StoreFuture<'a, ()>;
    /// Gives up the lease `owner` holds at `epoch` (a graceful shutdown): the run stays
    /// `Running` with its lease lapsed, so that another worker claims it at once. A
    /// [`StoreErrorKind::Conflict`] when `owner` no longer holds it.
    ///
    /// The default loads the run and saves it with no lease (fenced by the epoch, as every
    /// `save_run` is); a backend may do it in one statement.
    fn release_lease<'a>(&'a self, run_id: &'a str, owner: &'a str, epoch: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            match self.load_run(run_id).await? {
                Some(mut run) if run.held_by(owner, epoch) => {
                    run.lease_until = None;
                    self.save_run(&run).await
                }
                _ => Err(lost_lease(run_id, epoch)),
            }
        })
    }

    /// Every journaled step of a run, in step-id order.
    fn load_journal<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<(String, StepRecord)>>;
    /// Journals steps of one run, all or none — only while the run is held at `epoch` (its
    /// `lease_epoch`; a run with no stored record yet is not fenced): a writer that lost the
    /// run gets a [`StoreErrorKind::Conflict`] and nothing is written. The same fence
    /// applies to [`append_channel_set`](Store::append_channel_set) and
    /// [`create_request`](Store::create_request).
    fn append_steps<'a>(
        &'a self,
        run_id: &'a str,
        epoch: u64,
        steps: &'a [(String, StepRecord)],
    ) -> StoreFuture<'a, ()>;
    /// Journals a channel `set` together with the new channel value, atomically.
    fn append_channel_set<'a>(
        &'a self,
        run_id: &'a str,
        epoch: u64,
        step_id: &'a str,
        step: &'a StepRecord,
        key: &'a str,
        value: &'a Value,
    ) -> StoreFuture<'a, ()>;
    /// The current value of a run's channel key.
    fn channel_value<'a>(&'a self, run_id: &'a str, key: &'a str) -> StoreFuture<'a, Option<Value>>;
    /// Every channel key of a run with its value, in key order (to copy a run elsewhere).
    fn channels_of<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<(String, Value)>>;

    /// Remembers the step-site table of a workflow version (deduplicated by fingerprint).
    fn save_definition<'a>(
        &'a self,
        workflow: &'a str,
        fingerprint: &'a str,
        sites: &'a [String],
    ) -> StoreFuture<'a, ()>;
    /// The step-site table stored for a workflow version.
    fn load_definition<'a>(
        &'a self,
        workflow: &'a str,
        fingerprint: &'a str,
    ) -> StoreFuture<'a, Option<Vec<String>>>;

    /// Makes a feedback request in one transaction: the feedback step's waiting journal
    /// entry `step` (at `request.step_id`), the request, its place among the pending
    /// requests, its notifications and its expiry timer — all of them or none.
    fn create_request<'a>(
        &'a self,
        epoch: u64,
        step: &'a StepRecord,
        request: &'a RequestRecord,
        outbox: &'a [OutboxRecord],
        expiry: Option<Timer>,
    ) -> StoreFuture<'a, ()>;
    /// The request with this id, if any.
    fn load_request<'a>(&'a self, request_id: &'a str) -> StoreFuture<'a, Option<RequestRecord>>;
    /// In one transaction: reads the request, runs `change` on it, and writes the result.
    /// A request that leaves `Pending` leaves the pending requests, and the wake-up of its
    /// run ([`Timer::wake_for`]) is armed in the same transaction (durably: `due_timers`
    /// returns it until `remove_timer`, also after a reopen). Concurrent calls are
    /// serialized: the first valid answer wins, and a second sees the first's result.
    /// (`change` may run more than once, on a backend that retries a conflicting write: it
    /// must be a pure rule, as the engine's are.)
    /// [`Error::RequestNotFound`] when there is no such request; `change`'s error is
    /// returned as it is, with nothing written.
    fn resolve_request<'a>(
        &'a self,
        request_id: &'a str,
        change: &'a RequestChange<'a>,
    ) -> StoreFuture<'a, Resolved>;
    /// The requests matching `query`, oldest first. Undecodable records are skipped (and
    /// logged).
    fn requests<'a>(&'a self, query: &'a RequestQuery) -> StoreFuture<'a, Vec<RequestRecord>>;

    /// Notifications neither delivered nor given up whose next attempt is due at `now`
    /// (ms since the epoch) or earlier, soonest first, at most `limit`.
    fn due_notifications<'a>(&'a self, now: u64, limit: usize) -> StoreFuture<'a, Vec<OutboxRecord>>;
    /// Claims up to `limit` notifications due at `now` for one delivery attempt: in one
    /// atomic operation each is returned and its next attempt moved to `until`, so that
    /// another worker polling meanwhile does not send it too, and a sender that dies
    /// mid-delivery leaves it due again at `until` (retried with the same idempotency id).
    /// Claimers at the same time get different notifications.
    ///
    /// The default, for a store only one process uses, is
    /// [`due_notifications`](Store::due_notifications): nobody else polls.
    fn claim_notifications<'a>(
        &'a self,
        now: u64,
        until: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<OutboxRecord>> {
        let _ = until;
        self.due_notifications(now, limit)
    }
    /// The notifications of a request, in id order.
    fn outbox_of<'a>(&'a self, request_id: &'a str) -> StoreFuture<'a, Vec<OutboxRecord>>;
    /// Writes an outbox record back (an attempt was made).
    fn save_outbox<'a>(&'a self, record: &'a OutboxRecord) -> StoreFuture<'a, ()>;

    /// Arms a timer.
    fn add_timer<'a>(&'a self, timer: &'a Timer) -> StoreFuture<'a, ()>;
    /// Disarms a timer (no error when it is not armed). The engine disarms a run's wake-up
    /// once the run has resumed; a backend may finish a resolution's bookkeeping then (sled
    /// moves the resolved request out of its run's document into its closed index entry).
    fn remove_timer<'a>(&'a self, timer: &'a Timer) -> StoreFuture<'a, ()>;
    /// Armed timers due before `before` (ms since the epoch), soonest first, at most `limit`.
    fn due_timers(&self, before: u64, limit: usize) -> StoreFuture<'_, Vec<Timer>>;

    /// A random per-database secret, created on first use and the same ever after (it signs
    /// notification links).
    fn secret(&self) -> StoreFuture<'_, Vec<u8>>;

    /// Resolves once every write issued before this call is durable. Concurrent callers may
    /// share one flush.
    fn flush(&self) -> FlushFuture;

    /// Sizes, where the backend can tell.
    fn storage_stats(&self) -> StoreFuture<'_, StorageStats> {
        Box::pin(std::future::ready(Ok(StorageStats::default())))
    }

    /// Whether the store can serve now — reachable, its schema current — for a server's
    /// readiness check (`GET /health`). The default: always.
    fn ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether other processes may use this store at the same time. When `true` the engine
    /// renews the leases of the runs it drives, takes over lapsed runs, and polls for timers
    /// and resolutions that other processes stored; when `false` (sled, memory: one process
    /// owns the data) it does none of that.
    fn shared(&self) -> bool {
        false
    }

    /// The store's own clock (ms since the epoch), on which the leases of a shared store are
    /// measured, so that workers whose clocks disagree still agree on who holds a run.
    /// `None` (the default): leases use the engine's clock.
    fn clock(&self) -> StoreFuture<'_, Option<u64>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Events from other processes (resolutions, timers, runs to claim), for a shared store;
    /// called once by each engine at open. `None` (the default, and sled's): there are none.
    fn events(&self) -> StoreFuture<'_, Option<StoreEvents>> {
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// Encodes a stored value.
pub(crate) fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| Error::Encode {
        what: what.to_owned(),
        source,
    })
}

/// Decodes a stored value, naming its key on failure.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Decode {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        source,
    })
}

/// `run_id \0 rest`: the key layout of every per-run tree, so a run's entries are one prefix.
pub(crate) fn run_key(run_id: &str, rest: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(run_id.len() + 1 + rest.len());
    key.extend_from_slice(run_id.as_bytes());
    key.push(0);
    key.extend_from_slice(rest.as_bytes());
    key
}

/// When a step's journal write becomes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every step is flushed to disk before its output is used (concurrent runs share
    /// flushes). A crash repeats at most the one activity that was executing.
    #[default]
    Flush,
    /// Steps are flushed on pause and completion and every `flush_every` (default 500 ms).
    /// A crash (of the machine; and, with sled, of the process) may repeat the steps completed
    /// in that last window.
    Buffered,
}
