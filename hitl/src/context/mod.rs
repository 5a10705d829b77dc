//! [`TaskContext`]: what an orchestration body can ask of the engine.
//!
//! Every method is replay-safe: its result is journaled as a step the first time and read
//! back on replay, so a resumed run sees the same time, the same random numbers, the same
//! channel values and the same timers as the first execution did.

mod feedback;
mod patch;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::{from_millis, to_millis};
use crate::error::{Error, Result};
use crate::journal::{Ambient, Frame, Position, Step};
use crate::journal::{
    Codec, Fallible, InputHasher, Journaled, Plain, SelfJournaling, halt, halt_sync, run_step,
};
use crate::model::step::{StepKind, StepRecord};

/// The running workflow, as seen from an orchestration body.
///
/// Get one by adding `inject_context` to `#[task]` or `#[workflow]` and taking
/// `ctx: &TaskContext` as the first parameter; callers never pass it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hitl::prelude::*;
///
/// #[workflow(inject_context)]
/// async fn reminder(ctx: &TaskContext, who: String) -> String {
///     ctx.sleep(Duration::from_millis(1)).await;         // a durable timer
///     let id = ctx.uuid();                                // the same on every replay
///     format!("{who}: reminder {id} from run {}", ctx.run_id())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
/// let engine = Engine::temporary().register(reminder).open().await?;
/// let run = engine.start(reminder, ("ada".to_string(),)).await?;
/// let text = run.wait().await?.completed().unwrap();
/// assert!(text.starts_with("ada: reminder "));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TaskContext {
    frame: Frame,
}

impl std::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("run_id", &self.run_id())
            .field("workflow", &self.workflow_name())
            .finish()
    }
}

/// The future of a context call; it journals itself.
#[must_use = "a context call does nothing unless `.await`ed (a durable sleep or a question would silently never happen); add `.await`"]
pub struct ContextFuture<F>(Pin<Box<F>>);

impl<F: Future> Future for ContextFuture<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl<F> SelfJournaling for ContextFuture<F> {}

impl<F> std::fmt::Debug for ContextFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContextFuture")
    }
}

pub(crate) fn context_future<F: Future>(future: F) -> ContextFuture<F> {
    ContextFuture(Box::pin(future))
}

impl TaskContext {
    pub(crate) fn new(frame: Frame) -> Self {
        TaskContext { frame }
    }

    /// The id of the running run.
    pub fn run_id(&self) -> &str {
        &self.frame.run.id
    }

    /// The registered name of the running workflow.
    pub fn workflow_name(&self) -> &str {
        self.frame.run.workflow
    }

    /// The frame of the code calling now: the scope of the `async` block being polled, if it
    /// belongs to this run, else the scope this context was made in.
    pub(crate) fn frame(&self) -> Frame {
        match Ambient::frame() {
            Some(frame) if std::sync::Arc::ptr_eq(&frame.run, &self.frame.run) => frame,
            _ => self.frame.clone(),
        }
    }

    /// Journals a value computed once, without a flush of its own (it has no side effect;
    /// the next durable step makes it durable).
    fn journaled_value<T: Journaled>(
        &self,
        name: &str,
        position: Position,
        compute: impl FnOnce() -> T,
    ) -> T {
        let frame = self.frame();
        let Some((step, journaled)) = frame.begin(name, position, StepKind::Value, 0, 0) else {
            halt_sync()
        };
        if let Some(record) = journaled {
            let line = record.line;
            return match serde_json::from_value(record.output) {
                Ok(value) => value,
                Err(error) => {
                    step.undecodable(line, error);
                    halt_sync()
                }
            };
        }
        let value = compute();
        let encoded = serde_json::to_value(&value).unwrap_or(Value::Null);
        step.complete_sync(encoded);
        value
    }

    /// The engine clock's current time, journaled: the same on every replay.
    #[track_caller]
    pub fn now(&self) -> SystemTime {
        let position = Position::caller();
        let clock = &self.frame.run.services.clock;
        let millis = self.journaled_value("now", position, || to_millis(clock.now()));
        from_millis(millis)
    }

