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
/// `#[task(inject_context)]` called outside a running workflow (directly, from a plain
/// `#[task]`, from `tokio::spawn`) has no context to give its body: when it returns
/// `Result<T, E>` with `E: From<hitl::Error>` (`hitl::Result`, `anyhow::Result`, an enum with a
/// `#[from] hitl::Error` variant) it returns `Err(hitl::Error::NoContext { .. })` without
/// running; any other return type cannot carry the error, and the call panics with the same
/// message.
///
/// A task call is a future: use its value with `.await` (rustc suggests it). In an
/// orchestration body, a task or context call statement without `.await` is a compile error,
/// not a warning, because it would silently never run.
///
/// # What it generates
///
/// ```ignore
/// #[task]
/// async fn deploy(plan: Plan) -> Result<DeploymentId, DeployError> { body }
///
/// // becomes
///
/// #[track_caller]
/// fn deploy(plan: Plan) -> impl Future<Output = Result<DeploymentId, DeployError>> + SelfJournaling {
///     let __hitl_input = ::hitl::__private::InputHasher::new().arg(&plan).finish();
///     let __hitl_body = async move {
///         #[allow(clippy::diverging_sub_expression)]
///         let __hitl_ret: Result<DeploymentId, DeployError> = { body };
///         #[allow(unreachable_code)] __hitl_ret
///     };
///     ::hitl::__private::fallible_activity("deploy", __hitl_input, 2695708515u32, __hitl_body)
/// }
/// ```
///
/// The number is a fingerprint of the argument and output types, journaled with each step of
/// the task: a run whose journaled step has other types than the code is blocked before it
/// replays, not replayed on them.
///
/// An `inject_context` task's body starts with
///
/// ```ignore
/// use ::hitl::__private::steps::*;
/// let Some(__hitl_context) = ::hitl::__private::context() else {
///     return ::hitl::__private::probe_type::<Result<DeploymentId, DeployError>>().no_context("deploy");
/// };
/// let ctx: &TaskContext = &__hitl_context;
/// ```
///
/// and its awaits are rewritten as in [`macro@workflow`].
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
/// Arguments: `name = "…"` (the registered name; default the fn's name),
/// `version = n` (from 1, the default: register a changed workflow as a new version beside
/// the old fn; runs stay on the version they started with, and a start by name takes the
/// newest) and `inject_context` (take `ctx: &TaskContext` first).
///
/// The output must be `Serialize`; for `Result<T, E>` the run's output is `T`, and `E` must
/// implement `Display`: a failed run records the error's text (a missing `Display` is
/// reported at `E` in the signature).
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
///         use ::hitl::__private::steps::*;
///         let __hitl_step = build_plan(service);
///         let __hitl_kind = ::hitl::__private::probe(&__hitl_step).kind();
///         let plan = __hitl_kind.step("build_plan(service)", __hitl_step).await?;
///         let __hitl_step = deploy(plan);
///         let __hitl_kind = ::hitl::__private::probe(&__hitl_step).kind();
///         __hitl_kind.step("deploy(plan)", __hitl_step).await
///     }
/// }
///
/// impl ::hitl::Workflow for release {
///     type Input = (String,);
///     type Output = DeploymentId;
///     const DEFINITION: &'static WorkflowDefinition = &WorkflowDefinition {
///         name: "release", version: 1, params: &["service"],
///         sites: &[await_site("build_plan(service)", line!()), await_site("deploy(plan)", line!())],
///         fingerprint: "…", file: file!(),
///     };
///     fn encode_input(__hitl_input: (String,)) -> hitl::Result<Value> {
///         InputBuilder::new().arg("service", &__hitl_input.0, ArgCodec::of()).finish()
///     }
///     fn start(input: Value) -> hitl::Result<WorkflowFuture> {
///         let __hitl_reader = InputReader::of::<Self>(input)?;
///         let service: String = __hitl_reader.arg("service", ArgCodec::of())?;
///         fallible_workflow(release::run(service), <DeployError as WorkflowError>::describe)
///     }
/// }
/// ```
///
/// Each awaited step is those three lines: the future, `probe(&future).kind()`, and
/// `kind.step("name", future).await`; a step nested inside an expression keeps them in a
/// block of its own (`{ let __hitl_step = …; …; __hitl_kind.step(…).await }`). Each `async`
/// block becomes `::hitl::__private::scope("async0").run(async { … })`.
/// `kind()` picks, by autoref specialization, how the future is journaled: a task or context
/// call journals itself (`step` returns it unchanged), a `Result` is journaled when `Ok`,
/// anything else as it is.
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_workflow(args.into(), item.into()).into()
}

pub(crate) fn expand_task(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    if syn::parse2::<syn::Item>(item.clone()).is_err() {
        return item;
    }
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
    if syn::parse2::<syn::Item>(item.clone()).is_err() {
        return item;
    }
    let result = syn::parse2::<args::WorkflowArgs>(args).and_then(|args| {
        let parsed = item::parse(item.clone(), item::Macro::Workflow, args.inject_context)?;
        lint::check(quote::ToTokens::to_token_stream(&parsed.block))?;
        Ok(expand::workflow(args, parsed))
    });
    result.unwrap_or_else(|error| with_error(item, error))
}

/// The user's item unchanged plus the error, so callers and the IDE keep working and the
/// user sees one error, not a cascade.
///
/// An item that does not parse (a syntax error in the body) is given back unchanged and
/// without a `compile_error!` (see `expand_task`): rustc reports the syntax error once, at
/// its token, as tracing-attributes does.
fn with_error(item: TokenStream2, error: syn::Error) -> TokenStream2 {
    let mut tokens = item;
    tokens.extend(error.into_compile_error());
    tokens
}
