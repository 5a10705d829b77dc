//! The journal layer: the step state machine a run's body executes in, knowing nothing of
//! the engine above it beyond what a step needs (`services`).
//!
//! * `ambient` — what the code polled on this thread is (orchestration, activity, none).
//! * `frame` — step identities (`scope/name#occurrence`), journal lookups and writes.
//! * `run_state` — one executing run: its journal to replay, stop signal, pause counters.
//! * `replay` — the journal entries an execution replays, walked in journal order.
//! * `exec` — the step executor the macros' generated code calls through `__private`.
//! * `codec` — what may be journaled, and how.
//! * `hooks` — what a test kit sees of executing activities, and the mocks it gives them.
//! * `wakeups` — resolved requests handed to the steps waiting on them.
//! * `timers` — the in-memory queue of durable timers (the loop is the engine's).
//! * `services` — the store, clock and signals a run's steps use.

pub(crate) mod ambient;
pub(crate) mod codec;
pub(crate) mod exec;
pub(crate) mod frame;
pub(crate) mod hooks;
mod replay;
pub(crate) mod run_state;
pub(crate) mod services;
pub(crate) mod timers;
pub(crate) mod wakeups;

pub(crate) use ambient::{Ambient, InAmbient, with_ambient};
pub(crate) use codec::*;
pub(crate) use exec::*;
pub(crate) use frame::{Frame, Position, Step};
pub(crate) use run_state::RunState;