    /// A random number, journaled: the same on every replay.
    #[track_caller]
    pub fn random(&self) -> u64 {
        let position = Position::caller();
        self.journaled_value("random", position, || {
            let bytes = *uuid::Uuid::new_v4().as_bytes();
            u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
        })
    }

    /// A random (v4) UUID, journaled: the same on every replay.
    #[track_caller]
    pub fn uuid(&self) -> uuid::Uuid {
        let position = Position::caller();
        self.journaled_value("uuid", position, uuid::Uuid::new_v4)
    }

    /// A durable timer: waits until `duration` after the first execution reached it, by the
    /// engine's clock. The deadline is journaled, so after a restart the run waits only for
    /// what is left.
    #[track_caller]
    pub fn sleep(&self, duration: Duration) -> ContextFuture<impl Future<Output = ()> + Send + use<>> {
        let position = Position::caller();
        let frame = self.frame();
        context_future(async move {
            let Some((step, journaled)) = frame.begin("sleep", position, StepKind::Sleep, 0, 0) else {
                return halt().await;
            };
            let clock = &frame.run.services.clock;
            let deadline = match journaled {
                Some(StepRecord {
                    finished_at: Some(_), ..
                }) => return,
                Some(record) => record.output["deadline"].as_u64().unwrap_or(0),
                None => {
                    let deadline = to_millis(clock.now() + duration);
                    if !step.complete_waiting(json!({ "deadline": deadline })).await {
                        return halt().await;
                    }
                    deadline
                }
            };
            frame.run.sleeping(&step.id, Some(deadline));
            clock.sleep_until(from_millis(deadline)).await;
            frame.run.sleeping(&step.id, None);
            if !step.complete(json!({ "deadline": deadline })).await {
                halt::<()>().await;
            }
        })
    }

    /// A durable key/value store scoped to this run (Graflow's channel).
    pub fn channel(&self) -> Channel {
        Channel {
            context: self.clone(),
        }
    }

    /// Cancels the run: it ends as `Cancelled` with `reason` whatever the body returns, and
    /// no later step runs. Always returns `Err(Error::Cancelled)`, so `?` leaves the body.
    pub fn cancel_workflow<R: Into<String>>(
        &self,
        reason: R,
    ) -> ContextFuture<impl Future<Output = Result<()>> + Send + use<R>> {
        let reason = reason.into();
        let run = self.frame.run.clone();
        context_future(async move {
            run.stop(crate::model::run::Stop::Cancelled(reason.clone()));
            Err(Error::Cancelled { reason })
        })
    }

    /// An explicitly named step: runs `future` once and journals its output.
    ///
    /// Use it for work you want named in history; in orchestration bodies the macro already
    /// journals every `.await`. See [`try_step`](Self::try_step) for `Result` outputs.
    #[track_caller]
    pub fn step<F>(&self, name: &str, future: F) -> ContextFuture<impl Future<Output = F::Output> + use<F>>
    where
        F: Future,
        F::Output: Journaled,
    {
        self.named_step::<Plain, F>(name, future)
    }

    /// Like [`step`](Self::step) for a fallible future: only `Ok` is journaled; an `Err` is
    /// returned and the step runs again next time.
    #[track_caller]
    pub fn try_step<F, T, E>(
        &self,
        name: &str,
        future: F,
    ) -> ContextFuture<impl Future<Output = Result<T, E>> + use<F, T, E>>
    where
        F: Future<Output = Result<T, E>>,
        T: Journaled,
    {
        self.named_step::<Fallible, F>(name, future)
    }

    #[track_caller]
    fn named_step<C: Codec<F::Output>, F: Future>(
        &self,
        name: &str,
        future: F,
    ) -> ContextFuture<impl Future<Output = F::Output> + use<C, F>> {
        let position = Position::caller();
        let name = name.to_owned();
        context_future(async move { run_step::<C, F>(&name, position, StepKind::Named, 0, 0, future).await })
    }
}

/// A run's durable key/value store; see [`TaskContext::channel`].
///
/// Reads and writes are steps: a replay reads the value the first execution read, even if a
/// later step changed it.
#[derive(Debug, Clone)]
pub struct Channel {
    context: TaskContext,
}

