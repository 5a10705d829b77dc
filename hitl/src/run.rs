//! Runs: handles to started workflows, their status, outcome and history, and whether the
//! registered code can resume them ([`Blocked`], [`Decision`]).

pub use crate::engine::run::{Outcome, Run};
pub use crate::model::compat::{Blocked, Decision, DecisionAction, Incompatibility, IncompatibilityKind};
pub use crate::model::run::{Failure, FailureKind, RunStatus};
pub use crate::model::step::StepKind;
pub use crate::model::view::{DefinitionChange, HistoryEntry, RunInfo, StepStatus};
