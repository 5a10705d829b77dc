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

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::clock::{Clock, SystemClock, from_millis, to_millis};
use crate::driver::{Ending, RunBody};
use crate::error::{Error, Result};
use crate::events::RequestEvents;
use crate::feedback::{PendingFilter, Request, RequestRecord, RequestStatus, Responder, Response};
use crate::notify::Notifier;
use crate::replay::{RunState, Stop, lock};
use crate::resolve::{self, wake_for as resolution_wake};
use crate::run::{
    DefinitionChange, Failure, FailureKind, HistoryEntry, Outcome, Run, RunInfo, RunStatus, StepStatus,
};
use crate::store::{FORMAT_VERSION, RunRecord, SledStore, Store, sled_store::SledOptions};
use crate::store::{StepKind, Timer, TimerAction};
use crate::timers::Timers;
use crate::workflow::{Workflow, WorkflowDefinition, WorkflowFuture};

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

/// How long a run's lease lasts; recovery at open takes every lapsed lease.
const LEASE: Duration = Duration::from_secs(30);

/// A registered workflow, type-erased.
#[derive(Clone, Copy)]
struct Registered {
    definition: &'static WorkflowDefinition,
    start: fn(Value) -> Result<WorkflowFuture>,
}

/// State shared by the engine handle and every run it drives.
pub(crate) struct Shared {
    pub(crate) store: Box<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) durability: Durability,
    registry: BTreeMap<&'static str, Registered>,
    /// This engine instance, recorded as the owner of the runs it drives.
    owner: String,
    /// Runs being driven by this engine.
    live: Mutex<HashMap<String, LiveRun>>,
    /// Status of runs somebody waits on; entries go once settled with no receiver left.
    statuses: Mutex<HashMap<String, watch::Sender<RunStatus>>>,
    /// Wake-ups for feedback steps waiting in memory.
    pub(crate) request_events: RequestEvents,
    /// Expiries and run wake-ups.
    pub(crate) timers: Timers,
    /// Delivers notifications from the outbox.
    pub(crate) notifier: Notifier,
    /// The timer and notification tasks, stopped by `close`.
    background: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
}

struct LiveRun {
    state: Arc<RunState>,
    driver: Option<JoinHandle<()>>,
}

/// Configures and opens an [`Engine`].
///
/// # Examples
///
/// ```
/// # use hitl::prelude::*;
/// # #[workflow] async fn release(service: String) -> String { service }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let engine = Engine::builder()
///     .path(dir.path().join("hitl.db"))
///     .durability(Durability::Flush)
///     .register(release)
///     .open()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "call `.open().await` to open the engine"]
pub struct EngineBuilder {
    path: Option<PathBuf>,
    registry: Vec<Registered>,
    durability: Durability,
    clock: Arc<dyn Clock>,
    cache_capacity: u64,
    flush_every: Option<Duration>,
    base_url: Option<String>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("path", &self.path)
            .field(
                "workflows",
                &self
                    .registry
                    .iter()
                    .map(|r| r.definition.name)
                    .collect::<Vec<_>>(),
            )
            .field("durability", &self.durability)
            .field("clock", &self.clock)
            .field("cache_capacity", &self.cache_capacity)
            .field("flush_every", &self.flush_every)
            .finish()
    }
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            path: None,
            registry: Vec::new(),
            durability: Durability::default(),
            clock: Arc::new(SystemClock),
            cache_capacity: 64 * 1024 * 1024,
            flush_every: Some(Duration::from_millis(500)),
            base_url: None,
        }
    }
}

impl EngineBuilder {
    /// The database directory (created if missing). Without it, the database is temporary.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Registers a workflow so that its runs can be started and resumed.
    pub fn register<W: Workflow>(mut self, _workflow: W) -> Self {
        self.registry.push(Registered {
            definition: W::DEFINITION,
            start: W::start,
        });
        self
    }

    /// When steps become durable; [`Durability::Flush`] by default.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The clock for timers, `ctx.now()` and stored timestamps; the system clock by default.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// sled's page cache size in bytes (64 MiB by default).
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// How often sled flushes in the background (500 ms by default; `None` never).
    pub fn flush_every(mut self, every: Option<Duration>) -> Self {
        self.flush_every = every;
        self
    }

