//! The records hitl stores and shows, and the pure rules over them: no I/O, no tokio.
//!
//! Everything above — storage, the journal, the feedback vocabulary, the engine, the
//! surfaces — speaks these types. Nothing here imports anything above `model` (only `clock`,
//! `time_format` and `util`, which import nothing of the crate above them); `hitl/tests/layering.rs`
//! checks it.

pub(crate) mod compat;
pub(crate) mod error;
pub(crate) mod outbox;
pub(crate) mod problem;
pub(crate) mod request;
pub(crate) mod resolve;
pub(crate) mod run;
pub(crate) mod step;
pub(crate) mod validate;
pub(crate) mod view;
