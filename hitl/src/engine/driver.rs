//! Driving one run: polling its body until it finishes, stops, or may pause.
//!
//! The driver polls the body itself (rather than spawning it) so that after each poll it can
//! decide to pause: when the poll returned `Pending`, nothing woke the body meanwhile, no
//! activity is executing, and every branch that waits on a human has left its in-memory
//! window. A sibling branch that is still working keeps the run in memory until its steps
//! finish. Pausing drops the body future: a paused run holds no task, thread or memory.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use crate::journal::RunHalted;
use crate::journal::{Ambient, Frame, InAmbient, RunState};
use crate::model::run::Stop;
use crate::workflow::{WorkflowFuture, WorkflowResult};

/// How a run's execution ended.
pub(crate) enum Ending {
    /// The body returned.
    Finished(WorkflowResult),
    /// The body panicked.
    Panicked(String),
    /// The run was stopped (cancelled, or failed by the engine).
    Stopped(Stop),
    /// Every live branch waits on a human: the run pauses.
    Paused,
}

/// The body of a run and its state, polled by the driver task.
pub(crate) struct RunBody {
    body: Pin<Box<InAmbient<WorkflowFuture>>>,
    state: Arc<RunState>,
}

impl RunBody {
    pub(crate) fn new(state: Arc<RunState>, body: WorkflowFuture) -> Self {
        RunBody {
            body: Box::pin(InAmbient::new(Ambient::Orchestration(Frame::root(&state)), body)),
            state,
        }
    }
}

/// A waker that records whether it was woken.
pub(super) struct Flagged {
    inner: Waker,
    woken: AtomicBool,
}

impl Flagged {
    /// A waker that wakes `inner` and remembers it did.
    pub(super) fn new(inner: &Waker) -> Arc<Self> {
        Arc::new(Flagged {
            inner: inner.clone(),
            woken: AtomicBool::new(false),
        })
    }

    pub(super) fn woken(&self) -> bool {
        self.woken.load(Ordering::SeqCst)
    }
}

impl Wake for Flagged {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.inner.wake_by_ref();
    }
}

impl Future for RunBody {
    type Output = Ending;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ending> {
        self.state.set_driver(cx.waker());
        if let Some(stop) = self.state.stop_reason() {
            return Poll::Ready(Ending::Stopped(stop));
        }
        let flag = Flagged::new(cx.waker());
        let waker = Waker::from(Arc::clone(&flag));
        let polled = catch_unwind(AssertUnwindSafe(|| {
            self.body.as_mut().poll(&mut Context::from_waker(&waker))
        }));
        match polled {
            // After `cancel_workflow` the run is cancelled whatever the body returns.
            Ok(Poll::Ready(result)) => Poll::Ready(match self.state.stop_reason() {
                Some(stop) => Ending::Stopped(stop),
                None => Ending::Finished(result),
            }),
            Err(panic) => Poll::Ready(match self.state.stop_reason() {
                Some(stop) => Ending::Stopped(stop),
                None if panic.is::<RunHalted>() => Ending::Panicked("the run was halted".to_owned()),
                None => Ending::Panicked(crate::util::panic_message(&*panic)),
            }),
            Ok(Poll::Pending) => {
                if let Some(stop) = self.state.stop_reason() {
                    Poll::Ready(Ending::Stopped(stop))
                } else if !flag.woken() && self.state.pausable() {
                    Poll::Ready(Ending::Paused)
                } else {
                    Poll::Pending
                }
            }
        }
    }
}
