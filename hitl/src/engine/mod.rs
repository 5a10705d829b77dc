//! The [`Engine`]: opens the database, starts and drives runs, recovers interrupted ones.
//!
//! Each run is driven by one tokio task. Its body is polled inside the run's root frame (see
//! `replay`), in a task of its own so that a panic or a stop (cancel, engine failure) drops it
//! cleanly. When the body returns, the run's final record is written and flushed and anyone
//! waiting on the run is told.
//!
//! Runs carry an owner (this engine instance) and a lease. Opening the engine takes every run
//! left `Running` — with sled only one process can hold the database, so every such lease
//! has lapsed — and drives it again: its journaled steps replay, the rest executes.
//!
//! The folder holds one concept per file: `builder` opens an engine, `supervisor` drives
//! runs (start, recover, launch, pause, finish, resume, cancel), `requests` answers and
//! expires requests through the rules of `resolve`, `queries` builds the read models, and
//! `status` is the board that `Run::settled`/`wait` watch.

mod background;
mod builder;
mod compat;
mod decisions;
mod driver;
mod export;
mod fleet;
mod queries;
mod registry;
mod requests;
mod rewind;
pub(crate) mod run;
mod status;
mod supervisor;

pub use builder::EngineBuilder;
pub use decisions::{CheckReport, RunCheck};
pub use export::{EXPORT_FORMAT, EXPORT_VERSION, ExportedRun, RunExport};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::journal::RunState;
use crate::journal::services::Services;
use crate::model::run::{RunRecord, RunStatus, Stop};
use crate::notify::Notifier;
use crate::util::{InFlight, lock};
use crate::workflow::Workflow;
use registry::{Registered, Registry};
use run::{Outcome, Run};

pub use crate::store::Durability;

/// How long a run's lease lasts unless `EngineBuilder::lease` says otherwise.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// How many runs an engine on a shared store drives at once, unless told otherwise.
const DEFAULT_MAX_CONCURRENT_RUNS: usize = 1_000;

/// State shared by the engine handle and every run it drives.
pub(crate) struct Shared {
    /// What the runs' steps use: the store, the clock, wake-ups and timers.
    pub(crate) services: Arc<Services>,
    registry: Registry,
    /// This engine instance, recorded as the owner of the runs it drives.
    owner: String,
    /// Runs being driven by this engine.
    live: tokio::sync::Mutex<HashMap<String, LiveRun>>,
    /// The key that signs notification links (`HITL_SECRET`, else the database's), read at open.
    link_secret: Vec<u8>,
    /// `false` for an operator engine (`EngineBuilder::background(false)`): it drives no run.
    drives_runs: bool,
    /// Status of runs somebody waits on; entries go once settled with no receiver left.
    statuses: Mutex<HashMap<String, watch::Sender<RunStatus>>>,
    /// Delivers notifications from the outbox.
    pub(crate) notifier: Arc<Notifier>,
    /// The timer and notification tasks, stopped by `close`.
    background: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
    /// How long a hold on a run lasts without renewal.
    lease: Duration,
    /// How many runs this engine drives at once on a shared store.
    max_concurrent_runs: usize,
    /// The store's clock minus the engine's (ms): leases are measured on the store's clock.
    lease_offset: AtomicI64,
    /// The driver tasks alive, in the live table or just out of it: a run that has just
    /// finished has left the table while its task still holds the engine, and `close` waits
    /// for it too.
    drivers: Arc<InFlight>,
    /// The answers being seen through after their caller gave up on `respond`, which
    /// `close` waits out.
    answers: Arc<InFlight>,
}

struct LiveRun {
    state: Arc<RunState>,
    driver: Option<JoinHandle<()>>,
}

/// Runs workflows durably. Cheap to clone; every clone is the same engine.
///
/// # Examples
///
/// ```
/// use hitl::prelude::*;
///
/// #[task]
/// async fn double(n: u64) -> u64 { n * 2 }
///
/// #[workflow]
/// async fn doubled_twice(n: u64) -> u64 {
///     let once = double(n).await;
///     double(once).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
/// let engine = Engine::temporary().register(doubled_twice).open().await?;
/// let run = engine.start(doubled_twice, (5,)).await?;
/// assert_eq!(run.wait().await?, Outcome::Completed(20));
/// assert_eq!(engine.history(run.id()).await?.len(), 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("workflows", &self.workflows())
            .field("durability", &self.shared.services.durability)
            .finish()
    }
}