    /// The public URL of the server that shows requests (`https://hitl.example.com`);
    /// notifications link to `{base_url}/requests/{id}`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Opens the database, recovers runs left `Running` by a process that died, and drives
    /// them again.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateWorkflow`] when two workflows share a name;
    /// [`Error::NotAHitlDatabase`], [`Error::DatabaseLocked`], [`Error::Corrupt`] or
    /// [`Error::UnsupportedFormat`] when the directory cannot be used.
    pub async fn open(self) -> Result<Engine> {
        let mut registry = BTreeMap::new();
        for registered in &self.registry {
            if registry.insert(registered.definition.name, *registered).is_some() {
                return Err(Error::DuplicateWorkflow {
                    name: registered.definition.name.to_owned(),
                });
            }
        }
        let options = SledOptions {
            path: self.path.clone(),
            cache_capacity: self.cache_capacity,
            flush_every_ms: self.flush_every.map(|every| every.as_millis().max(1) as u64),
        };
        let store = tokio::task::spawn_blocking(move || SledStore::open(&options))
            .await
            .map_err(|error| Error::Corrupt {
                path: self.path.clone().unwrap_or_default(),
                detail: error.to_string(),
            })??;
        let engine = Engine {
            shared: Arc::new(Shared {
                store: Box::new(store),
                clock: self.clock,
                durability: self.durability,
                registry,
                owner: format!("{}:{}", std::process::id(), uuid::Uuid::new_v4()),
                live: Mutex::new(HashMap::new()),
                statuses: Mutex::new(HashMap::new()),
                request_events: RequestEvents::default(),
                timers: Timers::default(),
                notifier: Notifier::new(self.base_url),
                background: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
            }),
        };
        // Recover first: a wake-up due at open must find the runs it would resume already live.
        engine.recover()?;
        let now = to_millis(engine.shared.clock.now());
        for timer in engine.shared.store.timers()? {
            // A paused run with a due wake-up (an answer stored while no engine ran it) is
            // resumed before `open` returns, so that `settled()` never sees it paused on an
            // answered request. The timer stays armed and is spent when it fires.
            if let TimerAction::Wake(run_id) = &timer.action
                && timer.deadline <= now
                && engine.shared.resume_if_paused(run_id)?
            {
                engine.shared.store.remove_timer(&timer)?;
                continue;
            }
            engine.shared.timers.arm(timer);
        }
        let weak = Arc::downgrade(&engine.shared);
        let timers = tokio::spawn(Timers::run(weak.clone()));
        let notifier = tokio::spawn(Notifier::run(weak));
        lock(&engine.shared.background).extend([timers, notifier]);
        Ok(engine)
    }
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
/// assert_eq!(engine.history(run.id())?.len(), 2);
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
            .field("durability", &self.shared.durability)
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
        self.shared.registry.keys().copied().collect()
    }

    /// The durability mode the engine runs in.
    pub fn durability(&self) -> Durability {
        self.shared.durability
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
        self.shared.clock.now()
    }

    /// Starts a run of `workflow` with a generated id.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownWorkflow`] if the workflow was not registered; storage errors.
    pub async fn start<W: Workflow>(&self, workflow: W, input: W::Input) -> Result<Run<W::Output>> {
        self.start_with_id(workflow, uuid::Uuid::new_v4().to_string(), input)
            .await
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
            .start_erased(W::DEFINITION.name, run_id.into(), input)
            .await?;
        Ok(Run::new(self.clone(), run_id))
    }

    /// Starts a run by workflow name with a JSON object keyed by argument name, as the CLI
    /// and the HTTP API do.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownWorkflow`] listing the registered names; [`Error::InvalidInput`]
    /// naming the offending field.
    pub async fn start_json(&self, workflow: &str, input: Value) -> Result<Run> {
        self.start_json_with_id(workflow, uuid::Uuid::new_v4().to_string(), input)
            .await
    }

    /// [`start_json`](Self::start_json) with a caller-chosen id (idempotent).
    pub async fn start_json_with_id(
        &self,
        workflow: &str,
        run_id: impl Into<String>,
        input: Value,
    ) -> Result<Run> {
        let run_id = self.start_erased(workflow, run_id.into(), input).await?;
        Ok(Run::new(self.clone(), run_id))
    }

    /// A typed handle to an existing run of `workflow`.
    pub fn run<W: Workflow>(&self, _workflow: W, run_id: &str) -> Result<Run<W::Output>> {
        let record = self.load_run(run_id)?;
        if record.workflow != W::DEFINITION.name {
            return Err(Error::WrongWorkflow {
                run_id: run_id.to_owned(),
                expected: W::DEFINITION.name.to_owned(),
                actual: record.workflow,
            });
        }
        Ok(Run::new(self.clone(), record.id))
    }

    /// Waits until the run completes, fails or is cancelled; its output as JSON.
    pub async fn wait(&self, run_id: &str) -> Result<Outcome<Value>> {
        Run::<Value>::new(self.clone(), run_id.to_owned()).wait().await
    }

    /// The run's summary.
    pub fn run_info(&self, run_id: &str) -> Result<RunInfo> {
        let record = self.load_run(run_id)?;
        self.info_of(record)
    }

    /// Every run matching `filter`.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunInfo>> {
        self.shared
            .store
            .list_runs()?
            .into_iter()
            .filter(|run| filter.status.is_none_or(|status| run.status == status))
            .filter(|run| filter.workflow.as_ref().is_none_or(|name| &run.workflow == name))
            .map(|run| self.info_of(run))
            .collect()
    }

    /// The run's journaled steps, in the order they completed. A feedback step shows its
    /// request (status, answer, responder, votes) and is followed by one entry per
    /// notification with every delivery attempt.
    pub fn history(&self, run_id: &str) -> Result<Vec<HistoryEntry>> {
        self.load_run(run_id)?;
        let mut steps = self.shared.store.load_journal(run_id)?;
        steps.sort_by_key(|(_, step)| step.seq);
        let mut history = Vec::with_capacity(steps.len());
        for (step_id, step) in steps {
            let last = step_id.rsplit('/').next().unwrap_or(&step_id);
            let name = last.rsplit_once('#').map_or(last, |(name, _)| name).to_owned();
            let mut entry = HistoryEntry {
                name,
                step_id,
                kind: step.kind,
                status: if step.finished_at.is_some() {
                    StepStatus::Completed
                } else {
                    StepStatus::Waiting
                },
                line: step.line,
                started_at: from_millis(step.started_at),
                finished_at: step.finished_at.map(from_millis),
                output: step.output,
            };
            let request_id = entry.output["request"].as_str().map(str::to_owned);
            match (step.kind, request_id) {
                (StepKind::Feedback, Some(request_id)) => {
                    let request = self.shared.load_request(&request_id)?;
                    entry.output = serde_json::json!({
                        "request": request_id,
                        "status": request.status,
                        "resolution": request.resolution,
                        "votes": request.votes,
                        "expires_at": request.expires_at.map(from_millis).map(humantime::format_rfc3339_millis).map(|t| t.to_string()),
                    });
                    let notifications = self.shared.store.outbox_of(&request_id)?;
                    let step_id = entry.step_id.clone();
                    history.push(entry);
                    history.extend(
                        notifications
                            .into_iter()
                            .enumerate()
                            .map(|(index, notification)| HistoryEntry {
                                step_id: format!("{step_id}/notify#{index}"),
                                name: "notify".to_owned(),
                                kind: StepKind::Notification,
                                status: match (notification.delivered_at, notification.gave_up) {
                                    (Some(_), _) => StepStatus::Completed,
                                    (None, true) => StepStatus::Failed,
                                    (None, false) => StepStatus::Waiting,
                                },
                                line: step.line,
                                started_at: from_millis(request.created_at),
                                finished_at: notification.delivered_at.map(from_millis),
                                output: serde_json::json!({
                                    "idempotency_id": notification.id,
                                    "url": notification.notify.url(),
                                    "attempts": notification.attempts,
                                }),
                            }),
                    );
                }
                _ => history.push(entry),
            }
        }
        Ok(history)
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
        let record = self.load_run(run_id)?;
        if record.status.is_terminal() {
            return Err(finished(&record));
        }
        // Decided under the live-table lock, which `pause` and `resume_if_paused` also take: a
        // run that is pausing right now ends cancelled, and a paused run recorded cancelled
        // here is never resumed.
        let not_live = {
            let live = lock(&self.shared.live);
            match live.get(run_id) {
                Some(live) => {
                    live.state.stop(Stop::Cancelled(reason.clone()));
                    None
                }
                None => {
                    let mut record = self.load_run(run_id)?;
                    if record.status.is_terminal() {
                        return Err(finished(&record));
                    }
                    record.status = RunStatus::Cancelled;
                    record.cancel_reason = Some(reason);
                    self.shared.store.save_run(&record)?;
                    Some(record)
                }
            }
        };
        match not_live {
            None => self.wait_status(run_id, RunStatus::is_terminal).await,
            Some(record) => self.shared.finish(record).await,
        }
    }

    /// Stops driving runs (they stay `Running` on disk and resume at the next open), flushes,
    /// and releases the database directory.
    ///
    /// The directory is released when the last handle to the engine goes: this one, unless
    /// clones of it (or [`Run`] handles, which hold one) are still alive elsewhere.
    pub async fn close(self) -> Result<()> {
        self.shared.closed.store(true, Ordering::SeqCst);
        let live: Vec<LiveRun> = lock(&self.shared.live).drain().map(|(_, live)| live).collect();
        let background: Vec<JoinHandle<()>> = lock(&self.shared.background).drain(..).collect();
        for task in &background {
            task.abort();
        }
        for mut run in live {
            if let Some(driver) = run.driver.take() {
                driver.abort();
                let _ = driver.await;
            }
        }
        // Every task that held the engine has ended, so dropping this handle (when it is the
        // last) closes sled here, before `close` returns.
        for task in background {
            let _ = task.await;
        }
        let flushed = self.shared.store.flush().await;
        drop(self);
        flushed
    }

    pub(crate) fn load_run(&self, run_id: &str) -> Result<RunRecord> {
        self.shared
            .store
            .load_run(run_id)?
            .ok_or_else(|| Error::RunNotFound {
                run_id: run_id.to_owned(),
            })
    }

    /// Waits until the run's status satisfies `done`.
    pub(crate) async fn wait_status(&self, run_id: &str, done: fn(RunStatus) -> bool) -> Result<()> {
        let mut receiver = {
            // Reading the record under the lock pairs with `publish`, which takes the same
            // lock after writing: either we see the new status or we get its notification.
            let mut statuses = lock(&self.shared.statuses);
            let record = self.load_run(run_id)?;
            if done(record.status) {
                return Ok(());
            }
            if record.status == RunStatus::Running
                && !lock(&self.shared.live).contains_key(run_id)
                && !self.shared.registry.contains_key(record.workflow.as_str())
            {
                return Err(Error::UnknownWorkflow {
                    name: record.workflow,
                    registered: self.workflows().iter().map(|name| (*name).to_owned()).collect(),
                });
            }
            statuses
                .entry(run_id.to_owned())
                .or_insert_with(|| watch::channel(record.status).0)
                .subscribe()
        };
        let waited = receiver
            .wait_for(|status| done(*status))
            .await
            .map(|_| ())
            .map_err(|_| Error::Closed);
        drop(receiver);
        // The last waiter of a settled run removes its entry: paused runs cost no memory.
        let mut statuses = lock(&self.shared.statuses);
        if statuses
            .get(run_id)
            .is_some_and(|sender| sender.receiver_count() == 0 && sender.borrow().is_settled())
        {
            statuses.remove(run_id);
        }
        waited
    }

    fn info_of(&self, record: RunRecord) -> Result<RunInfo> {
        let definition_changed = match self.shared.registry.get(record.workflow.as_str()) {
            Some(registered) if registered.definition.fingerprint != record.fingerprint => {
                Some(self.definition_change(&record, registered.definition)?)
            }
            _ => None,
        };
        Ok(RunInfo {
            id: record.id,
            workflow: record.workflow,
            status: record.status,
            input: record.input,
            output: record.output,
            failure: record.failure,
            cancel_reason: record.cancel_reason,
            created_at: from_millis(record.created_at),
            updated_at: from_millis(record.updated_at),
            definition_changed,
        })
    }

    fn definition_change(
        &self,
        record: &RunRecord,
        current: &WorkflowDefinition,
    ) -> Result<DefinitionChange> {
        let stored = self
            .shared
            .store
            .load_definition(&record.workflow, &record.fingerprint)?
            .unwrap_or_default();
        let now = current.site_names();
        Ok(DefinitionChange {
            stored_fingerprint: record.fingerprint.clone(),
            current_fingerprint: current.fingerprint.to_owned(),
            added_sites: now
                .iter()
                .filter(|site| !stored.contains(site))
                .cloned()
                .collect(),
            removed_sites: stored
                .iter()
                .filter(|site| !now.contains(site))
                .cloned()
                .collect(),
        })
    }

    fn registered(&self, workflow: &str) -> Result<Registered> {
        self.shared
            .registry
            .get(workflow)
            .copied()
            .ok_or_else(|| Error::UnknownWorkflow {
                name: workflow.to_owned(),
                registered: self.workflows().iter().map(|name| (*name).to_owned()).collect(),
            })
    }

    async fn start_erased(&self, workflow: &str, run_id: String, input: Value) -> Result<String> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        let registered = self.registered(workflow)?;
        let body = (registered.start)(input.clone())?;
        let definition = registered.definition;
        let now = to_millis(self.shared.clock.now());
        let record = RunRecord {
            v: FORMAT_VERSION,
            id: run_id,
            workflow: definition.name.to_owned(),
            status: RunStatus::Running,
            input,
            output: None,
            failure: None,
            cancel_reason: None,
            fingerprint: definition.fingerprint.to_owned(),
            owner: Some(self.shared.owner.clone()),
            lease_until: Some(now + LEASE.as_millis() as u64),
            created_at: now,
            updated_at: now,
        };
        self.shared.store.save_definition(
            definition.name,
            definition.fingerprint,
            &definition.site_names(),
        )?;
        if let Some(existing) = self.shared.store.create_run(&record)? {
            if existing.workflow != record.workflow || existing.input != record.input {
                return Err(Error::RunIdConflict {
                    run_id: record.id,
                    workflow: existing.workflow,
                });
            }
            return Ok(existing.id);
        }
        self.shared.store.flush().await?;
        let run_id = record.id.clone();
        let mut live = lock(&self.shared.live);
        self.shared.launch(&mut live, record, registered, Some(body))?;
        Ok(run_id)
    }

    /// Drives every run left `Running` by a previous process.
    fn recover(&self) -> Result<()> {
        let now = to_millis(self.shared.clock.now());
        for mut record in self.shared.store.list_runs()? {
            if record.status != RunStatus::Running {
                continue;
            }
            let Some(registered) = self.shared.registry.get(record.workflow.as_str()).copied() else {
                tracing::warn!(run_id = %record.id, workflow = %record.workflow, "cannot resume run: its workflow is not registered");
                continue;
            };
            if registered.definition.fingerprint != record.fingerprint {
                let change = self.definition_change(&record, registered.definition)?;
                tracing::warn!(
                    run_id = %record.id,
                    added = ?change.added_sites,
                    removed = ?change.removed_sites,
                    "the workflow's code changed since this run started; replaying it, a divergent step will fail the run"
                );
            }
            record.owner = Some(self.shared.owner.clone());
            record.lease_until = Some(now + LEASE.as_millis() as u64);
            record.updated_at = now;
            self.shared.store.save_run(&record)?;
            let run_id = record.id.clone();
            let mut live = lock(&self.shared.live);
            // One run that cannot be driven must not keep the engine from opening.
            if let Err(error) = self.shared.launch(&mut live, record, registered, None) {
                tracing::error!(%run_id, %error, "cannot resume run; it is retried at the next open");
            }
        }
        Ok(())
    }

    /// Answers a feedback request.
    ///
    /// The response is validated against the request — kind, options, text constraints, the
    /// stored JSON Schema, allowed responders — before anything is stored; a bad answer is an
    /// error and the request stays open. The first valid answer wins atomically. With a
    /// quorum, each allowed responder votes once; the request resolves at the n-th approval
    /// or the first rejection. A resolved request resumes its run: directly if it waits in
    /// memory, else by re-driving the paused run.
    ///
    /// # Errors
    ///
    /// [`Error::RequestNotFound`], [`Error::AlreadyAnswered`], [`Error::AlreadyVoted`], [`Error::RequestExpired`],
    /// [`Error::RequestCancelled`], [`Error::ResponderNotAllowed`], [`Error::InvalidAnswer`].
    pub async fn respond(
        &self,
        request_id: &str,
        response: Response,
        responder: Responder,
    ) -> Result<Request> {
        let now = to_millis(self.shared.clock.now());
        // An answer at or after the deadline expires the request (its policy applied in the
        // same transaction) and is refused; `late` tells which of the two the change did.
        let (updated, late) = {
            let late = std::cell::Cell::new(false);
            let change = |request: &RequestRecord| match resolve::answer(request, &response, &responder, now)?
            {
                resolve::Answered::Accepted(updated) => {
                    late.set(false);
                    Ok(Some(updated))
                }
                resolve::Answered::Late(expired) => {
                    late.set(true);
                    Ok(Some(expired))
                }
            };
            (self.shared.resolve(request_id, &change)?, late.get())
        };
        self.shared.store.flush().await?;
        if updated.status != RequestStatus::Pending {
            self.shared.request_events.notify(&updated.id);
            // Resume a paused run now rather than when its wake-up fires, so that a caller's
            // `settled()` after this answer waits for the run's next settled state. The stored
            // wake-up is then spent; it stays only for an engine that cannot drive the run.
            let wake = resolution_wake(&updated);
            if self.shared.resume_if_paused(&updated.run_id)? {
                self.shared.store.remove_timer(&wake)?;
            } else {
                self.shared.timers.arm(wake);
            }
        }
        if late {
            tracing::info!(
                request_id,
                responder = responder.name(),
                "late answer refused; the request expired"
            );
            return Err(Error::RequestExpired {
                request_id: request_id.to_owned(),
            });
        }
        tracing::info!(request_id, responder = responder.name(), status = ?updated.status, "feedback answered");
        Ok(updated.view())
    }

    /// The key that signs notification links: `HITL_SECRET` if set, else a random key
    /// created once and kept in the database (so links survive restarts).
    pub fn link_secret(&self) -> Result<Vec<u8>> {
        match std::env::var("HITL_SECRET") {
            Ok(secret) if !secret.is_empty() => Ok(secret.into_bytes()),
            _ => self.shared.store.secret(),
        }
    }

    /// Bytes on disk used by the database directory's sled files.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.shared.store.size_on_disk()
    }

    /// Bytes of keys and values stored (what the data weighs before sled's own overhead).
    pub fn logical_size(&self) -> Result<u64> {
        self.shared.store.logical_size()
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<()> {
        self.shared.store.flush().await
    }

    /// Every unanswered request matching `filter`, oldest first — whether its run waits in
    /// memory or has paused.
    pub fn pending(&self, filter: &PendingFilter) -> Result<Vec<Request>> {
        let now = self.shared.clock.now();
        Ok(self
            .shared
            .store
            .pending_requests(filter.run_id.as_deref())?
            .into_iter()
            .filter(|request| filter.matches(request, now))
            .map(|request| request.view())
            .collect())
    }

    /// A request, whatever its status.
    pub fn request(&self, request_id: &str) -> Result<Request> {
        self.shared.load_request(request_id).map(|request| request.view())
    }
}

