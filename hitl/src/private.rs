//! Support code for what `#[task]` and `#[workflow]` generate. Not public API: the macros
//! call these items by absolute path (`::hitl::__private::…`) and nothing else should.
//!
//! Everything here is ordinary Rust so the generated code stays short and the logic is
//! unit-tested here rather than in token streams.
//!
//! Only re-exports and the autoref dispatch live here: the executor is `journal::exec`, the
//! codecs `journal::codec`, the workflow glue (input coding, body wrappers) `workflow`.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;

pub use serde;
pub use serde_json;
pub use serde_json::Value;

pub use crate::workflow::glue::{
    ArgCodec, InputBuilder, InputReader, WorkflowError, async_site, await_site, fallible_workflow, workflow,
};
pub use crate::workflow::{SiteEntry, WorkflowDefinition, WorkflowFuture, WorkflowResult};

use crate::context::TaskContext;
use crate::error::{Error, Result};
use crate::journal::{Ambient, Position};
use crate::model::step::StepKind;

pub use crate::journal::codec::*;
pub use crate::journal::exec::*;

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
        run_step_with(
            name,
            position,
            StepKind::Await,
            (0, 0),
            future.into_future(),
            self.0,
        )
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
}
