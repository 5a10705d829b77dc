//! The step executor: task, orchestration and sync-activity steps, retries, halting a run,
//! and scoped `async` blocks.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use tracing::Instrument;

pub use serde;

use super::codec::*;
use crate::error::{Error, Result};
use crate::journal::{Ambient, InAmbient, Position, Step, with_ambient};
use crate::model::step::{StepKind, StepRecord};

// ---------------------------------------------------------------------------------------
// Steps that journal themselves: task calls, context calls, async blocks
// ---------------------------------------------------------------------------------------

/// Futures that take care of their own journaling; an `.await` of one in an orchestration
/// body is left as it is instead of being wrapped into a step.
pub trait SelfJournaling {}

/// The future returned by a `#[task]` fn.
#[must_use = "a task does nothing unless `.await`ed"]
pub struct TaskFuture<F>(pub(crate) Pin<Box<F>>);

impl<F: Future> Future for TaskFuture<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl<F> SelfJournaling for TaskFuture<F> {}

impl<F> std::fmt::Debug for TaskFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskFuture")
    }
}

/// A plain `#[task]` returning a value: an activity whose every output is journaled.
#[track_caller]
pub fn activity<F>(
    name: &'static str,
    input_hash: u64,
    types: u32,
    body: F,
) -> TaskFuture<impl Future<Output = F::Output>>
where
    F: Future,
    F::Output: Journaled,
{
    TaskFuture(Box::pin(run_step::<Plain, F>(
        name,
        Position::caller(),
        StepKind::Task,
        input_hash,
        types,
        body,
    )))
}

/// A plain `#[task]` returning `Result`: an activity whose `Ok` outputs are journaled.
#[track_caller]
pub fn fallible_activity<F, T, E>(
    name: &'static str,
    input_hash: u64,
    types: u32,
    body: F,
) -> TaskFuture<impl Future<Output = Result<T, E>>>
where
    F: Future<Output = Result<T, E>>,
    T: Journaled,
{
    TaskFuture(Box::pin(run_step::<Fallible, F>(
        name,
        Position::caller(),
        StepKind::Task,
        input_hash,
        types,
        body,
    )))
}

/// A `#[task(inject_context)]` returning a value: a nested orchestration.
#[track_caller]
pub fn orchestration<F>(
    name: &'static str,
    input_hash: u64,
    types: u32,
    body: F,
) -> TaskFuture<impl Future<Output = F::Output>>
where
    F: Future,
    F::Output: Journaled,
{
    TaskFuture(Box::pin(run_step::<Plain, F>(
        name,
        Position::caller(),
        StepKind::Orchestration,
        input_hash,
        types,
        body,
    )))
}

/// A `#[task(inject_context)]` returning `Result`.
#[track_caller]
pub fn fallible_orchestration<F, T, E>(
    name: &'static str,
    input_hash: u64,
    types: u32,
    body: F,
) -> TaskFuture<impl Future<Output = Result<T, E>>>
where
    F: Future<Output = Result<T, E>>,
    T: Journaled,
{
    TaskFuture(Box::pin(run_step::<Fallible, F>(
        name,
        Position::caller(),
        StepKind::Orchestration,
        input_hash,
        types,
        body,
    )))
}

/// Runs one step: replays it from the journal, or executes `body` and journals its output.
pub(crate) fn run_step<C, F>(
    name: &str,
    position: Position,
    kind: StepKind,
    input_hash: u64,
    types: u32,
    body: F,
) -> impl Future<Output = F::Output>
where
    F: Future,
    C: Codec<F::Output>,
{
    run_step_with(name, position, kind, (input_hash, types), body, Codecs::of::<C>())
}

/// [`run_step`] with the codec as values.
pub(crate) async fn run_step_with<F: Future>(
    name: &str,
    position: Position,
    kind: StepKind,
    (input_hash, types): (u64, u32),
    body: F,
    codecs: Codecs<F::Output>,
) -> F::Output {
    let Some(frame) = Ambient::frame() else {
        // Outside a workflow, or inside an activity: a plain call.
        return body.await;
    };
    let Some((step, journaled)) = frame.begin(name, position, kind, input_hash, types) else {
        return halt().await;
    };
    if let Some(record) = journaled {
        return replay_output(&step, record, codecs).await;
    }
    if matches!(kind, StepKind::Task | StepKind::Named)
        && let Some(mocked) = executing(&step, name)
    {
        return match mocked_output(&step, name, mocked, codecs.decode) {
            Some(output) => {
                let _busy = step.run().busy();
                journal_output(&step, &output, codecs).await;
                output
            }
            None => halt().await,
        };
    }
    let ambient = match kind {
        StepKind::Orchestration => Ambient::Orchestration(frame.child_of(&step)),
        _ => Ambient::Activity(step.idempotency_key()),
    };
    let span = tracing::debug_span!("hitl.step", step = %step.id);
    // An executing activity keeps the run from pausing; a nested orchestration does not
    // (its own steps count).
    let _busy = (kind != StepKind::Orchestration).then(|| frame.run.busy());
    let output = InAmbient::new(ambient, body).instrument(span).await;
    journal_output(&step, &output, codecs).await;
    output
}