/// Records how a stopped run ended.
fn end_stopped(record: &mut RunRecord, stop: Stop) {
    match stop {
        Stop::Cancelled(reason) => {
            record.status = RunStatus::Cancelled;
            record.cancel_reason = Some(reason);
        }
        Stop::Failed(failure) => {
            record.status = RunStatus::Failed;
            record.failure = Some(failure);
        }
    }
}

impl Shared {
    pub(crate) fn load_request(&self, request_id: &str) -> Result<RequestRecord> {
        self.store
            .load_request(request_id)?
            .ok_or_else(|| Error::RequestNotFound {
                request_id: request_id.to_owned(),
            })
    }

    /// Changes a request in one transaction; a resolution also arms a wake-up of its run, so
    /// a paused run resumes even if this process dies right after.
    fn resolve(
        &self,
        request_id: &str,
        change: &dyn Fn(&RequestRecord) -> Result<Option<RequestRecord>>,
    ) -> Result<RequestRecord> {
        self.store.update_request(request_id, change, true)
    }

    /// Wakes whoever waits on a request that just changed.
    fn after_resolution(&self, request: &RequestRecord) {
        if request.status == RequestStatus::Pending {
            return;
        }
        self.request_events.notify(&request.id);
        self.timers.arm(resolution_wake(request));
    }

