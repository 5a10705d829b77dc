//! The one error type of the library: [`Error`] and its [`Result`].
//!
//! Defined with the records it names (`model`), re-exported here as `hitl::error`.

pub use crate::model::error::{Error, Result};
