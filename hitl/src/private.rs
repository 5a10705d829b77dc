//! Support code for what `#[task]` and `#[workflow]` generate. Not public API: the macros
//! call these items by absolute path (`::hitl::__private::…`) and nothing else should.
//!
//! Everything here is ordinary Rust so the generated code stays short and the logic is
//! unit-tested here rather than in token streams.

use std::fmt::Display;
use std::future::{Future, IntoFuture};
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Map;
use tracing::Instrument;

pub use serde;
pub use serde_json;
pub use serde_json::Value;

pub use crate::workflow::{SiteEntry, WorkflowDefinition, WorkflowFuture, WorkflowResult};

use crate::context::TaskContext;
use crate::error::{Error, Result};
use crate::replay::{Ambient, InAmbient, Position, Step, with_ambient};
use crate::store::{StepKind, StepRecord};

// ---------------------------------------------------------------------------------------
// What may be journaled
// ---------------------------------------------------------------------------------------

/// A value a step may return: it is written to the journal and read back on replay.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be journaled: a step's output must implement `Serialize` and `Deserialize`",
    label = "this step's output is journaled so that replay can skip it, but `{Self}` is not serializable",
    note = "move the work into a plain `#[task]` that returns data (derive `serde::Serialize` and `serde::Deserialize` on it)",
    note = "or wrap the future in `hitl::transient(…)` to run it again on every replay instead of journaling it"
)]
pub trait Journaled: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Journaled for T {}

/// A task argument: hashed into the step's input fingerprint.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a task argument: it must implement `Serialize`",
    label = "task arguments are hashed to detect a changed input on replay",
    note = "derive `serde::Serialize` on the type, or pass a serializable id and load the value inside the task"
)]
pub trait TaskArgument: Serialize {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + ?Sized> TaskArgument for T {}

/// A workflow argument: stored as JSON with the run.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a workflow argument: it must implement `Serialize` and `Deserialize`",
    label = "workflow arguments are stored as JSON so a run can resume in another process",
    note = "derive `serde::Serialize` and `serde::Deserialize` on the type"
)]
pub trait WorkflowArgument: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> WorkflowArgument for T {}

/// How a step's output is journaled: every value ([`Plain`]) or only `Ok` ([`Fallible`]).
pub trait Codec<O> {
    /// The JSON to journal, or `None` for an output that must not be journaled (an `Err`).
    fn encode(output: &O) -> Option<serde_json::Result<Value>>;
    /// Reads a journaled output back.
    fn decode(value: Value) -> serde_json::Result<O>;
}

/// Journals every output.
#[derive(Debug)]
pub struct Plain;

/// Journals `Ok` outputs only; an `Err` is returned and the step runs again next time.
#[derive(Debug)]
pub struct Fallible;

impl<T: Journaled> Codec<T> for Plain {
    fn encode(output: &T) -> Option<serde_json::Result<Value>> {
        Some(serde_json::to_value(output))
    }
    fn decode(value: Value) -> serde_json::Result<T> {
        serde_json::from_value(value)
    }
}

impl<T: Journaled, E> Codec<Result<T, E>> for Fallible {
    fn encode(output: &Result<T, E>) -> Option<serde_json::Result<Value>> {
        output.as_ref().ok().map(serde_json::to_value)
    }
    fn decode(value: Value) -> serde_json::Result<Result<T, E>> {
        serde_json::from_value(value).map(Ok)
    }
}

/// Implemented by `Result`, to tell fallible outputs apart.
pub trait IsResult {
    /// The `Ok` type.
    type Ok;
    /// The `Err` type.
    type Err;
}

impl<T, E> IsResult for Result<T, E> {
    type Ok = T;
    type Err = E;
}

/// A [`Codec`] as values, so that a future journaling with it carries no trait bound: the
/// bound is checked once, where the codec is made.
pub struct Codecs<O> {
    encode: fn(&O) -> Option<serde_json::Result<Value>>,
    decode: fn(Value) -> serde_json::Result<O>,
}

impl<O> Codecs<O> {
    fn of<C: Codec<O>>() -> Self {
        Codecs {
            encode: C::encode,
            decode: C::decode,
        }
    }
}