    /// Resolves a request by its expiry policy if it is still pending and due.
    async fn expire(&self, request_id: &str) -> Result<()> {
        let now = to_millis(self.clock.now());
        let change = |request: &RequestRecord| Ok(resolve::expire(request, now));
        let updated = match self.resolve(request_id, &change) {
            Ok(updated) => updated,
            Err(Error::RequestNotFound { .. }) => return Ok(()),
            Err(error) => return Err(error),
        };
        if updated.resolved_at == Some(now) {
            self.store.flush().await?;
            tracing::info!(request_id, status = ?updated.status, "feedback request expired");
            self.after_resolution(&updated);
        }
        Ok(())
    }

    /// Cancels every open request of a run (it was cancelled or failed).
    fn cancel_requests(&self, run_id: &str, reason: &str) -> Result<()> {
        let now = to_millis(self.clock.now());
        for request in self.store.pending_requests(Some(run_id))? {
            let change = |request: &RequestRecord| Ok(resolve::cancel(request, reason, now));
            let updated = self.store.update_request(&request.id, &change, false)?;
            self.request_events.notify(&updated.id);
        }
        Ok(())
    }

    /// Fires a due timer.
    pub(crate) async fn fire(self: Arc<Self>, timer: &Timer) {
        let result = match &timer.action {
            TimerAction::Expire(request_id) => self.expire(request_id).await.map(|()| true),
            TimerAction::Wake(run_id) => self.resume_if_paused(run_id),
        };
        // A wake-up this engine cannot act on (its workflow is not registered here, as in an
        // operator tool, or the engine is closing) stays stored for the application's next open.
        let result = result.and_then(|handled| {
            if handled {
                self.store.remove_timer(timer)
            } else {
                Ok(())
            }
        });
        if let Err(error) = result {
            tracing::error!(%error, ?timer, "a timer could not be handled; it fires again at the next open");
        }
    }

