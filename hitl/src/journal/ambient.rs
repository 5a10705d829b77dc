//! The *ambient*: what the code being polled on this thread is.
//!
//! While the engine polls a workflow, a thread-local ambient says what the code being
//! polled is:
//!
//! * [`Ambient::Orchestration`] — a replayed body (`#[workflow]`, `#[task(inject_context)]`,
//!   or an `async` block inside one). It carries a [`Frame`]: the run and the current
//!   scope. Steps started here are journaled.
//! * [`Ambient::Activity`] — the inside of one step (a plain `#[task]`, an awaited
//!   expression). Nothing started here is journaled separately; the step is atomic.
//! * [`Ambient::None`] — outside any workflow: tasks are plain functions.
//!
//! The ambient is set around every poll by [`InAmbient`] and restored afterwards, so it
//! follows the future across threads of a multi-threaded runtime. It does not follow
//! `tokio::spawn`, which polls elsewhere.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::frame::Frame;

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
