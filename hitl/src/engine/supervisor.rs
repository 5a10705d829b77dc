//! The run lifecycle: start, recover, launch, drive, pause, finish, resume, cancel.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;
use tracing::Instrument;

use super::driver::{Ending, RunBody};
use super::registry::CodeOf;
use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::journal::RunState;
use crate::journal::run_state::Mode;
use crate::model::request::RequestStatus;
use crate::model::run::{Failure, FailureKind, RunRecord, RunStatus, Stop};
use crate::model::step::{Timer, TimerAction};
use crate::store::{FORMAT_VERSION, RunQuery};
use crate::workflow::WorkflowFuture;

use super::{Engine, LiveRun, Registered, Shared};

impl Engine {
    /// Starts a run of `version` of `workflow` (`None`: the newest registered version).
    pub(super) async fn start_erased(
        &self,
        workflow: &str,
        version: Option<u32>,
        run_id: String,
        input: Value,
    ) -> Result<String> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        // An operator engine on a shared store enqueues: the run is stored for a worker.
        let enqueue_only = !self.shared.drives_runs && self.shared.services.store.shared();
        if !self.shared.drives_runs && !enqueue_only {
            return Err(Error::InvalidRequest {
                detail: "this engine was opened with `background(false)` (an operator engine) and starts no runs; open a worker engine to start one".to_owned(),
            });
        }
        let registered = match version {
            None => self.registered(workflow)?,
            Some(version) => {
                self.shared
                    .registry
                    .exact(workflow, version)
                    .ok_or_else(|| Error::UnknownWorkflow {
                        name: format!("{workflow} (version {version})"),
                        registered: self.workflows().iter().map(|name| (*name).to_owned()).collect(),
                    })?
            }
        };
        let body = (registered.start)(input.clone())?;
        let definition = registered.definition;
        let now = to_millis(self.shared.services.clock.now());
        let (_, lease_until) = self.shared.lease_window();
        // At its limit, an engine on a shared store leaves the new run for another worker: it
        // is stored `Running` with no lease, which the next claim of lapsed runs takes.
        let at_capacity = enqueue_only
            || (self.shared.services.store.shared()
                && self.shared.live.lock().await.len() >= self.shared.max_concurrent_runs);
        let record = RunRecord {
            v: FORMAT_VERSION,
            id: run_id,
            workflow: definition.name.to_owned(),
            version: definition.version,
            status: RunStatus::Running,
            input,
            output: None,
            failure: None,
            cancel_reason: None,
            fingerprint: definition.fingerprint.to_owned(),
            owner: (!at_capacity).then(|| self.shared.owner.clone()),
            lease_until: (!at_capacity).then_some(lease_until),
            lease_epoch: 1,
            created_at: now,
            updated_at: now,
            blocked: None,
            decisions: Vec::new(),
            accepted_before: 0,
            code: super::compat::code_identity(definition),
        };
        self.shared
            .services
            .store
            .save_definition(definition.name, definition.fingerprint, &definition.site_names())
            .await?;
        if let Some(existing) = self.shared.services.store.create_run(&record).await? {
            if existing.workflow != record.workflow
                || existing.input != record.input
                || existing.version != record.version
            {
                return Err(Error::RunIdConflict {
                    run_id: record.id,
                    workflow: existing.workflow,
                });
            }
            return Ok(existing.id);
        }
        self.shared.services.store.flush().await?;
        let run_id = record.id.clone();
        if at_capacity {
            tracing::debug!(%run_id, "at max_concurrent_runs: the new run is left for another worker");
            return Ok(run_id);
        }
        let mut live = self.shared.live.lock().await;
        self.shared
            .launch(&mut live, record, registered, Some(body))
            .await?;
        Ok(run_id)
    }

    /// Drives every run left `Running` by a previous process, and checks blocked runs again:
    /// this build may be one that can resume them.
    pub(super) async fn recover(&self) -> Result<()> {
        self.shared.take_over().await?;
        let blocked = RunQuery {
            status: Some(RunStatus::Blocked),
            ..RunQuery::default()
        };
        for record in self.shared.services.store.runs(&blocked).await? {
            if let Err(error) = self.shared.resume_if_paused(&record.id).await {
                tracing::error!(run_id = %record.id, %error, "cannot check the blocked run again");
            }
        }
        Ok(())
    }
}