/// Which runs [`Engine::runs`] lists.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs of this workflow.
    pub workflow: Option<String>,
}

impl Engine {
    /// A builder for an engine on a database directory.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// A builder for an engine on a temporary database that disappears when the engine is
    /// dropped; for tests and examples.
    pub fn temporary() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The names of the registered workflows.
    pub fn workflows(&self) -> Vec<&'static str> {
        self.shared.registry.names()
    }

    /// The durability mode the engine runs in.
    pub fn durability(&self) -> Durability {
        self.shared.services.durability
    }

    /// The current time on the engine's clock ([`EngineBuilder::clock`]; the system clock by
    /// default): the time deadlines and stored timestamps are measured against, and the
    /// server's signed links and sessions expire on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use hitl::clock::ManualClock;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
    /// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
    /// let engine = hitl::Engine::temporary().clock(clock.clone()).open().await?;
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(engine.now(), UNIX_EPOCH + Duration::from_secs(1_060));
    /// # Ok(()) }
    /// ```
    pub fn now(&self) -> std::time::SystemTime {
        self.shared.services.clock.now()
    }

    /// Starts a run of `workflow` with a generated id.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownWorkflow`] if the workflow was not registered; storage errors.
    pub async fn start<W: Workflow>(&self, workflow: W, input: W::Input) -> Result<Run<W::Output>> {
        self.start_with_id(workflow, crate::util::fresh_id(), input).await
    }

    /// Starts a run with a caller-chosen id. Starting an id that exists with the same workflow
    /// and input returns the existing run instead of starting another (idempotent start).
    ///
    /// # Errors
    ///
    /// [`Error::RunIdConflict`] if the id is taken by a different workflow or input.
    pub async fn start_with_id<W: Workflow>(
        &self,
        _workflow: W,
        run_id: impl Into<String>,
        input: W::Input,
    ) -> Result<Run<W::Output>> {
        let input = W::encode_input(input)?;
        let run_id = self
            .start_erased(
                W::DEFINITION.name,
                Some(W::DEFINITION.version),
                run_id.into(),
                input,
            )
            .await?;
        Ok(Run::new(self.clone(), run_id))
    }

    /// Starts a run by workflow name with a JSON object keyed by argument name, as the CLI
    /// and the HTTP API do; on the newest registered version of the workflow.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownWorkflow`] listing the registered names; [`Error::InvalidInput`]
    /// naming the offending field.
    pub async fn start_json(&self, workflow: &str, input: Value) -> Result<Run> {
        self.start_json_with_id(workflow, crate::util::fresh_id(), input)
            .await
    }

    /// [`start_json`](Self::start_json) with a caller-chosen id (idempotent).
    pub async fn start_json_with_id(
        &self,
        workflow: &str,
        run_id: impl Into<String>,
        input: Value,
    ) -> Result<Run> {
        let run_id = self.start_erased(workflow, None, run_id.into(), input).await?;
        Ok(Run::new(self.clone(), run_id))
    }

    /// A typed handle to an existing run of `workflow`.
    pub async fn run<W: Workflow>(&self, _workflow: W, run_id: &str) -> Result<Run<W::Output>> {
        let record = self.load_run(run_id).await?;
        if record.workflow != W::DEFINITION.name {
            return Err(Error::WrongWorkflow {
                run_id: run_id.to_owned(),
                expected: W::DEFINITION.name.to_owned(),
                actual: record.workflow,
            });
        }
        Ok(Run::new(self.clone(), record.id))
    }

    /// A handle to run `run_id` on this engine, unchecked (`hitl::testing` rebinds handles
    /// it has already seen).
    pub(crate) fn handle<T: serde::de::DeserializeOwned>(&self, run_id: &str) -> Run<T> {
        Run::new(self.clone(), run_id.to_owned())
    }

    /// Waits until the run completes, fails or is cancelled; its output as JSON.
    pub async fn wait(&self, run_id: &str) -> Result<Outcome<Value>> {
        Run::<Value>::new(self.clone(), run_id.to_owned()).wait().await
    }

    /// Cancels a run: a running run stops at its next step boundary, a paused run ends at
    /// once; its open requests are resolved as cancelled.
    ///
    /// # Errors
    ///
    /// [`Error::RunNotFound`] for an unknown id; [`Error::RunFinished`] when the run has
    /// already completed, failed or been cancelled (nothing is changed).
    pub async fn cancel(&self, run_id: &str, reason: impl Into<String>) -> Result<()> {
        let reason = reason.into();
        let finished = |record: &RunRecord| Error::RunFinished {
            run_id: record.id.clone(),
            status: record.status,
        };
        let record = self.load_run(run_id).await?;
        if record.status.is_terminal() {
            return Err(finished(&record));
        }
        // Decided under the live-table lock, which `pause` and `resume_if_paused` also take: a
        // run that is pausing right now ends cancelled, and a paused run recorded cancelled
        // here is never resumed.
        let not_live = {
            let live = self.shared.live.lock().await;
            match live.get(run_id) {
                Some(live) => {
                    live.state.stop(Stop::Cancelled(reason.clone()));
                    None
                }
                None => {
                    let mut record = self.load_run(run_id).await?;
                    if record.status.is_terminal() {
                        return Err(finished(&record));
                    }
                    record.status = RunStatus::Cancelled;
                    record.cancel_reason = Some(reason);
                    self.shared.services.store.save_run(&record).await?;
                    Some(record)
                }
            }
        };
        match not_live {
            None => self.wait_status(run_id, RunStatus::is_terminal).await,
            Some(record) => self.shared.finish(record).await,
        }
    }

    /// Stops driving runs (they stay `Running` on disk and resume at the next open — or, on a
    /// shared store such as PostgreSQL, their leases are released and another worker takes
    /// them over at once), flushes, and releases the database directory.
    ///
    /// The directory is released when the last handle to the engine goes: this one, unless
    /// clones of it (or [`Run`] handles, which hold one) are still alive elsewhere.
    pub async fn close(self) -> Result<()> {
        self.shared.closed.store(true, Ordering::SeqCst);
        let live: Vec<(String, LiveRun)> = self.shared.live.lock().await.drain().collect();
        let background: Vec<JoinHandle<()>> = lock(&self.shared.background).drain(..).collect();
        for task in &background {
            task.abort();
        }
        let mut held = Vec::with_capacity(live.len());
        for (run_id, mut run) in live {
            if let Some(driver) = run.driver.take() {
                driver.abort();
                let _ = driver.await;
            }
            held.push((run_id, run.state.epoch));
        }
        // On a shared store, other workers take these runs over now rather than after the lease.
        if self.shared.services.store.shared() {
            self.shared.release_leases(held).await;
        }
        // Every task that held the engine has ended, so dropping this handle (when it is the
        // last) closes sled here, before `close` returns.
        for task in background {
            let _ = task.await;
        }
        self.shared.answers.all_ended().await;
        self.shared.drivers.all_ended().await;
        // Whoever still waits on a run through a handle of this engine learns it is closed
        // (`Error::Closed`) instead of waiting for news that no longer comes.
        lock(&self.shared.statuses).clear();
        let flushed = self.shared.services.store.flush().await;
        drop(self);
        flushed
    }

    /// The key that signs notification links: `HITL_SECRET` if set, else a random key
    /// created once and kept in the database (so links survive restarts).
    ///
    /// Read once, when the engine opens.
    pub fn link_secret(&self) -> Result<Vec<u8>> {
        Ok(self.shared.link_secret.clone())
    }

    /// What the store can say about its size: for sled, the bytes its files use on disk and
    /// the bytes of keys and values stored (what the data weighs before sled's overhead).
    pub async fn storage_stats(&self) -> Result<crate::store::StorageStats> {
        self.shared.services.store.storage_stats().await
    }

    /// The ids of the runs this engine drives right now (executing, or waiting in memory),
    /// in id order: what an operator asks of one worker of a fleet.
    pub async fn driving(&self) -> Vec<String> {
        let mut runs: Vec<String> = self.shared.live.lock().await.keys().cloned().collect();
        runs.sort();
        runs
    }

    /// Waits until every durable timer due at the engine clock's time has fired: its
    /// request expired, its run resumed (`hitl::testing`, after it moves the clock).
    pub(crate) async fn timers_caught_up(&self) {
        let now = to_millis(self.shared.services.clock.now());
        self.shared.services.timers.caught_up(now).await;
    }

    /// Waits until every notification due has been delivered, given up, or (under
    /// `hitl::testing`) recorded.
    pub(crate) async fn notifications_caught_up(&self) -> Result<()> {
        self.shared.notifier.caught_up(&self.shared.services).await
    }

    /// Whether the engine's store can serve now (reachable, schema current): what a load
    /// balancer's readiness check asks (the server's `GET /health`).
    pub async fn ready(&self) -> Result<()> {
        self.shared.services.store.ready().await
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<()> {
        self.shared.services.store.flush().await
    }
}
