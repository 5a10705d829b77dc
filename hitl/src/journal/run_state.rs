//! A run being executed: its journal to replay, step counter, stop signal, and the counters that
//! tell the driver when the run may pause (busy activities, human waits, durable sleeps).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use tokio::sync::watch;

use super::frame::Step;
use super::replay::Replay;
use super::services::Services;
use crate::error::{Error, Result};
use crate::model::compat::{Incompatibility, IncompatibilityKind, Verdict};
use crate::model::run::{Failure, FailureKind, Stop};
use crate::model::step::{StepRecord, name_of};
use crate::util::lock;

/// A run being executed: what every step of it needs.
pub(crate) struct RunState {
    pub(crate) services: Arc<Services>,
    pub(crate) id: String,
    pub(crate) workflow: &'static str,
    /// Journal entries written before this execution started, consumed as they replay.
    replay: Mutex<Replay>,
    next_seq: AtomicU64,
    /// Set once the run must stop executing (failed by the engine, or cancelled).
    stop: watch::Sender<Option<Stop>>,
    /// The last step that returned `Err`, for [`Failure::step`].
    pub(super) last_error: Mutex<Option<(String, String)>>,
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
    /// Steps journaled by sync code, written with the run's next write.
    buffered: Mutex<Vec<(String, StepRecord)>>,
    /// The lease epoch this engine drives the run at: every journal write carries it, so a
    /// write after another claim took the run is refused (the run is then dropped here).
    pub(crate) epoch: u64,
    /// How this execution treats the journal: drive the run, or only check it.
    pub(crate) mode: Mode,
    /// Journal entries below this sequence number are not held against the code (an
    /// operator accepted the divergence).
    pub(crate) accepted_before: u64,
    /// What a check found (check mode only).
    verdict: Mutex<Verdict>,
    /// New steps a check reached while journaled entries of their scope remained: the new
    /// step, its line, and the ids of those entries.
    new_steps: Mutex<Vec<NewStep>>,
    /// Scopes (id prefixes) whose remaining entries a check cannot verify: a step of theirs
    /// that returned `Err` runs again first.
    unverifiable: Mutex<Vec<String>>,
}

/// How an execution treats its run's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Replay what is journaled and execute the rest: the run is driven.
    Drive,
    /// Replay what is journaled and stop every branch where it would execute anything: the
    /// compatibility check before a resume. Nothing is written, no activity runs.
    Check,
}

/// For a journaled task step: how a renamed task keeps its identity.
fn rename_hint(step_id: &str, record: &StepRecord) -> String {
    use crate::model::step::StepKind;
    let name = name_of(step_id);
    match record.kind {
        StepKind::Task | StepKind::Orchestration => {
            format!("; if the task was renamed, keep its identity with `#[task(name = \"{name}\")]`")
        }
        _ => String::new(),
    }
}

/// Whether a journal entry not replayed yet is a waiting entry the run has moved past in
/// its scope (where `replayed` is the highest `seq` replayed): a branch the run left behind
/// (the loser of a `select!`), not its position.
///
/// A durable timer's waiting entry never holds a run back: a timer the code no longer
/// waits on (the loser of a `select!`, or a removed sleep) leaves nothing to undo.
fn left_behind(record: &StepRecord, replayed: Option<u64>) -> bool {
    record.finished_at.is_none()
        && (record.kind == crate::model::step::StepKind::Sleep
            || replayed.is_some_and(|replayed| replayed > record.seq))
}

/// A new step a check reached while its scope still had journaled entries to replay.
struct NewStep {
    id: String,
    line: u32,
    remaining: Vec<String>,
}