impl Shared {
    /// Claims runs whose lease lapsed (their worker died, stalled or released them) and
    /// drives them here: every such run with an exclusive store (sled: the previous process
    /// is gone), as many as there is room for with a shared one.
    pub(super) async fn take_over(self: &Arc<Self>) -> Result<()> {
        let room = if self.services.store.shared() {
            self.max_concurrent_runs
                .saturating_sub(self.live.lock().await.len())
        } else {
            usize::MAX
        };
        if room == 0 {
            return Ok(());
        }
        let (now, until) = self.lease_window();
        for record in self
            .services
            .store
            .claim_lapsed(&self.owner, now, until, room)
            .await?
        {
            let registered = match self.registry.code_of(&record) {
                CodeOf::Registered(registered) => registered,
                CodeOf::VersionMissing(problem) => {
                    self.block(record, vec![problem]).await?;
                    continue;
                }
                CodeOf::NotHere => {
                    tracing::warn!(run_id = %record.id, workflow = %record.workflow, "cannot resume run: its workflow is not registered");
                    continue;
                }
            };
            let run_id = record.id.clone();
            let mut live = self.live.lock().await;
            // One run that cannot be driven must not keep the engine from opening.
            if let Err(error) = self.launch(&mut live, record, registered, None).await {
                tracing::error!(%run_id, %error, "cannot resume run; it is retried at the next open");
            }
        }
        Ok(())
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
        Stop::LostLease => unreachable!("a run whose lease is lost records no end"),
    }
}

impl Shared {
    /// Fires a due timer.
    pub(crate) async fn fire(self: Arc<Self>, timer: &Timer) {
        let result = match &timer.action {
            TimerAction::Expire(request_id) => self.expire(request_id).await.map(|()| true),
            TimerAction::Wake(run_id) => self.resume_if_paused(run_id).await,
        };
        // A wake-up this engine cannot act on (its workflow is not registered here, as in an
        // operator tool, or the engine is closing) stays stored for the application's next open.
        let result = match result {
            Ok(true) => self.services.store.remove_timer(timer).await,
            Ok(false) => Ok(()),
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::error!(%error, ?timer, "a timer could not be handled; it fires again at the next open");
        }
    }

