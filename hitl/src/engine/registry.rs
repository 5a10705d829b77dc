//! The registered workflows, by name and version.
//!
//! A run stays on the version it started with: it resumes only on that version's code, and
//! is blocked when that version is not registered. A start by name takes the newest version.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::compat::{Incompatibility, IncompatibilityKind};
use crate::model::run::RunRecord;
use crate::workflow::{WorkflowDefinition, WorkflowFuture};

/// A registered workflow, type-erased.
#[derive(Clone, Copy)]
pub(crate) struct Registered {
    pub(crate) definition: &'static WorkflowDefinition,
    pub(crate) start: fn(Value) -> Result<WorkflowFuture>,
}

/// Where a stored run's code is.
pub(crate) enum CodeOf {
    /// The run's version is registered.
    Registered(Registered),
    /// Other versions of the workflow are, not the run's: the run is blocked.
    VersionMissing(Incompatibility),
    /// The workflow is not registered here at all (an operator tool, or a worker of other
    /// workflows): the run is left for an engine that has it.
    NotHere,
}

/// Every registered workflow version.
#[derive(Default)]
pub(crate) struct Registry {
    by_version: BTreeMap<(&'static str, u32), Registered>,
}

impl Registry {
    /// The registry of `workflows`; two with the same name and version are an error.
    pub(crate) fn new(workflows: &[Registered]) -> Result<Self> {
        let mut by_version = BTreeMap::new();
        for registered in workflows {
            let definition = registered.definition;
            if by_version
                .insert((definition.name, definition.version), *registered)
                .is_some()
            {
                return Err(Error::DuplicateWorkflow {
                    name: definition.name.to_owned(),
                    version: definition.version,
                });
            }
        }
        Ok(Registry { by_version })
    }

    /// The registered names, each once.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.by_version.keys().map(|(name, _)| *name).collect();
        names.dedup();
        names
    }

    /// Whether any version of `name` is registered.
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.newest(name).is_some()
    }

    /// The newest registered version of `name`.
    pub(crate) fn newest(&self, name: &str) -> Option<Registered> {
        self.by_version
            .range((name, 0)..=(name, u32::MAX))
            .next_back()
            .map(|(_, registered)| *registered)
    }

    /// Exactly `version` of `name`.
    pub(crate) fn exact(&self, name: &str, version: u32) -> Option<Registered> {
        self.by_version.get(&(name, version)).copied()
    }

    /// The versions of `name` registered, oldest first.
    pub(crate) fn versions(&self, name: &str) -> Vec<u32> {
        self.by_version
            .range((name, 0)..=(name, u32::MAX))
            .map(|((_, version), _)| *version)
            .collect()
    }

    /// The code a stored run resumes on.
    pub(crate) fn code_of(&self, run: &RunRecord) -> CodeOf {
        if let Some(registered) = self.exact(&run.workflow, run.version) {
            return CodeOf::Registered(registered);
        }
        let versions = self.versions(&run.workflow);
        if versions.is_empty() {
            return CodeOf::NotHere;
        }
        let listed: Vec<String> = versions.iter().map(u32::to_string).collect();
        CodeOf::VersionMissing(Incompatibility::new(
            IncompatibilityKind::VersionNotRegistered,
            "",
            None,
            format!(
                "the run started on version {} of `{}`, which is not registered (registered: {}); register that version's fn again until its runs finish",
                run.version,
                run.workflow,
                listed.join(", ")
            ),
        ))
    }
}
