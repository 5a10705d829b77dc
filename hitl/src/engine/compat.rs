//! The check before a resume, and blocking a run the registered code cannot resume.
//!
//! The check replays the run's journal on the registered code in [`Mode::Check`]: journaled
//! steps return their outputs, and every branch stops where it would execute anything (a
//! new step, a waiting request or timer). No activity runs, nothing is written. What the
//! replay met is the verdict: a journaled step of another kind, input or types, an output
//! that no longer decodes, a new step before journaled ones of its scope, or journaled steps
//! the code never reached. It is exact by construction (it runs the code that would resume)
//! and covers nested orchestrations, whose tables no call site can see.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::driver::Flagged;
use super::registry::Registered;
use super::{RunStatus, Shared};
use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::journal::run_state::Mode;
use crate::journal::{Ambient, Frame, InAmbient, InputHasher, RunHalted, RunState};
use crate::model::compat::{Blocked, Incompatibility, IncompatibilityKind, Verdict};
use crate::model::request::{OnExpiry, RequestStatus, Resolution};
use crate::model::run::{Failure, FailureKind, RunRecord};
use crate::model::step::StepRecord;
use crate::store::RequestQuery;
use crate::workflow::WorkflowFuture;

/// The identity of this build: a hash of the executable's bytes, read once per process
/// (tens of milliseconds for a large binary) — a rebuild that changes any code changes it,
/// even when a reproducible build keeps the file's size and time. Where the executable
/// cannot be read, a value of this process alone (every resume after a restart is checked).
pub(super) fn build_identity() -> u64 {
    static BUILD: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BUILD.get_or_init(|| {
        executable_hash().unwrap_or_else(|| {
            let now = to_millis(std::time::SystemTime::now());
            InputHasher::new().arg(&(std::process::id(), now)).finish()
        })
    })
}

fn executable_hash() -> Option<u64> {
    use std::hash::Hasher;
    use std::io::Read;
    let mut file = std::fs::File::open(std::env::current_exe().ok()?).ok()?;
    // The same binary hashes the same in every process; another binary (another std
    // included) may hash anything, which only means a check.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut buffer = crate::util::file_read_buffer();
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Some(hasher.finish()),
            Ok(read) => hasher.write(&buffer[..read]),
            Err(_) => return None,
        }
    }
}

/// The identity of the code a run of `definition` runs on in this process: the build, the
/// workflow version and its site table. A run last driven by the same code resumes without
/// a check (nothing can have changed); 53 bits, so that it survives any JSON reader.
pub(super) fn code_identity(definition: &crate::workflow::WorkflowDefinition) -> u64 {
    let code = (
        build_identity(),
        definition.name,
        definition.version,
        definition.fingerprint,
        definition.file,
    );
    (InputHasher::new().arg(&code).finish() & ((1 << 53) - 1)).max(1)
}

impl Shared {
    /// Checks `journal` (the run's) against `registered`'s code without executing anything.
    pub(super) async fn check(
        &self,
        record: &RunRecord,
        registered: Registered,
        journal: Vec<(String, StepRecord)>,
    ) -> Verdict {
        let state = RunState::new(
            Arc::clone(&self.services),
            record.id.clone(),
            registered.definition.name,
            record.lease_epoch,
            journal,
            Mode::Check,
            record.accepted_before,
        );
        let body = match (registered.start)(record.input.clone()) {
            Ok(body) => body,
            Err(error) => {
                state.found(Incompatibility::input_no_longer_decodes(error));
                return state.verdict();
            }
        };
        CheckReplay::new(&state, body).await;
        state.verdict()
    }

    /// Records that the registered code cannot resume the run, and releases it. An expired
    /// request whose policy fails the run fails it even so.
    pub(super) async fn block(&self, mut record: RunRecord, problems: Vec<Incompatibility>) -> Result<()> {
        let now = to_millis(self.services.clock.now());
        record.owner = None;
        record.lease_until = None;
        record.updated_at = now;
        if let Some(request_id) = self.expired_failing_run(&record.id).await? {
            let error = Error::RequestExpired { request_id };
            tracing::warn!(run_id = %record.id, %error, "blocked run failed by its request's expiry policy");
            record.status = RunStatus::Failed;
            record.blocked = None;
            record.failure = Some(Failure::new(FailureKind::Workflow, error.to_string()));
            return self.finish(record).await;
        }
        let blocked = Blocked::new(problems, now);
        tracing::warn!(
            run_id = %record.id,
            workflow = %record.workflow,
            version = record.version,
            reason = %blocked.reason,
            "run blocked: the registered code cannot resume it; its requests stay answerable"
        );
        // A run checked again and still blocked for the same reason keeps its first time.
        let at = match &record.blocked {
            Some(previous) if previous.problems == blocked.problems => previous.at,
            _ => now,
        };
        record.blocked = Some(Blocked { at, ..blocked });
        record.status = RunStatus::Blocked;
        self.services.store.save_run(&record).await?;
        self.services.store.flush().await?;
        self.publish(&record.id, RunStatus::Blocked);
        Ok(())
    }

    /// A request of the run that expired with [`OnExpiry::FailRun`], if there is one.
    async fn expired_failing_run(&self, run_id: &str) -> Result<Option<String>> {
        let query = RequestQuery {
            status: Some(RequestStatus::Expired),
            run_id: Some(run_id.to_owned()),
            ..RequestQuery::default()
        };
        let requests = self.services.store.requests(&query).await?;
        Ok(requests
            .into_iter()
            .find(|request| {
                matches!(
                    request.resolution,
                    Some(Resolution::Expired {
                        policy: OnExpiry::FailRun
                    })
                )
            })
            .map(|request| request.id))
    }
}

/// Polls a body in check mode until it has gone as far as it can: it returned, or every
/// branch stopped and nothing executing (a `transient` future) can wake it.
struct CheckReplay<'a> {
    state: &'a Arc<RunState>,
    body: Option<Pin<Box<InAmbient<WorkflowFuture>>>>,
}

impl<'a> CheckReplay<'a> {
    fn new(state: &'a Arc<RunState>, body: WorkflowFuture) -> Self {
        let root = Ambient::Orchestration(Frame::root(state));
        CheckReplay {
            state,
            body: Some(Box::pin(InAmbient::new(root, body))),
        }
    }

    fn poll_body(&mut self, waker: &Waker) -> Poll<()> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(());
        };
        loop {
            let flag = Flagged::new(waker);
            let flagged = Waker::from(Arc::clone(&flag));
            let polled = catch_unwind(AssertUnwindSafe(|| {
                body.as_mut().poll(&mut Context::from_waker(&flagged))
            }));
            match polled {
                Ok(Poll::Ready(_)) => break,
                Err(panic) => {
                    // A sync step the check may not execute leaves the body by unwinding.
                    if !panic.is::<RunHalted>() {
                        self.state.found(Incompatibility::new(
                            IncompatibilityKind::ReplayFailed,
                            "",
                            None,
                            format!(
                                "the workflow panicked while its journal was replayed: {}",
                                crate::util::panic_message(&*panic)
                            ),
                        ));
                    }
                    break;
                }
                Ok(Poll::Pending) if flag.woken() => continue,
                Ok(Poll::Pending) if self.state.idle() => break,
                Ok(Poll::Pending) => return Poll::Pending,
            }
        }
        self.body = None;
        Poll::Ready(())
    }
}

impl Future for CheckReplay<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let waker = cx.waker().clone();
        self.poll_body(&waker)
    }
}