impl<O> Clone for Codecs<O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<O> Copy for Codecs<O> {}

impl<O> std::fmt::Debug for Codecs<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Codecs")
    }
}

// ---------------------------------------------------------------------------------------
// Input fingerprints
// ---------------------------------------------------------------------------------------

/// Hashes task arguments (FNV-1a over their JSON) into the step's input fingerprint.
#[derive(Debug)]
pub struct InputHasher(u64);

impl Default for InputHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl InputHasher {
    /// A hasher with nothing added.
    pub fn new() -> Self {
        InputHasher(0xcbf2_9ce4_8422_2325)
    }

    /// Adds one argument.
    pub fn add<T: TaskArgument + ?Sized>(&mut self, argument: &T) {
        // An argument whose `Serialize` fails hashes what was written before the failure;
        // the task then sees the same failure when it serializes the value itself.
        let _ = serde_json::to_writer(&mut *self, argument);
        self.write_bytes(&[0xff]);
    }

    /// Adds one argument, by value: `InputHasher::new().arg(&a).arg(&b).finish()`.
    pub fn arg<T: TaskArgument + ?Sized>(mut self, argument: &T) -> Self {
        self.add(argument);
        self
    }

    /// The fingerprint; never 0, which means "no input".
    pub fn finish(&self) -> u64 {
        self.0.max(1)
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl io::Write for InputHasher {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_bytes(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Steps that journal themselves: task calls, context calls, async blocks
// ---------------------------------------------------------------------------------------

/// Futures that take care of their own journaling; an `.await` of one in an orchestration
/// body is left as it is instead of being wrapped into a step.
pub trait SelfJournaling {}

/// The future returned by a `#[task]` fn.
#[must_use = "a task does nothing unless `.await`ed"]
pub struct TaskFuture<F>(Pin<Box<F>>);

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
        body,
    )))
}

/// A plain `#[task]` returning `Result`: an activity whose `Ok` outputs are journaled.
#[track_caller]
pub fn fallible_activity<F, T, E>(
    name: &'static str,
    input_hash: u64,
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
        body,
    )))
}

/// A `#[task(inject_context)]` returning a value: a nested orchestration.
#[track_caller]
pub fn orchestration<F>(
    name: &'static str,
    input_hash: u64,
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
        body,
    )))
}

/// A `#[task(inject_context)]` returning `Result`.
#[track_caller]
pub fn fallible_orchestration<F, T, E>(
    name: &'static str,
    input_hash: u64,
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
        body,
    )))
}

/// Runs one step: replays it from the journal, or executes `body` and journals its output.
pub(crate) fn run_step<C, F>(
    name: &str,
    position: Position,
    kind: StepKind,
    input_hash: u64,
    body: F,
) -> impl Future<Output = F::Output>
where
    F: Future,
    C: Codec<F::Output>,
{
    run_step_with(name, position, kind, input_hash, body, Codecs::of::<C>())
}