    /// Re-drives a paused run (its replay finds whatever woke it). Returns `false` when this
    /// engine cannot do it (closing, or the workflow is not registered here).
    pub(crate) async fn resume_if_paused(self: &Arc<Self>, run_id: &str) -> Result<bool> {
        if self.closed.load(Ordering::SeqCst) || !self.drives_runs {
            return Ok(false);
        }
        let mut live = self.live.lock().await;
        if live.contains_key(run_id) {
            return Ok(true);
        }
        let Some(record) = self.services.store.load_run(run_id).await? else {
            return Ok(true);
        };
        if !record.status.is_resumable() {
            return Ok(true);
        }
        if !self.registry.knows(&record.workflow) {
            tracing::debug!(run_id, workflow = %record.workflow, "cannot resume run here: its workflow is not registered");
            return Ok(false);
        }
        let (now, until) = self.lease_window();
        // One claim wins: an engine (or a concurrent resume here) that got there first
        // drives the run.
        let Some(record) = self
            .services
            .store
            .claim_paused(run_id, &self.owner, now, until)
            .await?
        else {
            return Ok(true);
        };
        let registered = match self.registry.code_of(&record) {
            CodeOf::Registered(registered) => registered,
            // Claimed like any resume, then blocked with the reason (once per wake-up).
            CodeOf::VersionMissing(problem) => {
                self.block(record, vec![problem]).await?;
                return Ok(true);
            }
            CodeOf::NotHere => return Ok(false),
        };
        tracing::info!(run_id, "resuming run");
        self.launch(&mut live, record, registered, None).await?;
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
    // Boxed with an explicit `Send`: the run it spawns can launch a run again (a pause
    // that an answer raced), a cycle the compiler cannot see through otherwise.
    pub(super) fn launch<'a>(
        self: &'a Arc<Self>,
        live: &'a mut HashMap<String, LiveRun>,
        record: RunRecord,
        registered: Registered,
        new_body: Option<WorkflowFuture>,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            if live.contains_key(&record.id) {
                return Ok(()); // already driven by this engine
            }
            // `close` sets the flag before it takes the live table: a run launched after that
            // would be driven by nobody's driver list, beside the next engine's. It stays as
            // stored, `Running`, and the next engine (or another worker) recovers it.
            if self.closed.load(Ordering::SeqCst) {
                return Ok(());
            }
            let resuming = new_body.is_none();
            let loaded = match new_body {
                Some(body) => Ok((Vec::new(), body)),
                None => match self.services.store.load_journal(&record.id).await {
                    Ok(journal) => (registered.start)(record.input.clone()).map(|body| (journal, body)),
                    Err(error) => Err(error),
                },
            };
            let code = super::compat::code_identity(registered.definition);
            let (journal, body) = match loaded {
                Ok(loaded) => loaded,
                // New code whose arguments no longer take the stored input: a code change,
                // so the run is blocked (a deploy can fix it), not failed.
                Err(error @ Error::InvalidInput { .. }) if resuming && record.code != code => {
                    let problem = crate::model::compat::Incompatibility::input_no_longer_decodes(error);
                    return self.block(record, vec![problem]).await;
                }
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
                    record.updated_at = to_millis(self.services.clock.now());
                    self.services.store.save_run(&record).await?;
                    self.cancel_requests(&record.id, &format!("run failed: {error}"))
                        .await?;
                    self.publish(&record.id, RunStatus::Failed);
                    return Ok(());
                }
                Err(error) => return Err(error),
            };
            // Before anything of a resumed run replays, its journal is checked against the
            // registered code; a run the code cannot resume is blocked, not replayed.
            // A run last driven by this very code needs no check.
            if resuming && !journal.is_empty() && record.code != code {
                let verdict = self.check(&record, registered, journal.clone()).await;
                if !verdict.compatible() {
                    return self.block(record, verdict.problems).await;
                }
            }
            let mut record = record;
            record.blocked = None;
            record.code = code;
            let state = RunState::new(
                Arc::clone(&self.services),
                record.id.clone(),
                registered.definition.name,
                record.lease_epoch,
                journal,
                Mode::Drive,
                record.accepted_before,
            );
            let span =
                tracing::info_span!("hitl.run", run_id = %record.id, workflow = registered.definition.name);
            let shared = Arc::clone(self);
            let run_state = Arc::clone(&state);
            let alive = self.drivers.enter();
            let driver = tokio::spawn(
                async move {
                    // Declared first, dropped last: after the engine handle and the run.
                    let _alive = alive;
                    let (shared, record, run_state, body) = (shared, record, run_state, body);
                    shared.drive_run(record, run_state, body).await;
                }
                .instrument(span),
            );
            live.insert(
                state.id.clone(),
                LiveRun {
                    state,
                    driver: Some(driver),
                },
            );
            Ok(())
        })
    }

    pub(super) async fn drive_run(
        self: Arc<Self>,
        mut record: RunRecord,
        state: Arc<RunState>,
        body: WorkflowFuture,
    ) {
        tracing::debug!("run executing");
        // What follows the body (`pause`, `finish`) is boxed: this future is what every
        // running run holds in memory, and it is as large as its largest await (in a release
        // build, 9.5 KB with them inline, 2.2 KB boxed).
        let ending = RunBody::new(Arc::clone(&state), body).await;
        let lost = matches!(&ending, Ending::Stopped(Stop::LostLease))
            || (matches!(ending, Ending::Paused) && matches!(state.stop_reason(), Some(Stop::LostLease)));
        if lost {
            self.forget_lost(&record.id, state.epoch).await;
            return;
        }
        match ending {
            Ending::Paused => match Box::pin(self.pause(record.clone(), &state)).await {
                Ok(None) => return,
                Ok(Some(Stop::LostLease)) => {
                    self.forget_lost(&record.id, state.epoch).await;
                    return;
                }
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
        // Steps that sync code journaled since the last write are written before the end.
        let result = match state.write_buffered().await {
            Ok(()) => Box::pin(self.finish(record)).await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::error!(%error, "could not record the end of the run; it will be resumed at the next open");
        }
        self.live.lock().await.remove(&run_id);
    }

    /// Takes a run another worker took over out of the live table, if this engine still
    /// drives it at `epoch` (a run relaunched here since, at a later epoch, is held again and
    /// stays); nothing is written.
    pub(super) async fn forget_lost(&self, run_id: &str, epoch: u64) -> Option<LiveRun> {
        let mut live = self.live.lock().await;
        if live.get(run_id).is_some_and(|run| run.state.epoch == epoch) {
            live.remove(run_id)
        } else {
            None
        }
    }

    /// Records a pause: the body is already dropped. Durable sleeps in progress become
    /// wake-up timers; a request resolved while pausing resumes the run at once.
    /// Returns the stop instead when the run was stopped before the pause was recorded.
    pub(super) async fn pause(
        self: &Arc<Self>,
        mut record: RunRecord,
        state: &RunState,
    ) -> Result<Option<Stop>> {
        let now = to_millis(self.services.clock.now());
        let wakes: Vec<Timer> = state
            .sleep_deadlines()
            .into_iter()
            .map(|deadline| Timer {
                deadline,
                action: TimerAction::Wake(record.id.clone()),
            })
            .collect();
        for timer in &wakes {
            self.services.store.add_timer(timer).await?;
        }
        // Steps that sync code journaled since the last write go before the pause.
        state.write_buffered().await?;
        {
            let mut live = self.live.lock().await;
            if let Some(stop) = state.stop_reason() {
                return Ok(Some(stop));
            }
            // An answer that arrived while the body was being dropped found the run still
            // live and left it to us: drive the run again instead of pausing it. Decided
            // under the live-table lock, which `respond`'s resumption takes too.
            let mut answered = false;
            for request_id in state.requests() {
                if self.load_request(&request_id).await?.status != RequestStatus::Pending {
                    answered = true;
                    break;
                }
            }
            live.remove(&record.id);
            if answered {
                // The answer found here may be its answerer's write not yet flushed: the run
                // goes on only once it is durable.
                self.services.store.flush().await?;
                tracing::debug!(run_id = %record.id, "answered while pausing; driving the run again");
                if let CodeOf::Registered(registered) = self.registry.code_of(&record) {
                    self.launch(&mut live, record, registered, None).await?;
                    drop(live);
                    for timer in wakes {
                        self.services.timers.arm(timer);
                    }
                    return Ok(None);
                }
            }
            record.status = RunStatus::Paused;
            record.owner = None;
            record.lease_until = None;
            record.updated_at = now;
            self.services.store.save_run(&record).await?;
        }
        self.services.store.flush().await?;
        tracing::info!(run_id = %record.id, "run paused");
        // Armed before the pause is announced: whoever sees the run paused (a test kit that
        // then moves the clock) finds its wake-ups on the schedule.
        for timer in wakes {
            self.services.timers.arm(timer);
        }
        self.publish(&record.id, RunStatus::Paused);
        // Another process may have answered between the check above and the pause being
        // stored, found the run still running, and left it to us. Looking again now that the
        // pause is stored closes that window: whoever looks second sees the other's write.
        if self.services.store.shared() {
            for request_id in state.requests() {
                if self.load_request(&request_id).await?.status != RequestStatus::Pending {
                    Box::pin(self.resume_if_paused(&record.id)).await?;
                    break;
                }
            }
        }
        Ok(None)
    }

    /// Writes a run's final record, makes it durable, cancels its open requests, and tells
    /// whoever waits.
    pub(super) async fn finish(&self, mut record: RunRecord) -> Result<()> {
        record.owner = None;
        record.lease_until = None;
        record.updated_at = to_millis(self.services.clock.now());
        self.services.store.save_run(&record).await?;
        let reason = match (&record.status, &record.cancel_reason, &record.failure) {
            (RunStatus::Cancelled, Some(reason), _) => Some(format!("run cancelled: {reason}")),
            (RunStatus::Failed, _, Some(failure)) => Some(format!("run failed: {}", failure.message)),
            (RunStatus::Completed, ..) => Some("run completed without it".to_owned()),
            _ => None,
        };
        if let Some(reason) = reason {
            self.cancel_requests(&record.id, &reason).await?;
        }
        self.services.store.flush().await?;
        self.publish(&record.id, record.status);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use crate::store::contract::records;

    /// A running run holds its driver future in memory for as long as it runs, so the
    /// future's size is memory per running run. What follows the body (`pause`, `finish`)
    /// stays boxed. In this test build that makes 1.6 KB, and 5.2 KB inline; the release
    /// figures in `drive_run`'s comment are 2.2 and 9.5 KB.
    #[tokio::test]
    async fn the_driver_future_of_a_running_run_stays_small() {
        let engine = Engine::builder().store(MemStore::new()).open().await.unwrap();
        let shared = Arc::clone(&engine.shared);
        let record = records::run("r", "w", RunStatus::Running, 0);
        let state = RunState::new(
            Arc::clone(&shared.services),
            "r".to_owned(),
            "w",
            0,
            Vec::new(),
            Mode::Drive,
            0,
        );
        let body: WorkflowFuture = Box::pin(std::future::pending());
        let driver = Arc::clone(&shared).drive_run(record, state, body);
        let size = std::mem::size_of_val(&driver);
        assert!(
            size <= 3072,
            "the driver future of a running run takes {size} bytes"
        );
        drop(driver);
        engine.close().await.unwrap();
    }
}
