//! The step state machine: scopes, step identities, journal lookups and journal writes.
//!
//! While the engine polls a workflow, a thread-local *ambient* says what the code being
//! polled is:
//!
//! * [`Ambient::Orchestration`] — a replayed body (`#[workflow]`, `#[task(inject_context)]`,
//!   or an `async` block inside one). It carries a [`Frame`]: the run and the current
//!   [`Scope`]. Steps started here are journaled.
//! * [`Ambient::Activity`] — the inside of one step (a plain `#[task]`, an awaited
//!   expression). Nothing started here is journaled separately; the step is atomic.
//! * [`Ambient::None`] — outside any workflow: tasks are plain functions.
//!
//! The ambient is set around every poll by [`InAmbient`] and restored afterwards, so it
//! follows the future across threads of a multi-threaded runtime. It does not follow
//! `tokio::spawn`, which polls elsewhere.
//!
//! A step's identity is `scope path / name # occurrence`, assigned when the step is first
//! polled. Each scope counts occurrences per name, so a new step with a new name never shifts
//! the identities of other steps.

pub(crate) use crate::util::lock; // for the journal's users until they import util
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use serde_json::Value;
use tokio::sync::watch;

use super::services::Services;
use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::model::run::{Failure, FailureKind, Stop};
use crate::model::step::{StepKind, StepRecord};
use crate::store::FORMAT_VERSION;

thread_local! {
    static AMBIENT: RefCell<Ambient> = const { RefCell::new(Ambient::None) };
}

/// What the code being polled on this thread is; see the module docs.
#[derive(Clone, Default)]
pub(crate) enum Ambient {
    /// Outside any workflow.
    #[default]
    None,
    /// A replayed body.
    Orchestration(Frame),
    /// Inside one step; carries its idempotency key (`run id/step id`).
    Activity(Arc<str>),
}

impl Ambient {
    /// The ambient of the code being polled right now.
    pub(crate) fn current() -> Ambient {
        AMBIENT.with(|ambient| ambient.borrow().clone())
    }

    /// The current frame, when polling a replayed body.
    pub(crate) fn frame() -> Option<Frame> {
        AMBIENT.with(|ambient| match &*ambient.borrow() {
            Ambient::Orchestration(frame) => Some(frame.clone()),
            _ => None,
        })
    }

    /// Swaps `self` into the thread-local slot, returning what was there.
    fn install(self) -> Ambient {
        AMBIENT.with(|ambient| std::mem::replace(&mut *ambient.borrow_mut(), self))
    }
}

/// Runs `f` with `ambient` installed, restoring the previous one afterwards.
pub(crate) fn with_ambient<R>(ambient: Ambient, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Ambient>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.0.take() {
                previous.install();
            }
        }
    }
    let _restore = Restore(Some(ambient.install()));
    f()
}

/// Polls a future with an ambient installed, restoring the previous one afterwards (also
/// when the poll panics).
pub(crate) struct InAmbient<F> {
    ambient: Ambient,
    future: Pin<Box<F>>,
}

impl<F: Future> InAmbient<F> {
    pub(crate) fn new(ambient: Ambient, future: F) -> Self {
        InAmbient {
            ambient,
            future: Box::pin(future),
        }
    }
}

impl<F: Future> Future for InAmbient<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        struct Restore<'a> {
            slot: &'a mut Ambient,
            previous: Option<Ambient>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let previous = self.previous.take().unwrap_or_default();
                *self.slot = previous.install();
            }
        }
        let this = self.get_mut();
        let previous = std::mem::take(&mut this.ambient).install();
        let _restore = Restore {
            slot: &mut this.ambient,
            previous: Some(previous),
        };
        this.future.as_mut().poll(cx)
    }
}

/// A run being executed: what every step of it needs.
pub(crate) struct RunState {
    pub(crate) services: Arc<Services>,
    pub(crate) id: String,
    pub(crate) workflow: &'static str,
    /// Journal entries written before this execution started, consumed as they replay.
    replay: Mutex<HashMap<String, StepRecord>>,
    next_seq: AtomicU64,
    /// Set once the run must stop executing (failed by the engine, or cancelled).
    stop: watch::Sender<Option<Stop>>,
    /// The last step that returned `Err`, for [`Failure::step`].
    last_error: Mutex<Option<(String, String)>>,
    /// Activity steps executing (or flushing) right now.
    busy: AtomicUsize,
    /// Feedback steps waiting, and how many of them are still inside their in-memory window.
    human_waits: AtomicUsize,
    human_in_window: AtomicUsize,
    /// The requests this execution waits on and has not seen resolved: at a pause, one of
    /// them resolved meanwhile means the run must be driven again.
    requests: Mutex<BTreeSet<String>>,
    /// Deadlines of durable sleeps in progress, by step id: wake-ups to arm when pausing.
    sleeps: Mutex<BTreeMap<String, u64>>,
    /// Wakes the driver when the run stops or may pause.
    driver: Mutex<Option<Waker>>,
}

