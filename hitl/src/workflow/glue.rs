//! What `#[workflow]` generates calls (through `__private`): the step-site table's rows, the
//! body wrappers, and the coding of the input object. Public items of a private module, so
//! that only `__private` exposes them.

use std::fmt::Display;
use std::future::Future;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{SiteEntry, WorkflowDefinition, WorkflowFuture, WorkflowResult};
use crate::error::{Error, Result};
use crate::journal::codec::WorkflowArgument;

/// A row of a workflow's step-site table: an `.await` named `name` on `line`.
pub const fn await_site(name: &'static str, line: u32) -> SiteEntry {
    SiteEntry {
        kind: "await",
        name,
        line,
    }
}

/// A row of a workflow's step-site table: the `async` block (scope) `name` on `line`.
pub const fn async_site(name: &'static str, line: u32) -> SiteEntry {
    SiteEntry {
        kind: "async",
        name,
        line,
    }
}

/// Wraps a workflow body returning a plain value.
pub fn workflow<F>(body: F) -> Result<WorkflowFuture>
where
    F: Future + Send + 'static,
    F::Output: Serialize,
{
    Ok(Box::pin(async move { encode_output(&body.await) }))
}

/// Wraps a workflow body returning `Result`; an `Err` fails the run with `describe(&error)`
/// (`<E as WorkflowError>::describe`, its `Display`).
pub fn fallible_workflow<F, T, E>(body: F, describe: fn(&E) -> String) -> Result<WorkflowFuture>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Serialize,
    E: 'static,
{
    Ok(Box::pin(async move {
        match body.await {
            Ok(value) => encode_output(&value),
            Err(error) => Err(describe(&error)),
        }
    }))
}

/// The error type of a workflow: a failed run records its `Display` text.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a workflow's error type: it must implement `Display`",
    label = "a failed run records its error's `Display` text",
    note = "implement `std::fmt::Display` for `{Self}` (for example with `#[derive(thiserror::Error)]` and `#[error(\"…\")]`)"
)]
pub trait WorkflowError {
    /// The text recorded in the failed run.
    fn describe(&self) -> String;
}

#[diagnostic::do_not_recommend]
impl<E: Display + ?Sized> WorkflowError for E {
    fn describe(&self) -> String {
        self.to_string()
    }
}

fn encode_output<T: Serialize>(value: &T) -> WorkflowResult {
    serde_json::to_value(value)
        .map_err(|error| format!("the workflow's output could not be serialized: {error}"))
}

/// Builds a workflow's JSON input from its arguments:
/// `InputBuilder::new().arg("service", &input.0).finish()`; the first argument that fails
/// to serialize is the error.
#[derive(Debug)]
pub struct InputBuilder(Result<Map<String, Value>>);

impl Default for InputBuilder {
    fn default() -> Self {
        InputBuilder(Ok(Map::new()))
    }
}

impl InputBuilder {
    /// An empty input.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the argument `name`.
    pub fn arg<T>(self, name: &str, value: &T, codec: ArgCodec<T>) -> Self {
        InputBuilder(self.0.and_then(|mut fields| {
            let value = (codec.encode)(value).map_err(|source| Error::Encode {
                what: format!("workflow argument `{name}`"),
                source,
            })?;
            fields.insert(name.to_owned(), value);
            Ok(fields)
        }))
    }

    /// The JSON object.
    pub fn finish(self) -> Result<Value> {
        self.0.map(Value::Object)
    }
}

/// Reads a workflow's arguments out of its JSON input, naming the field on any mismatch.
#[derive(Debug)]
pub struct InputReader {
    definition: &'static WorkflowDefinition,
    fields: Map<String, Value>,
}

impl InputReader {
    /// Checks that `input` is an object whose fields are all arguments of workflow `W`.
    pub fn of<W: crate::Workflow>(input: Value) -> Result<Self> {
        let definition = W::DEFINITION;
        let fields = match input {
            Value::Object(fields) => fields,
            Value::Null if definition.params.is_empty() => Map::new(),
            other => {
                return Err(definition.invalid_input(format!("expected a JSON object, got `{other}`")));
            }
        };
        if let Some(unknown) = fields
            .keys()
            .find(|key| !definition.params.contains(&key.as_str()))
        {
            return Err(definition.invalid_input(format!("unknown field `{unknown}`")));
        }
        Ok(InputReader { definition, fields })
    }

    /// Reads the argument `name`.
    pub fn arg<T>(&self, name: &str, codec: ArgCodec<T>) -> Result<T> {
        let value = self
            .fields
            .get(name)
            .ok_or_else(|| self.definition.invalid_input(format!("missing field `{name}`")))?;
        (codec.decode)(value)
            .map_err(|error| self.definition.invalid_input(format!("field `{name}`: {error}")))
    }
}

/// How one workflow argument is encoded and decoded. Both directions get it from
/// [`ArgCodec::of`], the one place the `WorkflowArgument` bound is checked, so that a
/// non-serializable argument is one error, not one per direction.
pub struct ArgCodec<T> {
    encode: fn(&T) -> serde_json::Result<Value>,
    decode: fn(&Value) -> serde_json::Result<T>,
}

impl<T: WorkflowArgument> ArgCodec<T> {
    /// The codec of an argument type.
    pub fn of() -> Self {
        ArgCodec {
            encode: |value| serde_json::to_value(value),
            decode: |value| T::deserialize(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_error_is_described_by_its_display() {
        let describe: fn(&std::io::Error) -> String = <std::io::Error as WorkflowError>::describe;
        assert_eq!(describe(&std::io::Error::other("down")), "down");
    }
}
