//! The [`Workflow`] trait that `#[workflow]` implements, and the step-site table it carries.
//!
//! What the generated code calls besides (input coding, body wrappers, site rows) is in
//! `glue`, reached only through `__private`.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub(crate) mod glue;

use crate::error::{Error, Result};

/// What a workflow body resolves to: its output as JSON, or its error's `Display`.
pub type WorkflowResult = std::result::Result<Value, String>;

/// A started workflow body, ready for the engine to drive.
pub type WorkflowFuture = Pin<Box<dyn Future<Output = WorkflowResult> + Send + 'static>>;

/// A workflow: a named, registrable orchestration whose runs the engine drives.
///
/// Implemented by `#[workflow]` on a unit struct named after the fn, so the fn's name is the
/// value you register and start:
///
/// ```
/// # use hitl::prelude::*;
/// #[workflow]
/// async fn greet(name: String) -> String {
///     format!("hello, {name}")
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
/// let engine = Engine::temporary().register(greet).open().await?;
/// let run = engine.start(greet, ("ada".to_string(),)).await?;
/// assert_eq!(run.wait().await?.completed().as_deref(), Some("hello, ada"));
/// assert_eq!(<greet as Workflow>::DEFINITION.name, "greet");
/// # Ok(()) }
/// ```
pub trait Workflow: Copy + Send + Sync + 'static {
    /// The tuple of the workflow's arguments.
    type Input: Send + 'static;
    /// The workflow's output (the `Ok` type of a fallible workflow).
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Name, arguments and step-site table.
    const DEFINITION: &'static WorkflowDefinition;

    /// Turns typed arguments into the stored JSON input (an object keyed by argument name).
    fn encode_input(input: Self::Input) -> Result<Value>;

    /// Decodes a JSON input and starts the body. Called by the engine.
    #[doc(hidden)]
    fn start(input: Value) -> Result<WorkflowFuture>;
}

/// What the macro knows about a workflow.
#[derive(Debug)]
pub struct WorkflowDefinition {
    /// The registered name (`#[workflow(name = "…")]`, else the fn's name).
    pub name: &'static str,
    /// The version (`#[workflow(version = n)]`, else 1): runs stay on the version they
    /// started with.
    pub version: u32,
    /// Argument names, in order.
    pub params: &'static [&'static str],
    /// The step sites of the body, in source order.
    pub sites: &'static [SiteEntry],
    /// A hash of `sites` (kinds and names, not lines), stored with each run.
    pub fingerprint: &'static str,
    /// `file!()` of the workflow.
    pub file: &'static str,
}

/// One step site of an orchestration body: the step state machine made visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteEntry {
    /// `await` (an awaited expression or task call) or `async` (an async block's scope).
    pub kind: &'static str,
    /// The step name.
    pub name: &'static str,
    /// Source line.
    pub line: u32,
}

impl WorkflowDefinition {
    /// `kind name` of every site, the form stored in the database.
    pub(crate) fn site_names(&self) -> Vec<String> {
        self.sites
            .iter()
            .map(|site| format!("{} {}", site.kind, site.name))
            .collect()
    }

    pub(crate) fn invalid_input(&self, detail: String) -> Error {
        Error::InvalidInput {
            workflow: self.name.to_owned(),
            detail,
            expected: self.params.iter().map(|p| (*p).to_owned()).collect(),
        }
    }
}
