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
//!   each task's input; replaying a step whose input changed fails the run with
//!   [`Error::NonDeterminism`] instead of returning a wrong answer.
//! * Only `Ok` outputs are journaled: a task returning `Err` runs again next time
//!   (`#[task(retries = n)]` retries it right away with backoff).
//!
//! The [`task`] and [`workflow`] docs show the code the macros generate; `cargo expand`
//! shows the same.
//!
//! # Modules
//!
//! * [`engine`] — opening a database, starting, waiting on and cancelling runs.
//! * [`context`] — [`TaskContext`]: durable sleep, channels, journaled time and randomness.
//! * [`run`] — run handles, outcomes, history.
//! * [`workflow`] — the [`Workflow`] trait `#[workflow]` implements.
//! * [`clock`] — the engine's time source, replaceable in tests.
//! * `server` (feature `server`) — the HTTP JSON API, HTML inbox and forms, signed links.

pub mod clock;
pub mod context;
pub mod engine;
pub mod error;
mod failpoint;
pub mod feedback;
mod journal;
mod links;
mod model;
pub mod notify;
pub mod run;
#[cfg(feature = "server")]
pub mod server;
/// HMAC tokens, hex, percent-encoding, the signed-link format: pure, no crate imports.
mod sign;
mod store;
mod time_format;
mod util;
pub mod workflow;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use context::{Channel, TaskContext, idempotency_key, transient};
pub use engine::{Durability, Engine, EngineBuilder, RunFilter};
pub use error::{Error, Result};
pub use feedback::{Feedback, OnExpiry, PendingFilter, Request, RequestStatus, Responder, Response};
pub use model::step::StepKind;
pub use notify::Notify;
pub use run::{Failure, FailureKind, HistoryEntry, Outcome, Run, RunInfo, RunStatus};
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