/// [`run_step`] with the codec as values.
async fn run_step_with<F: Future>(
    name: &str,
    position: Position,
    kind: StepKind,
    input_hash: u64,
    body: F,
    codecs: Codecs<F::Output>,
) -> F::Output {
    let Some(frame) = Ambient::frame() else {
        // Outside a workflow, or inside an activity: a plain call.
        return body.await;
    };
    let Some((step, journaled)) = frame.begin(name, position, kind, input_hash) else {
        return halt().await;
    };
    if let Some(record) = journaled {
        return replay_output(&step, record, codecs).await;
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

async fn replay_output<O>(step: &Step, record: StepRecord, codecs: Codecs<O>) -> O {
    match (codecs.decode)(record.output) {
        Ok(output) => output,
        Err(error) => {
            let error = step.nondeterminism(format!(
                "the journaled output no longer decodes as the step's output type ({error})"
            ));
            step.run().fail(&error, Some(step));
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
pub fn sync_activity<R: Journaled>(name: &'static str, input_hash: u64, body: impl FnOnce() -> R) -> R {
    run_sync_step::<Plain, R>(name, input_hash, body)
}

/// A sync `#[task]` returning `Result`.
#[track_caller]
pub fn fallible_sync_activity<T: Journaled, E>(
    name: &'static str,
    input_hash: u64,
    body: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    run_sync_step::<Fallible, Result<T, E>>(name, input_hash, body)
}

#[track_caller]
fn run_sync_step<C: Codec<R>, R>(name: &'static str, input_hash: u64, body: impl FnOnce() -> R) -> R {
    let position = Position::caller();
    let Some(frame) = Ambient::frame() else {
        return body();
    };
    let Some((step, journaled)) = frame.begin(name, position, StepKind::Task, input_hash) else {
        halt_sync()
    };
    if let Some(record) = journaled {
        return match C::decode(record.output) {
            Ok(output) => output,
            Err(error) => {
                let error = step.nondeterminism(format!(
                    "the journaled output no longer decodes as the step's output type ({error})"
                ));
                step.run().fail(&error, Some(&step));
                halt_sync()
            }
        };
    }
    let output = with_ambient(Ambient::Activity(step.idempotency_key()), body);
    match C::encode(&output) {
        None => step.note_error(),
        Some(Ok(value)) => {
            if !step.complete_blocking(value, true) {
                halt_sync()
            }
        }
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

// ---------------------------------------------------------------------------------------
// `.await` of anything else: autoref specialization picks how to journal it
// ---------------------------------------------------------------------------------------

/// The method-resolution traits a rewritten orchestration body needs in scope, imported
/// anonymously with one `use ::hitl::__private::steps::*;`.
pub mod steps {
    pub use super::{
        KindFallible as _, KindPlain as _, KindSelfJournaling as _, NoContextError as _, NoContextPanic as _,
    };
}

/// A row of a workflow's step-site table: an `.await` named `name` on `line`.
pub const fn await_site(name: &'static str, line: u32) -> SiteEntry {
    SiteEntry {
        kind: "await",
        name,
        line,
    }
}

/// A row of a workflow's step-site table: the `async` block (scope) `name` on `line`.
pub const fn async_site(name: &'static str, line: u32) -> SiteEntry {
    SiteEntry {
        kind: "async",
        name,
        line,
    }
}

/// Carries the type of an awaited future (or of a task's output) to method resolution.
#[derive(Debug)]
pub struct Probe<F>(PhantomData<fn() -> F>);

/// The probe for `future`'s type, three references deep so that method resolution tries
/// [`KindSelfJournaling`], then [`KindFallible`], then [`KindPlain`] (autoref
/// specialization). A step is `probe(&future).kind().step("name", future).await`.
pub fn probe<F>(_future: &F) -> &&&Probe<F> {
    &&&Probe(PhantomData)
}

/// The probe for the type `O`, two references deep: `probe_type::<O>().no_context("name")`
/// picks [`NoContextError`] when `O` is a `Result` whose error converts from [`Error`], else
/// [`NoContextPanic`].
pub fn probe_type<'a, O>() -> &'a &'a Probe<O> {
    &&Probe(PhantomData)
}

/// Chosen first: the future journals itself (a task call, a context call, an async block).
pub trait KindSelfJournaling {
    /// Picks [`SelfJournalingTag`].
    fn kind(&self) -> SelfJournalingTag {
        SelfJournalingTag
    }
}
impl<F: SelfJournaling> KindSelfJournaling for &&Probe<F> {}

/// Chosen second: the future's output is a `Result`; journal `Ok` only.
///
/// The serializability of `Ok` is checked here, once, so that a future that cannot be
/// journaled is reported once, at the user's expression.
pub trait KindFallible {
    /// The `Ok` type.
    type Ok;
    /// The `Err` type.
    type Err;
    /// Picks a [`JournalTag`] that journals `Ok` outputs.
    fn kind(&self) -> JournalTag<Result<Self::Ok, Self::Err>>
    where
        Self::Ok: Journaled,
    {
        JournalTag(Codecs::of::<Fallible>())
    }
}
impl<F: IntoFuture> KindFallible for &Probe<F>
where
    F::Output: IsResult,
{
    type Ok = <F::Output as IsResult>::Ok;
    type Err = <F::Output as IsResult>::Err;
}

/// Chosen last: journal the output whatever it is (it must be serializable).
pub trait KindPlain {
    /// The awaited expression's type.
    type Future;
    /// Picks a [`JournalTag`] that journals every output.
    fn kind(&self) -> JournalTag<<Self::Future as IntoFuture>::Output>
    where
        Self::Future: IntoFuture,
        <Self::Future as IntoFuture>::Output: Journaled,
    {
        JournalTag(Codecs::of::<Plain>())
    }
}
impl<F> KindPlain for Probe<F> {
    type Future = F;
}

/// The awaited future journals itself.
#[derive(Debug)]
pub struct SelfJournalingTag;

/// The awaited future is journaled as one step, with the codec [`KindFallible`] or
/// [`KindPlain`] chose.
#[derive(Debug)]
pub struct JournalTag<O>(Codecs<O>);

impl SelfJournalingTag {
    /// Leaves the future as it is.
    pub fn step<F>(self, _name: &'static str, future: F) -> F {
        future
    }
}

impl<O> JournalTag<O> {
    /// Journals the future as one step named `name`.
    #[track_caller]
    pub fn step<F: IntoFuture<Output = O>>(self, name: &'static str, future: F) -> impl Future<Output = O> {
        let position = Position::caller();
        run_step_with(name, position, StepKind::Await, 0, future.into_future(), self.0)
    }
}

// ---------------------------------------------------------------------------------------
// Context injection and workflows
// ---------------------------------------------------------------------------------------

/// The context of the running workflow, for `inject_context` bodies; `None` outside one
/// (called directly, from a plain `#[task]`, or from a spawned tokio task).
pub fn context() -> Option<TaskContext> {
    Ambient::frame().map(TaskContext::new)
}

/// Chosen first: an `inject_context` task returning `Result<T, E>` with `E: From<Error>`
/// returns `Err(Error::NoContext)` when called outside a workflow.
pub trait NoContextError<T, E> {
    /// `Err(E::from(Error::NoContext { .. }))`.
    fn no_context(&self, task: &'static str) -> Result<T, E>;
}
impl<T, E: From<Error>> NoContextError<T, E> for &Probe<Result<T, E>> {
    fn no_context(&self, task: &'static str) -> Result<T, E> {
        Err(E::from(Error::NoContext {
            task: task.to_owned(),
        }))
    }
}

/// Chosen last: an output that cannot carry [`Error::NoContext`]; panics with the same
/// message.
pub trait NoContextPanic<O> {
    /// Panics: there is no value to return.
    fn no_context(&self, task: &'static str) -> O;
}
impl<O> NoContextPanic<O> for Probe<O> {
    #[track_caller]
    fn no_context(&self, task: &'static str) -> O {
        panic!(
            "{}",
            Error::NoContext {
                task: task.to_owned()
            }
        )
    }
}

/// Wraps a workflow body returning a plain value.
pub fn workflow<F>(body: F) -> Result<WorkflowFuture>
where
    F: Future + Send + 'static,
    F::Output: Serialize,
{
    Ok(Box::pin(async move { encode_output(&body.await) }))
}

/// Wraps a workflow body returning `Result`; an `Err` fails the run with `describe(&error)`
/// (`<E as WorkflowError>::describe`, its `Display`).
pub fn fallible_workflow<F, T, E>(body: F, describe: fn(&E) -> String) -> Result<WorkflowFuture>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Serialize,
    E: 'static,
{
    Ok(Box::pin(async move {
        match body.await {
            Ok(value) => encode_output(&value),
            Err(error) => Err(describe(&error)),
        }
    }))
}

/// The error type of a workflow: a failed run records its `Display` text.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a workflow's error type: it must implement `Display`",
    label = "a failed run records its error's `Display` text",
    note = "implement `std::fmt::Display` for `{Self}` (for example with `#[derive(thiserror::Error)]` and `#[error(\"…\")]`)"
)]
pub trait WorkflowError {
    /// The text recorded in the failed run.
    fn describe(&self) -> String;
}

#[diagnostic::do_not_recommend]
impl<E: Display + ?Sized> WorkflowError for E {
    fn describe(&self) -> String {
        self.to_string()
    }
}

fn encode_output<T: Serialize>(value: &T) -> WorkflowResult {
    serde_json::to_value(value)
        .map_err(|error| format!("the workflow's output could not be serialized: {error}"))
}

/// Builds a workflow's JSON input from its arguments:
/// `InputBuilder::new().arg("service", &input.0).finish()`; the first argument that fails
/// to serialize is the error.
#[derive(Debug)]
pub struct InputBuilder(Result<Map<String, Value>>);

impl Default for InputBuilder {
    fn default() -> Self {
        InputBuilder(Ok(Map::new()))
    }
}

impl InputBuilder {
    /// An empty input.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the argument `name`.
    pub fn arg<T: WorkflowArgument>(self, name: &str, value: &T) -> Self {
        InputBuilder(self.0.and_then(|mut fields| {
            let value = serde_json::to_value(value).map_err(|source| Error::Encode {
                what: format!("workflow argument `{name}`"),
                source,
            })?;
            fields.insert(name.to_owned(), value);
            Ok(fields)
        }))
    }

    /// The JSON object.
    pub fn finish(self) -> Result<Value> {
        self.0.map(Value::Object)
    }
}

/// Reads a workflow's arguments out of its JSON input, naming the field on any mismatch.
#[derive(Debug)]
pub struct InputReader {
    definition: &'static WorkflowDefinition,
    fields: Map<String, Value>,
}

impl InputReader {
    /// Checks that `input` is an object whose fields are all arguments of workflow `W`.
    pub fn of<W: crate::Workflow>(input: Value) -> Result<Self> {
        let definition = W::DEFINITION;
        let fields = match input {
            Value::Object(fields) => fields,
            Value::Null if definition.params.is_empty() => Map::new(),
            other => {
                return Err(definition.invalid_input(format!("expected a JSON object, got `{other}`")));
            }
        };
        if let Some(unknown) = fields
            .keys()
            .find(|key| !definition.params.contains(&key.as_str()))
        {
            return Err(definition.invalid_input(format!("unknown field `{unknown}`")));
        }
        Ok(InputReader { definition, fields })
    }

    /// Reads the argument `name`.
    pub fn arg<T: WorkflowArgument>(&self, name: &str) -> Result<T> {
        let value = self
            .fields
            .get(name)
            .ok_or_else(|| self.definition.invalid_input(format!("missing field `{name}`")))?;
        T::deserialize(value)
            .map_err(|error| self.definition.invalid_input(format!("field `{name}`: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::steps::*;
    use super::*;

    #[test]
    fn the_probe_picks_self_journaling_then_fallible_then_plain() {
        let task = TaskFuture(Box::pin(async { 1 }));
        let _: SelfJournalingTag = probe(&task).kind();
        let fallible = async { Ok::<u32, String>(1) };
        let tag: JournalTag<Result<u32, String>> = probe(&fallible).kind();
        assert!((tag.0.encode)(&Err("not journaled".into())).is_none());
        assert!((tag.0.encode)(&Ok(1)).is_some());
        let plain = async { 1 };
        let _: JournalTag<u32> = probe(&plain).kind();
    }

    #[test]
    fn no_context_is_an_error_when_the_output_can_carry_it() {
        let output: Result<u32, Error> = probe_type::<Result<u32, Error>>().no_context("deploy");
        assert!(matches!(output, Err(Error::NoContext { task }) if task == "deploy"));
        let panicked = std::panic::catch_unwind(|| probe_type::<u32>().no_context("deploy"));
        let message = panicked.unwrap_err();
        let message = message.downcast_ref::<String>().unwrap();
        assert!(message.contains("`deploy` uses `inject_context`"), "{message}");
    }

    #[test]
    fn chained_arguments_hash_like_added_ones() {
        let mut added = InputHasher::new();
        added.add(&"a");
        added.add(&2);
        assert_eq!(InputHasher::new().arg(&"a").arg(&2).finish(), added.finish());
        assert_ne!(InputHasher::new().arg(&2).arg(&"a").finish(), added.finish());
    }

    #[test]
    fn a_workflow_error_is_described_by_its_display() {
        let describe: fn(&std::io::Error) -> String = <std::io::Error as WorkflowError>::describe;
        assert_eq!(describe(&std::io::Error::other("down")), "down");
    }
}
