//! Durable storage: what the engine writes, and the [`Store`] boundary it writes through.
//!
//! The engine only talks to the [`Store`] trait; [`SledStore`] (an embedded sled database in a
//! directory) is its one implementation today. Every value is JSON carrying a format version
//! (`v`), so a database stays readable by tools and by later versions.
//!
//! Trees (sled's named keyspaces):
//!
//! | tree          | key                         | value                                  |
//! |---------------|-----------------------------|----------------------------------------|
//! | `runs`        | run id                      | [`RunRecord`]                          |
//! | `journal`     | run id `\0` step id         | [`StepRecord`]: output + input hash    |
//! | `channels`    | run id `\0` channel key     | the channel's JSON value               |
//! | `definitions` | workflow name `\0` hash     | the step-site table of that version    |
//! | `requests`    | request id                  | `RequestRecord`: spec, votes, answer   |
//! | `pending`     | run id `\0` request id      | (empty): the unanswered requests       |
//! | `outbox`      | request id `/` index        | `OutboxRecord`: a notification         |
//! | `timers`      | deadline (u64 BE), kind, id | (empty): expiries and run wake-ups     |
//! | `meta`        | `secret`                    | the key that signs notification links  |
//!
//! Making a request is one transaction: the feedback step's waiting journal entry, the
//! request, its pending-index entry, its outbox entries and its expiry timer. Resolving one
//! (answer, expiry, cancel) is one transaction too, which is what makes "first valid answer
//! wins" atomic.
//!
//! One step is one write: a single `insert` into `journal` (a channel `set` also writes
//! `channels`, in one transaction). With `Durability::Flush` the engine then waits for
//! [`Store::flush`], which concurrent runs share (group commit).

pub(crate) mod sled;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::outbox::OutboxRecord;
use crate::model::request::RequestRecord;
use crate::model::run::RunRecord;
use crate::model::step::{StepRecord, Timer};

pub(crate) use sled::SledStore;

/// The version written into every stored value and into the database's marker file.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// A pending flush shared with other writers.
pub(crate) type FlushFuture = Pin<Box<dyn Future<Output = Result<()>> + Send + 'static>>;

/// The engine's view of storage.
pub(crate) trait Store: Send + Sync + 'static {
    /// The run with this id, if any.
    fn load_run(&self, run_id: &str) -> Result<Option<RunRecord>>;
    /// Writes (replaces) a run record.
    fn save_run(&self, run: &RunRecord) -> Result<()>;
    /// Inserts `run` unless its id is taken; returns the existing record when it is.
    fn create_run(&self, run: &RunRecord) -> Result<Option<RunRecord>>;
    /// Every run, in id order.
    fn list_runs(&self) -> Result<Vec<RunRecord>>;

    /// Every journaled step of a run, in key order.
    fn load_journal(&self, run_id: &str) -> Result<Vec<(String, StepRecord)>>;
    /// Journals one step: a single atomic write.
    fn append_step(&self, run_id: &str, step_id: &str, step: &StepRecord) -> Result<()>;
    /// Journals a channel `set` together with the new channel value, atomically.
    fn append_channel_set(
        &self,
        run_id: &str,
        step_id: &str,
        step: &StepRecord,
        key: &str,
        value: &Value,
    ) -> Result<()>;
    /// The current value of a run's channel key.
    fn channel_value(&self, run_id: &str, key: &str) -> Result<Option<Value>>;

    /// Remembers the step-site table of a workflow version (deduplicated by hash).
    fn save_definition(&self, workflow: &str, fingerprint: &str, sites: &[String]) -> Result<()>;
    /// The step-site table stored for a workflow version.
    fn load_definition(&self, workflow: &str, fingerprint: &str) -> Result<Option<Vec<String>>>;

    /// Makes a feedback request: its waiting journal entry, the request, its pending entry,
    /// its notifications and its expiry timer, in one transaction.
    fn create_request(
        &self,
        step: &StepRecord,
        request: &RequestRecord,
        outbox: &[OutboxRecord],
        expiry: Option<Timer>,
    ) -> Result<()>;
    /// The request with this id, if any.
    fn load_request(&self, request_id: &str) -> Result<Option<RequestRecord>>;
    /// Atomically reads a request, lets `change` decide (`Ok(None)`: leave it as it is), and
    /// writes the result; resolved requests leave the pending index and, with `wake_run`, arm
    /// their run's wake-up (`model::resolve::wake_for`) in the same transaction.
    fn update_request(
        &self,
        request_id: &str,
        change: &dyn Fn(&RequestRecord) -> Result<Option<RequestRecord>>,
        wake_run: bool,
    ) -> Result<RequestRecord>;
    /// Every unanswered request (of one run, if given).
    fn pending_requests(&self, run_id: Option<&str>) -> Result<Vec<RequestRecord>>;

    /// Notifications not yet delivered nor given up.
    fn undelivered(&self) -> Result<Vec<OutboxRecord>>;
    /// The notifications of a request.
    fn outbox_of(&self, request_id: &str) -> Result<Vec<OutboxRecord>>;
    /// Writes an outbox record back (an attempt was made).
    fn save_outbox(&self, record: &OutboxRecord) -> Result<()>;

    /// Arms a timer.
    fn add_timer(&self, timer: &Timer) -> Result<()>;
    /// Disarms a timer.
    fn remove_timer(&self, timer: &Timer) -> Result<()>;
    /// Every armed timer.
    fn timers(&self) -> Result<Vec<Timer>>;

    /// A per-database random secret (created on first use), for signing links.
    fn secret(&self) -> Result<Vec<u8>>;

    /// Bytes on disk used by the database.
    fn size_on_disk(&self) -> Result<u64>;

    /// Bytes of keys and values stored, over every tree.
    fn logical_size(&self) -> Result<u64>;

    /// Makes every write issued before this call durable. Concurrent callers share flushes.
    fn flush(&self) -> FlushFuture;
    /// Like [`flush`](Store::flush), for callers outside async code.
    fn flush_blocking(&self) -> Result<()>;
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

/// The prefix shared by every key of a run.
pub(crate) fn run_prefix(run_id: &str) -> Vec<u8> {
    run_key(run_id, "")
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