    /// Re-drives a paused run (its replay finds whatever woke it). Returns `false` when this
    /// engine cannot do it (closing, or the workflow is not registered here).
    pub(crate) fn resume_if_paused(self: &Arc<Self>, run_id: &str) -> Result<bool> {
        if self.closed.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let mut live = lock(&self.live);
        if live.contains_key(run_id) {
            return Ok(true);
        }
        let Some(mut record) = self.store.load_run(run_id)? else {
            return Ok(true);
        };
        if record.status != RunStatus::Paused {
            return Ok(true);
        }
        let Some(registered) = self.registry.get(record.workflow.as_str()).copied() else {
            tracing::debug!(run_id, workflow = %record.workflow, "cannot resume run here: its workflow is not registered");
            return Ok(false);
        };
        let now = to_millis(self.clock.now());
        record.status = RunStatus::Running;
        record.owner = Some(self.owner.clone());
        record.lease_until = Some(now + LEASE.as_millis() as u64);
        record.updated_at = now;
        self.store.save_run(&record)?;
        tracing::info!(run_id, "resuming run");
        self.launch(&mut live, record, registered, None)?;
        let resumed = live.contains_key(run_id);
        drop(live);
        if resumed {
            self.publish(run_id, RunStatus::Running);
        }
        Ok(true)
    }

