//! Attribute macros for [hitl](https://docs.rs/hitl): `#[task]` and `#[workflow]`.
//!
//! Use them through `hitl` (`use hitl::prelude::*;`); the generated code refers to
//! `::hitl::__private` only. Each macro is parse → validate → expand:
//! `args` and `item` check everything and point errors at the offending token; `rewrite`
//! turns orchestration bodies into journaled steps; `lint` rejects nondeterminism; `expand`
//! only generates tokens.

mod args;
mod expand;
mod item;
mod lint;
mod rewrite;

#[cfg(test)]
mod snapshots;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;

/// Marks a unit of work: a step of a workflow.
///
/// A **plain** `#[task]` (async or sync) is an *activity*: when called from a running
/// workflow its output is journaled when it returns, and replays return the journaled output
/// without running it. Its own body is ordinary Rust, free to await anything. If the process
/// dies inside it, it runs again from its first line — use `hitl::idempotency_key()` with
/// external APIs. Called outside a workflow it is a plain function call.
///
/// `#[task(inject_context)]` makes the task an *orchestration*: its first parameter
/// `ctx: &TaskContext` is supplied by the engine (callers never pass it), and its body is
/// replayed step by step like a workflow body — every task call and `.await` in it is a
/// journaled step — so it can ask a human, sleep durably or cancel.
///
/// Arguments: `inject_context`, `name = "…"` (the step name; default the fn's name),
/// `retries = n` (retry an `Err` n times with exponential backoff from 100 ms; the
/// arguments must be `Clone`).
///
/// Outputs must be `Serialize + Deserialize`; for `Result<T, E>` only `Ok(T)` is journaled
/// (`E` need not be serializable) and an `Err` runs again next time. Arguments must be
/// `Serialize`: they are hashed, and a replayed step whose input changed fails the run with
/// a `NonDeterminism` error.
///
/// # What it generates
///
/// ```ignore
/// #[task]
/// async fn deploy(plan: Plan) -> Result<DeploymentId, DeployError> { body }
///
/// // becomes
///
/// fn deploy(plan: Plan) -> ::hitl::__private::TaskFuture<impl Future<Output = Result<DeploymentId, DeployError>>> {
///     static __HITL_SITE: ::hitl::__private::Site = Site { name: "deploy", file: file!(), line: line!() };
///     let __hitl_input = { let mut h = InputHasher::new(); h.add(&plan); h.finish() };
///     ::hitl::__private::fallible_activity(&__HITL_SITE, __hitl_input, async move {
///         let __hitl_ret: Result<DeploymentId, DeployError> = { body };
///         __hitl_ret
///     })
/// }
/// ```
///
/// `cargo expand` shows exactly this.
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_task(args.into(), item.into()).into()
}

/// Marks an orchestration the engine runs durably.
///
/// The fn becomes a unit struct of the same name — the value you pass to
/// `Engine::builder().register(..)` and `engine.start(.., (args,))` — implementing
/// `hitl::Workflow`, with the body kept as the associated fn `run`. The body is replayed:
/// every task call, every other `.await` (in the body, in `async` blocks and closures, and
/// in the arguments of `join!`/`try_join!`/`select!`) is a journaled step, each `async`
/// block in a scope of its own. An awaited value that cannot be serialized is a compile
/// error that names the fixes. Common nondeterministic calls (`SystemTime::now`, `rand`,
/// `tokio::spawn`, `std::fs`, …) are compile errors naming the replay-safe replacement.
///
/// Arguments: `name = "…"` (the registered name; default the fn's name) and
/// `inject_context` (take `ctx: &TaskContext` first).
///
/// # What it generates
///
/// ```ignore
/// #[workflow]
/// async fn release(service: String) -> Result<DeploymentId, DeployError> {
///     let plan = build_plan(service).await?;
///     deploy(plan).await
/// }
///
/// // becomes
///
/// #[derive(Clone, Copy, Debug, Default)]
/// struct release;
///
/// impl release {
///     async fn run(service: String) -> Result<DeploymentId, DeployError> {
///         let __hitl_ret: Result<DeploymentId, DeployError> = {
///             let plan = { /* step "build_plan(service)" */ }.await?;
///             { /* step "deploy(plan)" */ }.await
///         };
///         __hitl_ret
///     }
/// }
///
/// const _: () = {
///     impl ::hitl::Workflow for release {
///         type Input = (String,);
///         type Output = DeploymentId;
///         const DEFINITION: &'static WorkflowDefinition = &WorkflowDefinition {
///             name: "release", params: &["service"], sites: &[/* the two awaits */],
///             fingerprint: "…", file: file!(),
///         };
///         fn encode_input(input: (String,)) -> hitl::Result<Value> { /* {"service": …} */ }
///         fn start(input: Value) -> hitl::Result<WorkflowFuture> { /* decode, run */ }
///     }
/// };
/// ```
///
/// where each step is
///
/// ```ignore
/// {
///     use ::hitl::__private::{KindFallible as _, KindPlain as _, KindSelfJournaling as _};
///     static __HITL_SITE: Site = Site { name: "deploy(plan)", file: file!(), line: line!() };
///     let __hitl_future = ::hitl::__private::into_future(deploy(plan));
///     (&&&Probe::new(&__hitl_future)).__hitl_kind().step(&__HITL_SITE, __hitl_future).await
/// }
/// ```
///
/// A task call journals itself, so for it `step` returns the future unchanged.
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_workflow(args.into(), item.into()).into()
}

pub(crate) fn expand_task(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let result = syn::parse2::<args::TaskArgs>(args).and_then(|args| {
        let parsed = item::parse(item.clone(), item::Macro::Task, args.inject_context)?;
        if let Some((retries, _)) = &args.retries {
            if !parsed.is_async() {
                return Err(syn::Error::new(*retries, "`retries` needs an async task; add the `async` keyword"));
            }
            if parsed.context.is_some() {
                return Err(syn::Error::new(
                    *retries,
                    "`retries` applies to plain tasks (activities); an `inject_context` task is replayed, retry the tasks it calls instead",
                ));
            }
        }
        if parsed.context.is_some() {
            lint::check(quote::ToTokens::to_token_stream(&parsed.block))?;
        }
        Ok(expand::task(args, parsed))
    });
    result.unwrap_or_else(|error| with_error(item, error))
}

pub(crate) fn expand_workflow(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let result = syn::parse2::<args::WorkflowArgs>(args).and_then(|args| {
        let parsed = item::parse(item.clone(), item::Macro::Workflow, args.inject_context)?;
        lint::check(quote::ToTokens::to_token_stream(&parsed.block))?;
        Ok(expand::workflow(args, parsed))
    });
    result.unwrap_or_else(|error| with_error(item, error))
}

/// The user's item unchanged plus the error, so callers and the IDE keep working and the
/// user sees one error, not a cascade.
fn with_error(item: TokenStream2, error: syn::Error) -> TokenStream2 {
    let mut tokens = item;
    tokens.extend(error.into_compile_error());
    tokens
}