impl RunState {
    pub(crate) fn new(
        services: Arc<Services>,
        id: String,
        workflow: &'static str,
        epoch: u64,
        journal: Vec<(String, StepRecord)>,
        mode: Mode,
        accepted_before: u64,
    ) -> Arc<Self> {
        let next_seq = journal.iter().map(|(_, step)| step.seq + 1).max().unwrap_or(0);
        Arc::new(RunState {
            services,
            epoch,
            id,
            workflow,
            replay: Mutex::new(Replay::new(journal)),
            next_seq: AtomicU64::new(next_seq),
            stop: watch::channel(None).0,
            last_error: Mutex::new(None),
            busy: AtomicUsize::new(0),
            human_waits: AtomicUsize::new(0),
            human_in_window: AtomicUsize::new(0),
            requests: Mutex::new(BTreeSet::new()),
            sleeps: Mutex::new(BTreeMap::new()),
            driver: Mutex::new(None),
            buffered: Mutex::new(Vec::new()),
            mode,
            accepted_before,
            verdict: Mutex::new(Verdict::default()),
            new_steps: Mutex::new(Vec::new()),
            unverifiable: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn checking(&self) -> bool {
        self.mode == Mode::Check
    }

    /// Records a problem a check found.
    pub(crate) fn found(&self, problem: Incompatibility) {
        lock(&self.verdict).add(problem);
    }

    /// Whether a journal entry is held against the code (not accepted by an operator).
    pub(crate) fn holds(&self, record: &StepRecord) -> bool {
        record.seq >= self.accepted_before
    }

    /// The held journal entries not replayed yet whose ids start with `prefix`, leaving out
    /// those under `except` (a nested orchestration's own steps).
    pub(crate) fn remaining_under(&self, prefix: &str, except: Option<&str>) -> Vec<String> {
        let mut ids: Vec<(u64, String)> = lock(&self.replay)
            .ahead_under(prefix)
            .into_iter()
            .filter(|(id, record, replayed)| {
                except.is_none_or(|except| !id.starts_with(except)) && self.still_ahead(record, *replayed)
            })
            .map(|(id, record, _)| (record.seq, id.to_owned()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Notes that the entries under `prefix` left to replay cannot be verified by a check.
    pub(crate) fn unverifiable_after(&self, prefix: String) {
        lock(&self.unverifiable).push(prefix);
    }

    /// Whether a journal entry not replayed yet is still ahead of the run: held against the
    /// code, and not a waiting entry the run has moved past. `replayed` is the highest
    /// `seq` replayed in the entry's scope.
    fn still_ahead(&self, record: &StepRecord, replayed: Option<u64>) -> bool {
        self.holds(record) && !left_behind(record, replayed)
    }

    /// Notes a new step a check reached before `remaining` journaled entries of its scope.
    pub(crate) fn new_step_before(&self, id: &str, line: u32, remaining: Vec<String>) {
        lock(&self.new_steps).push(NewStep {
            id: id.to_owned(),
            line,
            remaining,
        });
    }

    /// The check's verdict, once the replay has gone as far as it can: every held journal
    /// entry still not replayed is a problem, named after the new step that came first.
    pub(crate) fn verdict(&self) -> Verdict {
        let unverifiable = lock(&self.unverifiable).clone();
        let remaining: HashMap<String, StepRecord> = lock(&self.replay)
            .ahead_under("")
            .into_iter()
            .filter(|(id, record, replayed)| {
                self.still_ahead(record, *replayed)
                    && !unverifiable.iter().any(|prefix| id.starts_with(prefix.as_str()))
            })
            .map(|(id, record, _)| (id.to_owned(), record.clone()))
            .collect();
        let mut verdict = lock(&self.verdict).clone();
        let line_of = |id: &str| remaining.get(id).map_or(0, |record| record.line);
        for new_step in lock(&self.new_steps).iter() {
            if let Some(first) = new_step.remaining.iter().find(|id| remaining.contains_key(*id)) {
                verdict.add(Incompatibility::new(
                    IncompatibilityKind::NewStepBefore,
                    first,
                    Some(line_of(first)),
                    format!(
                        "the code now runs step `{}` (line {}) before journaled step `{first}` (line {}); add the step after the run's position, inside `if ctx.patched(\"…\")`, or in a new workflow version{}",
                        new_step.id,
                        new_step.line,
                        line_of(first),
                        rename_hint(first, &remaining[first]),
                    ),
                ));
            }
        }
        let mut left: Vec<(&String, &StepRecord)> = remaining.iter().collect();
        left.sort_by_key(|(_, record)| record.seq);
        for (id, record) in left {
            verdict.add(Incompatibility::new(
                IncompatibilityKind::NotReached,
                id,
                Some(record.line),
                format!(
                    "journaled step `{id}` (line {}) is not reached by the code any more: it was removed, renamed or moved{}",
                    record.line,
                    rename_hint(id, record),
                ),
            ));
        }
        verdict
    }

    /// Adds a step journaled by sync code to the write buffer.
    pub(crate) fn buffer_step(&self, step_id: String, record: StepRecord) {
        lock(&self.buffered).push((step_id, record));
    }

    /// Takes the buffered steps, for a write that carries them.
    pub(crate) fn take_buffered(&self) -> Vec<(String, StepRecord)> {
        std::mem::take(&mut *lock(&self.buffered))
    }

    /// Writes the buffered steps now (before a request is made, or the run pauses or ends).
    pub(crate) async fn write_buffered(&self) -> Result<()> {
        let steps = self.take_buffered();
        if steps.is_empty() || self.checking() {
            return Ok(());
        }
        self.services
            .store
            .append_steps(&self.id, self.epoch, &steps)
            .await
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

    /// Whether nothing is executing (no activity, no transient future).
    pub(crate) fn idle(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0
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
        {
            let mut sleeps = lock(&self.sleeps);
            match deadline {
                Some(deadline) => sleeps.insert(step_id.to_owned(), deadline),
                None => sleeps.remove(step_id),
            };
        }
        if let Some(hooks) = &self.services.hooks {
            hooks.sleeping(&self.id, step_id, deadline);
        }
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

    /// Fails the run with an engine error raised in `step`; a check records it instead.
    pub(crate) fn fail(&self, error: &Error, step: Option<&Step>) {
        if self.checking() {
            let id = step.map(|step| step.id.clone()).unwrap_or_default();
            self.found(Incompatibility::new(
                IncompatibilityKind::ReplayFailed,
                &id,
                step.map(Step::line),
                format!("replaying the journal on the registered code fails: {error}"),
            ));
            return;
        }
        // A fenced write: another worker holds the run now, and whatever this one would
        // record (a failure included) is not its to write.
        if matches!(error, Error::Storage(storage) if storage.kind() == crate::store::StoreErrorKind::Conflict)
        {
            tracing::warn!(run_id = %self.id, %error, "run taken over by another worker; dropping it");
            self.stop(Stop::LostLease);
            return;
        }
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

    /// Drops the journal entries under `prefix` not replayed yet.
    pub(super) fn consume_under(&self, prefix: &str) {
        lock(&self.replay).drop_under(prefix);
    }

    pub(super) fn take_journaled(&self, step_id: &str) -> Option<StepRecord> {
        lock(&self.replay).take(step_id)
    }

    pub(super) fn next_seq(&self) -> u64 {
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