    /// Starts the task that drives a run; `live` is the locked live-run table.
    ///
    /// A new run passes the body its start already decoded (its journal is empty); a run that
    /// resumes has its journal loaded and its input decoded again here.
    fn launch(
        self: &Arc<Self>,
        live: &mut HashMap<String, LiveRun>,
        record: RunRecord,
        registered: Registered,
        new_body: Option<WorkflowFuture>,
    ) -> Result<()> {
        if live.contains_key(&record.id) {
            return Ok(()); // already driven by this engine
        }
        let loaded = match new_body {
            Some(body) => Ok((Vec::new(), body)),
            None => self
                .store
                .load_journal(&record.id)
                .and_then(|journal| Ok((journal, (registered.start)(record.input.clone())?))),
        };
        let (journal, body) = match loaded {
            Ok(loaded) => loaded,
            // A run whose records cannot be read, or whose input no longer decodes, cannot be
            // replayed: it ends failed with the reason, and nothing else is affected.
            Err(error @ (Error::CorruptRecord { .. } | Error::InvalidInput { .. })) => {
                tracing::error!(run_id = %record.id, %error, "run cannot be replayed; failing it");
                let step = match &error {
                    Error::CorruptRecord { step, .. } => step.clone(),
                    _ => None,
                };
                let mut record = record;
                record.status = RunStatus::Failed;
                record.failure = Some(Failure {
                    step,
                    ..Failure::new(FailureKind::of(&error), error.to_string())
                });
                record.owner = None;
                record.lease_until = None;
                record.updated_at = to_millis(self.clock.now());
                self.store.save_run(&record)?;
                self.cancel_requests(&record.id, &format!("run failed: {error}"))?;
                self.publish(&record.id, RunStatus::Failed);
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let state = RunState::new(
            Arc::clone(self),
            record.id.clone(),
            registered.definition.name,
            journal,
        );
        let span =
            tracing::info_span!("hitl.run", run_id = %record.id, workflow = registered.definition.name);
        let shared = Arc::clone(self);
        let run_state = Arc::clone(&state);
        let driver =
            tokio::spawn(async move { shared.drive_run(record, run_state, body).await }.instrument(span));
        live.insert(
            state.id.clone(),
            LiveRun {
                state,
                driver: Some(driver),
            },
        );
        Ok(())
    }

    async fn drive_run(self: Arc<Self>, mut record: RunRecord, state: Arc<RunState>, body: WorkflowFuture) {
        tracing::debug!("run executing");
        let ending = RunBody::new(Arc::clone(&state), body).await;
        match ending {
            Ending::Paused => match self.pause(record.clone(), &state).await {
                Ok(None) => return,
                // Stopped while pausing (a cancel raced the pause): end it as stopped.
                Ok(Some(stop)) => end_stopped(&mut record, stop),
                Err(error) => {
                    tracing::error!(%error, "could not record the pause; the run resumes at the next open");
                    return;
                }
            },
            Ending::Stopped(stop) => end_stopped(&mut record, stop),
            Ending::Finished(Ok(output)) => {
                record.status = RunStatus::Completed;
                record.output = Some(output);
            }
            Ending::Finished(Err(message)) => {
                let (step, location) = state.last_error().unzip();
                record.status = RunStatus::Failed;
                record.failure = Some(Failure {
                    kind: FailureKind::Workflow,
                    message,
                    step,
                    location,
                });
            }
            Ending::Panicked(message) => {
                record.status = RunStatus::Failed;
                record.failure = Some(Failure::new(
                    FailureKind::Panicked,
                    format!("the workflow panicked: {message}"),
                ));
            }
        }
        tracing::debug!(status = %record.status, "run finished");
        let run_id = record.id.clone();
        if let Err(error) = self.finish(record).await {
            tracing::error!(%error, "could not record the end of the run; it will be resumed at the next open");
        }
        lock(&self.live).remove(&run_id);
    }

    /// Records a pause: the body is already dropped. Durable sleeps in progress become
    /// wake-up timers; a request resolved while pausing resumes the run at once.
    /// Returns the stop instead when the run was stopped before the pause was recorded.
    async fn pause(self: &Arc<Self>, mut record: RunRecord, state: &RunState) -> Result<Option<Stop>> {
        let now = to_millis(self.clock.now());
        let wakes: Vec<Timer> = state
            .sleep_deadlines()
            .into_iter()
            .map(|deadline| Timer {
                deadline,
                action: TimerAction::Wake(record.id.clone()),
            })
            .collect();
        for timer in &wakes {
            self.store.add_timer(timer)?;
        }
        {
            let mut live = lock(&self.live);
            if let Some(stop) = state.stop_reason() {
                return Ok(Some(stop));
            }
            // An answer that arrived while the body was being dropped found the run still
            // live and left it to us: drive the run again instead of pausing it. Decided
            // under the live-table lock, which `respond`'s resumption takes too.
            let mut answered = false;
            for request_id in state.requests() {
                if self.load_request(&request_id)?.status != RequestStatus::Pending {
                    answered = true;
                    break;
                }
            }
            live.remove(&record.id);
            if answered {
                tracing::debug!(run_id = %record.id, "answered while pausing; driving the run again");
                if let Some(registered) = self.registry.get(record.workflow.as_str()).copied() {
                    self.launch(&mut live, record, registered, None)?;
                    drop(live);
                    for timer in wakes {
                        self.timers.arm(timer);
                    }
                    return Ok(None);
                }
            }
            record.status = RunStatus::Paused;
            record.owner = None;
            record.lease_until = None;
            record.updated_at = now;
            self.store.save_run(&record)?;
        }
        self.store.flush().await?;
        tracing::info!(run_id = %record.id, "run paused");
        self.publish(&record.id, RunStatus::Paused);
        for timer in wakes {
            self.timers.arm(timer);
        }
        Ok(None)
    }

    /// Writes a run's final record, makes it durable, cancels its open requests, and tells
    /// whoever waits.
    async fn finish(&self, mut record: RunRecord) -> Result<()> {
        record.owner = None;
        record.lease_until = None;
        record.updated_at = to_millis(self.clock.now());
        self.store.save_run(&record)?;
        let reason = match (&record.status, &record.cancel_reason, &record.failure) {
            (RunStatus::Cancelled, Some(reason), _) => Some(format!("run cancelled: {reason}")),
            (RunStatus::Failed, _, Some(failure)) => Some(format!("run failed: {}", failure.message)),
            (RunStatus::Completed, ..) => Some("run completed without it".to_owned()),
            _ => None,
        };
        if let Some(reason) = reason {
            self.cancel_requests(&record.id, &reason)?;
        }
        self.store.flush().await?;
        self.publish(&record.id, record.status);
        Ok(())
    }

    fn publish(&self, run_id: &str, status: RunStatus) {
        let mut statuses = lock(&self.statuses);
        if let Some(sender) = statuses.get(run_id) {
            sender.send_replace(status);
            // Receivers keep the last value, so a terminal status can drop the sender.
            if status.is_terminal() || (status.is_settled() && sender.receiver_count() == 0) {
                statuses.remove(run_id);
            }
        }
    }
}

/// Listing requests whatever their status, for the HTTP API (`GET /api/requests?status=…`).
impl Engine {
    /// Every request of the runs matching `filter` whose status is `status` (any status when
    /// `None`), oldest first. Pending requests come from the pending index; the others from
    /// the runs' journals, so this reads every matching run.
    ///
    /// # Examples
    ///
    /// ```
    /// # use hitl::prelude::*;
    /// # use hitl::{PendingFilter, RequestStatus};
    /// # #[workflow] async fn noop() -> u8 { 1 }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
    /// let engine = Engine::temporary().register(noop).open().await?;
    /// let answered = engine.requests(&PendingFilter::default(), Some(RequestStatus::Answered))?;
    /// assert!(answered.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn requests(&self, filter: &PendingFilter, status: Option<RequestStatus>) -> Result<Vec<Request>> {
        if status == Some(RequestStatus::Pending) {
            return self.pending(filter);
        }
        let now = self.shared.clock.now();
        let runs = match &filter.run_id {
            Some(run_id) => match self.shared.store.load_run(run_id)? {
                Some(run) => vec![run],
                None => Vec::new(),
            },
            None => self.shared.store.list_runs()?,
        };
        let mut requests = Vec::new();
        for run in runs {
            if filter
                .workflow
                .as_ref()
                .is_some_and(|workflow| &run.workflow != workflow)
            {
                continue;
            }
            for (_, step) in self.shared.store.load_journal(&run.id)? {
                let Some(request_id) = step.output["request"]
                    .as_str()
                    .filter(|_| step.kind == StepKind::Feedback)
                else {
                    continue;
                };
                let Some(request) = self.shared.store.load_request(request_id)? else {
                    continue;
                };
                if status.is_none_or(|status| request.status == status) && filter.matches(&request, now) {
                    requests.push(request);
                }
            }
        }
        requests.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(requests.iter().map(RequestRecord::view).collect())
    }
}