impl RunState {
    pub(crate) fn new(
        services: Arc<Services>,
        id: String,
        workflow: &'static str,
        journal: Vec<(String, StepRecord)>,
    ) -> Arc<Self> {
        let next_seq = journal.iter().map(|(_, step)| step.seq + 1).max().unwrap_or(0);
        Arc::new(RunState {
            services,
            id,
            workflow,
            replay: Mutex::new(journal.into_iter().collect()),
            next_seq: AtomicU64::new(next_seq),
            stop: watch::channel(None).0,
            last_error: Mutex::new(None),
            busy: AtomicUsize::new(0),
            human_waits: AtomicUsize::new(0),
            human_in_window: AtomicUsize::new(0),
            requests: Mutex::new(BTreeSet::new()),
            sleeps: Mutex::new(BTreeMap::new()),
            driver: Mutex::new(None),
        })
    }

    /// The root frame of the run's body.
    pub(crate) fn root_frame(self: &Arc<Self>) -> Frame {
        Frame {
            run: Arc::clone(self),
            scope: Arc::new(Scope::new(String::new())),
        }
    }

    /// Stops the run; the first reason wins.
    pub(crate) fn stop(&self, reason: Stop) {
        self.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
        self.wake_driver();
    }

    /// Remembers the waker of the task driving the run.
    pub(crate) fn set_driver(&self, waker: &Waker) {
        let mut driver = lock(&self.driver);
        if !driver.as_ref().is_some_and(|current| current.will_wake(waker)) {
            *driver = Some(waker.clone());
        }
    }

    fn wake_driver(&self) {
        if let Some(waker) = lock(&self.driver).as_ref() {
            waker.wake_by_ref();
        }
    }

    /// Whether the run may pause: nothing is executing, at least one branch waits on a
    /// human, and no human wait is inside its in-memory window.
    pub(crate) fn pausable(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0
            && self.human_waits.load(Ordering::SeqCst) > 0
            && self.human_in_window.load(Ordering::SeqCst) == 0
    }

    /// Marks an activity step as executing until the guard drops.
    pub(crate) fn busy(self: &Arc<Self>) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::SeqCst);
        BusyGuard(Arc::clone(self))
    }

    /// Registers a feedback wait on `request_id`, inside its in-memory window.
    pub(crate) fn human_wait(self: &Arc<Self>, request_id: &str) -> HumanWait {
        lock(&self.requests).insert(request_id.to_owned());
        self.human_waits.fetch_add(1, Ordering::SeqCst);
        self.human_in_window.fetch_add(1, Ordering::SeqCst);
        HumanWait {
            run: Arc::clone(self),
            request_id: request_id.to_owned(),
            in_window: true,
        }
    }

    /// The requests this execution waits on, unresolved when last seen.
    pub(crate) fn requests(&self) -> Vec<String> {
        lock(&self.requests).iter().cloned().collect()
    }

    /// Notes a durable sleep in progress until `deadline` (ms).
    pub(crate) fn sleeping(&self, step_id: &str, deadline: Option<u64>) {
        let mut sleeps = lock(&self.sleeps);
        match deadline {
            Some(deadline) => sleeps.insert(step_id.to_owned(), deadline),
            None => sleeps.remove(step_id),
        };
    }

    /// Deadlines of the durable sleeps in progress.
    pub(crate) fn sleep_deadlines(&self) -> Vec<u64> {
        lock(&self.sleeps).values().copied().collect()
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// The reason the run stopped, if it did.
    pub(crate) fn stop_reason(&self) -> Option<Stop> {
        self.stop.borrow().clone()
    }

    /// Fails the run with an engine error raised in `step`.
    pub(crate) fn fail(&self, error: &Error, step: Option<&Step>) {
        tracing::error!(run_id = %self.id, %error, "run failed");
        self.stop(Stop::Failed(Failure {
            kind: FailureKind::of(error),
            message: error.to_string(),
            step: step.map(|step| step.id.clone()),
            location: step.map(Step::location),
        }));
    }

    pub(crate) fn last_error(&self) -> Option<(String, String)> {
        lock(&self.last_error).clone()
    }

    fn take_journaled(&self, step_id: &str) -> Option<StepRecord> {
        lock(&self.replay).remove(step_id)
    }

    fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }
}

