//! Helpers shared by the `hitl` examples and integration tests.
//!
//! This package is not published; it exists so that `examples/` and `tests/` live at the
//! repository root, beside the `hitl` and `hitl-macros` crates they exercise.
