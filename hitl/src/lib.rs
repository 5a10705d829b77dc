//! Durable human-in-the-loop workflows.
//!
//! Write a workflow as ordinary `async fn`s. `#[task]` marks a unit of work, `#[workflow]` an
//! orchestration the engine runs. Every completed step is journaled in an embedded sled
//! database, so when the process dies — or, later, when a workflow waits days for a human —
//! the run resumes where it stopped and nothing that completed runs again.
//!
//! ```
//! use hitl::prelude::*;
//!
//! #[task]
//! async fn build_plan(service: String) -> String {
//!     format!("plan for {service}")
//! }
//!
//! #[task]
//! async fn deploy(plan: String) -> Result<u32, std::io::Error> {
//!     // A side effect: journaled once it succeeds, never repeated on replay.
//!     Ok(plan.len() as u32)
//! }
//!
//! #[workflow]
//! async fn release(service: String) -> Result<u32, std::io::Error> {
//!     let plan = build_plan(service).await;
//!     deploy(plan).await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
//! let engine = Engine::temporary().register(release).open().await?;
//! let run = engine.start(release, ("api".to_string(),)).await?;
//! assert_eq!(run.wait().await?, Outcome::Completed(12));
//! # Ok(()) }
//! ```
//!
//! # Concepts
//!
//! * **Orchestration bodies** — `#[workflow]` and `#[task(inject_context)]` — are replayed.
//!   Each task call in them, and every other `.await` the macro can see, is a journaled
//!   step: on replay it returns the journaled output without running. Code between steps
//!   runs again on replay and must be deterministic; the macro rejects the common
//!   nondeterministic calls (`SystemTime::now`, `rand`, `tokio::spawn`, …) with the
//!   replay-safe replacement ([`TaskContext::now`], [`TaskContext::random`], …).
//! * **Activities** — plain `#[task]` — are one atomic step: their output is journaled
//!   when they return, their inside is ordinary async Rust. If the process dies inside one,
//!   it runs again from its first line (use [`idempotency_key`] with external APIs).
//! * **Steps are identified** by `scope/name#occurrence`. The journal also stores a hash of
//!   each task's input and a fingerprint of its types. Before a run resumes on code it was
//!   not last driven by, its journal is replayed on that code without executing anything;
//!   a run the code cannot resume (a step added before where it waits, a journaled step
//!   removed or retyped, its workflow version gone) becomes [`RunStatus::Blocked`] with the
//!   steps and lines, until the code can resume it or an operator decides
//!   ([`Engine::decide`]). [`TaskContext::patched`] and `#[workflow(version = n)]` change a
//!   workflow while runs of it wait.
//! * Only `Ok` outputs are journaled: a task returning `Err` runs again next time
//!   (`#[task(retries = n)]` retries it right away with backoff).
//!
//! The [`task`] and [`workflow`](macro@workflow) docs show the code the macros generate; `cargo expand`
//! shows the same.
//!
//! # Modules
//!
//! * [`engine`] — opening a database, starting, waiting on and cancelling runs.
//! * [`context`] — [`TaskContext`]: durable sleep, channels, journaled time and randomness.
//! * [`feedback`] — asking a human: [`Feedback`] requests and their typed answers.
//! * [`run`] — run handles, outcomes, history.
//! * [`workflow`](mod@workflow) — the [`Workflow`] trait `#[workflow]` implements.
//! * [`notify`] — where a request's notifications go.
//! * [`clock`] — the engine's time source, replaceable in tests.
//! * [`testing`] — [`testing::TestEngine`], for testing workflows: in memory, on a manual
//!   clock, with mocks, recorded notifications and restarts.
//! * [`store`] — the [`store::Store`] trait, its in-memory backend and its contract tests.
//! * [`error`] — the one [`Error`] type.
//! * `server` (feature `server`) — the HTTP JSON API, HTML inbox and forms, signed links.
//!
//! # Layers
//!
//! The runtime is built in layers, and a module imports only from the layers below it
//! (`hitl/tests/layering.rs` checks that the top-level modules form no cycle, and the rules
//! marked *never*):
//!
//! | layer | modules | what it is |
//! |---|---|---|
//! | surfaces | `server/`, `cli/` | HTTP API, pages, the `hitl` CLI — the public API only, plus `sign` |
//! | test kit | `testing/` | [`testing::TestEngine`]: an engine on [`store::MemStore`] and a manual clock, restarts, mocks, recorded notifications |
//! | façade | `lib.rs`, `__private`, `run`, `error` | this table of contents; `__private` only re-exports for the macros and holds their autoref dispatch |
//! | engine | `engine/` | builder, supervisor (run lifecycle), requests, queries, status board, driver, background loops |
//! | delivery | `notify/`, `links` | the outbox sender, Slack/webhook payloads, signed notification links |
//! | orchestration | `context/`, `workflow` | [`TaskContext`] and its feedback step; the [`Workflow`] trait and its glue |
//! | journal | `journal/` | the step state machine: ambient, frames and steps, the executor, codecs, wake-ups, the test kit's hooks — *never* the engine |
//! | storage, vocabulary | `store/`, `feedback/` | the `Store` boundary and its sled backend (*never* the journal, engine, feedback or notify); the public feedback builder and answers |
//! | model | `model/` | the records and the pure rules (`resolve`, `validate`), `Error` — *never* anything above `clock`, `time_format`, `util` |
//! | base | `clock`, `util`, `sign`, `time_format`, `failpoint` | primitives |
//!
//! Only `engine/builder.rs` names the sled backend (`store::sled`).

// Base.
pub mod clock;
mod failpoint;
/// HMAC tokens, hex, percent-encoding, the signed-link format: pure, no crate imports.
mod sign;
mod time_format;
mod util;

// Model: records and pure rules.
pub mod error;
mod model;

// Storage and the feedback vocabulary.
pub mod feedback;
pub mod store;

// The journal (step state machine).
mod journal;

// Orchestration.
pub mod context;
pub mod workflow;

// Delivery.
mod links;
pub mod notify;

// The engine, and the run handles it gives out.
pub mod engine;
pub mod run;

// Testing workflows: the engine on memory, a manual clock, mocks and recorded notifications.
pub mod testing;

// Surfaces.
#[cfg(feature = "server")]
pub mod server;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use context::{Channel, TaskContext, idempotency_key, transient};
pub use engine::{Durability, Engine, EngineBuilder, RunFilter};
pub use error::{Error, Result};
pub use feedback::{Feedback, OnExpiry, PendingFilter, Request, RequestStatus, Responder, Response};
pub use model::step::StepKind;
pub use notify::Notify;
pub use run::{Blocked, Failure, FailureKind, HistoryEntry, Outcome, Run, RunInfo, RunStatus};
pub use workflow::Workflow;

pub use hitl_macros::{task, workflow};

/// The JSON Schema crate typed input uses, re-exported so that no second dependency is
/// needed: `#[derive(JsonSchema)] #[schemars(crate = "hitl::schemars")]`.
pub use schemars;
/// Derive it on a [`Feedback::input`] type, with `#[schemars(crate = "hitl::schemars")]`.
pub use schemars::JsonSchema;

/// Everything a workflow author needs: `use hitl::prelude::*;`.
pub mod prelude {
    pub use crate::context::TaskContext;
    pub use crate::engine::{Durability, Engine};
    pub use crate::feedback::{Feedback, OnExpiry, Responder, Response};
    pub use crate::notify::Notify;
    pub use crate::run::{Outcome, RunStatus};
    pub use crate::workflow::Workflow;
    pub use crate::{JsonSchema, task, workflow};
}