impl Channel {
    /// The value stored under `key`, if any.
    #[track_caller]
    pub fn get<T: Journaled>(
        &self,
        key: &str,
    ) -> ContextFuture<impl Future<Output = Result<Option<T>>> + use<T>> {
        let position = Position::caller();
        let frame = self.context.frame();
        let key = key.to_owned();
        context_future(async move {
            let name = format!("channel.get:{key}");
            let Some((step, journaled)) = frame.begin(&name, position, StepKind::Channel, 0, 0) else {
                return halt().await;
            };
            let value = match journaled {
                Some(record) => record.output,
                None => {
                    let run = &frame.run;
                    let value = run
                        .services
                        .store
                        .channel_value(&run.id, &key)
                        .await?
                        .unwrap_or(Value::Null);
                    if !step.complete(value.clone()).await {
                        return halt().await;
                    }
                    value
                }
            };
            decode_channel(&step, &key, value)
        })
    }

    /// Stores `value` under `key`.
    #[track_caller]
    pub fn set<T: Serialize>(
        &self,
        key: &str,
        value: T,
    ) -> ContextFuture<impl Future<Output = Result<()>> + use<T>> {
        let position = Position::caller();
        let frame = self.context.frame();
        let key = key.to_owned();
        context_future(async move {
            let value = serde_json::to_value(&value).map_err(|source| Error::Encode {
                what: format!("channel value `{key}`"),
                source,
            })?;
            let mut hasher = InputHasher::new();
            hasher.add(&value);
            let name = format!("channel.set:{key}");
            let Some((step, journaled)) = frame.begin(&name, position, StepKind::Channel, hasher.finish(), 0)
            else {
                return halt().await;
            };
            if journaled.is_none() && !step.complete_channel_set(&key, value).await {
                return halt().await;
            }
            Ok(())
        })
    }
}

fn decode_channel<T: Journaled>(step: &Step, key: &str, value: Value) -> Result<Option<T>> {
    if value.is_null() {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|source| Error::Decode {
            key: format!("channel `{key}` (step `{}`)", step.id),
            source,
        })
}

/// The idempotency key of the activity being executed: `run id/step id`.
///
/// Stable across retries (`#[task(retries = n)]`), replays and restarts, so an external API
/// that deduplicates by key sees one request even if the activity runs again after a crash.
/// `None` outside an activity (in an orchestration body, or outside any workflow).
///
/// # Examples
///
/// ```
/// use hitl::prelude::*;
///
/// #[task]
/// async fn charge(cents: u64) -> String {
///     // Send this along as the payment provider's `Idempotency-Key` header.
///     hitl::idempotency_key().unwrap_or_else(|| "not in a workflow".to_owned())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(charge(100).await, "not in a workflow");
/// # }
/// ```
pub fn idempotency_key() -> Option<String> {
    match Ambient::current() {
        Ambient::Activity(key) => Some(key.to_string()),
        _ => None,
    }
}

/// Runs `future` without journaling it: on replay it runs again.
///
/// For work in an orchestration body whose output cannot be serialized and that is safe to
/// repeat (building a client, reading configuration). Task calls inside it are plain calls.
///
/// # Examples
///
/// ```
/// # use hitl::prelude::*;
/// #[workflow]
/// async fn report() -> usize {
///     // A value that is not serializable, rebuilt on every replay.
///     let client = hitl::transient(async { std::sync::Arc::new(vec![1, 2, 3]) }).await;
///     client.len()
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
/// # let engine = Engine::temporary().register(report).open().await?;
/// # assert_eq!(engine.start(report, ()).await?.wait().await?.completed(), Some(3));
/// # Ok(()) }
/// ```
pub fn transient<F: std::future::IntoFuture>(future: F) -> ContextFuture<impl Future<Output = F::Output>> {
    let future = crate::journal::InAmbient::new(Ambient::None, future.into_future());
    context_future(async move {
        // Executing: the run does not pause meanwhile, and a check waits for it.
        let _busy = Ambient::frame().map(|frame| frame.run.busy());
        future.await
    })
}
