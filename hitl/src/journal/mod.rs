//! The journal layer: the step state machine a run's body executes in (`replay`), what may
//! be journaled and how (`codec`), and the step executor the macros' generated code calls
//! through `__private` (`exec`). It stores through `store` and knows nothing of the engine
//! above it beyond what a step needs.

pub(crate) mod codec;
pub(crate) mod exec;
pub(crate) mod replay;
pub(crate) mod services;
pub(crate) mod timers;
pub(crate) mod wakeups;

pub(crate) use codec::*;
pub(crate) use exec::*;