/// Counts an executing activity step; see [`RunState::busy`].
pub(crate) struct BusyGuard(Arc<RunState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A feedback step waiting; see [`RunState::human_wait`].
pub(crate) struct HumanWait {
    run: Arc<RunState>,
    request_id: String,
    in_window: bool,
}

impl HumanWait {
    /// The wait found its resolution: the run no longer waits on this request.
    pub(crate) fn resolved(self) {
        lock(&self.run.requests).remove(&self.request_id);
    }

    /// The in-memory window has passed: the run may pause on this wait.
    pub(crate) fn leave_window(&mut self) {
        if std::mem::take(&mut self.in_window) {
            self.run.human_in_window.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for HumanWait {
    fn drop(&mut self) {
        self.leave_window();
        self.run.human_waits.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where in the source a step was written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    pub(crate) file: &'static str,
    pub(crate) line: u32,
}

impl Position {
    /// The position of the caller of a `#[track_caller]` fn.
    #[track_caller]
    pub(crate) fn caller() -> Self {
        let location = std::panic::Location::caller();
        Position {
            file: location.file(),
            line: location.line(),
        }
    }
}

/// A position in a run's body: the run and the current scope.
#[derive(Clone)]
pub(crate) struct Frame {
    pub(crate) run: Arc<RunState>,
    scope: Arc<Scope>,
}

/// A scope counts step occurrences per name; each `async` block and nested orchestration
/// gets its own, so concurrent branches cannot steal each other's occurrence numbers.
struct Scope {
    path: String,
    occurrences: Mutex<HashMap<String, u32>>,
}

impl Scope {
    fn new(path: String) -> Self {
        Scope {
            path,
            occurrences: Mutex::new(HashMap::new()),
        }
    }

    /// `path/name#n`, with `n` the number of earlier same-named steps in this scope.
    fn next_id(&self, name: &str) -> String {
        let occurrence = {
            let mut occurrences = lock(&self.occurrences);
            match occurrences.get_mut(name) {
                Some(counter) => {
                    *counter += 1;
                    *counter - 1
                }
                None => {
                    occurrences.insert(name.to_owned(), 1);
                    0
                }
            }
        };
        if self.path.is_empty() {
            format!("{name}#{occurrence}")
        } else {
            format!("{}/{name}#{occurrence}", self.path)
        }
    }
}

impl Frame {
    /// A new child frame for a nested scope named after `name` (occurrence counted here).
    pub(crate) fn child(&self, name: &str) -> Frame {
        Frame {
            run: Arc::clone(&self.run),
            scope: Arc::new(Scope::new(self.scope.next_id(name))),
        }
    }

    /// The child frame of an already-begun step (a nested orchestration's body).
    pub(crate) fn child_of(&self, step: &Step) -> Frame {
        Frame {
            run: Arc::clone(&self.run),
            scope: Arc::new(Scope::new(step.id.clone())),
        }
    }

    /// Starts a step: assigns its identity and finds it in the journal.
    ///
    /// Returns `None` when the run has stopped or the journal contradicts this step: the
    /// caller must not run it (and should wait forever; the engine drops the future).
    pub(crate) fn begin(
        &self,
        name: &str,
        position: Position,
        kind: StepKind,
        input_hash: u64,
    ) -> Option<(Step, Option<StepRecord>)> {
        if self.run.is_stopped() {
            return None;
        }
        let id = self.scope.next_id(name);
        let journaled = self.run.take_journaled(&id);
        // A replayed step keeps its journaled start; only a step that executes reads the clock.
        let started_at = match &journaled {
            Some(record) => record.started_at,
            None => to_millis(self.run.services.clock.now()),
        };
        let step = Step {
            frame: self.clone(),
            id,
            position,
            kind,
            input_hash,
            started_at,
        };
        if let Some(record) = &journaled {
            let detail = if record.kind != kind {
                Some(format!(
                    "the journal recorded a {:?} step, the code now runs a {:?} step",
                    record.kind, kind
                ))
            } else if record.input_hash != input_hash {
                Some("its input differs from the journaled input".to_owned())
            } else {
                None
            };
            if let Some(detail) = detail {
                let error = step.nondeterminism(detail);
                self.run.fail(&error, Some(&step));
                return None;
            }
        }
        Some((step, journaled))
    }
}

/// A step that has been given its identity.
pub(crate) struct Step {
    pub(crate) frame: Frame,
    pub(crate) id: String,
    position: Position,
    kind: StepKind,
    input_hash: u64,
    started_at: u64,
}

impl Step {
    pub(crate) fn run(&self) -> &Arc<RunState> {
        &self.frame.run
    }

    /// `file:line` of the step.
    pub(crate) fn location(&self) -> String {
        format!("{}:{}", self.position.file, self.position.line)
    }

    /// The idempotency key of the step: stable across retries, replays and restarts.
    pub(crate) fn idempotency_key(&self) -> Arc<str> {
        Arc::from(format!("{}/{}", self.frame.run.id, self.id))
    }

    pub(crate) fn nondeterminism(&self, detail: String) -> Error {
        Error::NonDeterminism {
            step: self.id.clone(),
            location: self.location(),
            detail,
        }
    }

    /// Notes that the step returned `Err` (it is not journaled and will run again).
    pub(crate) fn note_error(&self) {
        *lock(&self.frame.run.last_error) = Some((self.id.clone(), self.location()));
    }

    pub(crate) fn record_for(&self, output: Value, finished: bool) -> StepRecord {
        StepRecord {
            version: FORMAT_VERSION,
            kind: self.kind,
            seq: self.frame.run.next_seq(),
            line: self.position.line,
            input_hash: self.input_hash,
            started_at: self.started_at,
            finished_at: finished.then(|| to_millis(self.frame.run.services.clock.now())),
            output,
        }
    }

    /// Journals the step's output and, in `Durability::Flush`, waits until it is durable.
    ///
    /// Returns `false` when the write failed; the run has then been failed.
    pub(crate) async fn complete(&self, output: Value) -> bool {
        let record = self.record_for(output, true);
        let result = self.write(&record);
        self.finish_write(result).await
    }

    /// Journals an unfinished step (a durable timer's deadline) and makes it durable.
    pub(crate) async fn complete_waiting(&self, output: Value) -> bool {
        let record = self.record_for(output, false);
        let result = self.write(&record);
        match result {
            Ok(()) => self.await_flush(self.frame.run.services.store.flush()).await,
            Err(error) => {
                self.frame.run.fail(&error, Some(self));
                false
            }
        }
    }

    /// Journals a channel `set` with the channel's new value, atomically.
    pub(crate) async fn complete_channel_set(&self, key: &str, value: Value) -> bool {
        let record = self.record_for(value.clone(), true);
        let run = &self.frame.run;
        let result = run
            .services
            .store
            .append_channel_set(&run.id, &self.id, &record, key, &value);
        self.finish_write(result).await
    }

    /// Journals the step synchronously (a sync task, `ctx.now()`, …).
    ///
    /// `durable` asks for a blocking flush in `Durability::Flush`; values that carry no side
    /// effect skip it, since the next durable step flushes them too.
    pub(crate) fn complete_blocking(&self, output: Value, durable: bool) -> bool {
        let record = self.record_for(output, true);
        let run = &self.frame.run;
        let result = self.write(&record).and_then(|()| {
            if durable && run.services.durability == crate::Durability::Flush {
                run.services.store.flush_blocking()
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => true,
            Err(error) => {
                run.fail(&error, Some(self));
                false
            }
        }
    }

    fn write(&self, record: &StepRecord) -> Result<()> {
        let run = &self.frame.run;
        let result = run.services.store.append_step(&run.id, &self.id, record);
        crate::failpoint::hit("after_journal_write");
        result
    }

    async fn finish_write(&self, result: Result<()>) -> bool {
        match result {
            Ok(()) if self.frame.run.services.durability == crate::Durability::Flush => {
                self.await_flush(self.frame.run.services.store.flush()).await
            }
            Ok(()) => true,
            Err(error) => {
                self.frame.run.fail(&error, Some(self));
                false
            }
        }
    }

    async fn await_flush(&self, flush: crate::store::FlushFuture) -> bool {
        match flush.await {
            Ok(()) => true,
            Err(error) => {
                self.frame.run.fail(&error, Some(self));
                false
            }
        }
    }
}