/// Tells the test kit, if there is one, that the activity executes instead of replaying;
/// returns the output its mock gives instead of the body.
fn executing(step: &Step, task: &str) -> Option<Value> {
    let run = step.run();
    run.services.hooks.as_ref()?.executing(task, &run.id, &step.id)
}

/// A mock's output decoded as the task's; `None` (the run failed) when it does not decode.
fn mocked_output<O>(
    step: &Step,
    task: &str,
    value: Value,
    decode: fn(Value) -> serde_json::Result<O>,
) -> Option<O> {
    match decode(value) {
        Ok(output) => Some(output),
        Err(source) => {
            let error = Error::Decode {
                key: format!("the output the mock of task `{task}` returned"),
                source,
            };
            step.run().fail(&error, Some(step));
            None
        }
    }
}

async fn replay_output<O>(step: &Step, record: StepRecord, codecs: Codecs<O>) -> O {
    let line = record.line;
    match (codecs.decode)(record.output) {
        Ok(output) => output,
        Err(error) => {
            step.undecodable(line, error);
            halt().await
        }
    }
}

async fn journal_output<O>(step: &Step, output: &O, codecs: Codecs<O>) {
    match (codecs.encode)(output) {
        None => step.note_error(),
        Some(Ok(value)) => {
            if !step.complete(value).await {
                halt::<()>().await;
            }
        }
        Some(Err(source)) => {
            let error = Error::Encode {
                what: format!("the output of step `{}`", step.id),
                source,
            };
            step.run().fail(&error, Some(step));
            halt::<()>().await;
        }
    }
}

/// Never resolves: used once a run has been stopped; the engine drops the future.
pub(crate) async fn halt<T>() -> T {
    std::future::pending().await
}

/// Retries an `Err` up to `retries` times with exponential backoff (100 ms, 200 ms, …, at
/// most 10 s) before returning it; `#[task(retries = n)]`.
pub async fn retrying<Fac, Fut, T, E>(task: &'static str, retries: u32, mut attempt: Fac) -> Result<T, E>
where
    Fac: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(100);
    let mut failures = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if failures >= retries => return Err(error),
            Err(_) => {
                failures += 1;
                tracing::warn!(
                    task,
                    attempt = failures,
                    "task returned an error; retrying after {delay:?}"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// A sync `#[task]` returning a value.
#[track_caller]
pub fn sync_activity<R: Journaled>(
    name: &'static str,
    input_hash: u64,
    types: u32,
    body: impl FnOnce() -> R,
) -> R {
    run_sync_step::<Plain, R>(name, (input_hash, types), body)
}

/// A sync `#[task]` returning `Result`.
#[track_caller]
pub fn fallible_sync_activity<T: Journaled, E>(
    name: &'static str,
    input_hash: u64,
    types: u32,
    body: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    run_sync_step::<Fallible, Result<T, E>>(name, (input_hash, types), body)
}

#[track_caller]
fn run_sync_step<C: Codec<R>, R>(
    name: &'static str,
    (input_hash, types): (u64, u32),
    body: impl FnOnce() -> R,
) -> R {
    let position = Position::caller();
    let Some(frame) = Ambient::frame() else {
        return body();
    };
    let Some((step, journaled)) = frame.begin(name, position, StepKind::Task, input_hash, types) else {
        halt_sync()
    };
    if let Some(record) = journaled {
        let line = record.line;
        return match C::decode(record.output) {
            Ok(output) => output,
            Err(error) => {
                step.undecodable(line, error);
                halt_sync()
            }
        };
    }
    let output = match executing(&step, name) {
        Some(mocked) => match mocked_output(&step, name, mocked, C::decode) {
            Some(output) => output,
            None => halt_sync(),
        },
        None => with_ambient(Ambient::Activity(step.idempotency_key()), body),
    };
    match C::encode(&output) {
        None => step.note_error(),
        Some(Ok(value)) => step.complete_sync(value),
        Some(Err(source)) => {
            let error = Error::Encode {
                what: format!("the output of step `{}`", step.id),
                source,
            };
            step.run().fail(&error, Some(&step));
            halt_sync()
        }
    }
    output
}

/// The unwind payload used to leave sync code once the run has been stopped.
#[derive(Debug)]
pub(crate) struct RunHalted;

/// Leaves sync code of a stopped run; the engine recognises the payload.
pub(crate) fn halt_sync() -> ! {
    std::panic::resume_unwind(Box::new(RunHalted))
}

/// An `async` block of an orchestration body, polled in its own child scope.
#[must_use = "futures do nothing unless `.await`ed"]
pub struct Scoped<F>(InAmbient<F>);

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<F> SelfJournaling for Scoped<F> {}

/// The scope of an `async` block of an orchestration body: `scope("async0").run(async { … })`.
#[derive(Debug, Clone, Copy)]
pub struct Scope(&'static str);

/// The scope named `name` (`async0`, …), for [`Scope::run`].
pub const fn scope(name: &'static str) -> Scope {
    Scope(name)
}

impl Scope {
    /// Gives `block` this scope, fixed where the block is created.
    pub fn run<F: Future>(self, block: F) -> Scoped<F> {
        let ambient = match Ambient::current() {
            Ambient::Orchestration(frame) => Ambient::Orchestration(frame.child(self.0)),
            other => other,
        };
        Scoped(InAmbient::new(ambient, block))
    }
}
