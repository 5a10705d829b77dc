//! What may be journaled, how outputs are encoded (plain or `Ok` only), and input fingerprints.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

use serde_json::Value;

use crate::error::Result;

// ---------------------------------------------------------------------------------------
// What may be journaled
// ---------------------------------------------------------------------------------------

/// A value a step may return: it is written to the journal and read back on replay.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be journaled: a step's output must implement `Serialize` and `Deserialize`",
    label = "this step's output is journaled so that replay can skip it, but `{Self}` is not serializable",
    note = "move the work into a plain `#[task]` that returns data (derive `serde::Serialize` and `serde::Deserialize` on it)",
    note = "or wrap the future in `hitl::transient(…)` to run it again on every replay instead of journaling it"
)]
pub trait Journaled: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Journaled for T {}

/// A task argument: hashed into the step's input fingerprint.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a task argument: it must implement `Serialize`",
    label = "task arguments are hashed to detect a changed input on replay",
    note = "derive `serde::Serialize` on the type, or pass a serializable id and load the value inside the task"
)]
pub trait TaskArgument: Serialize {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + ?Sized> TaskArgument for T {}

/// A workflow argument: stored as JSON with the run.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a workflow argument: it must implement `Serialize` and `Deserialize`",
    label = "workflow arguments are stored as JSON so a run can resume in another process",
    note = "derive `serde::Serialize` and `serde::Deserialize` on the type"
)]
pub trait WorkflowArgument: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> WorkflowArgument for T {}

/// How a step's output is journaled: every value ([`Plain`]) or only `Ok` ([`Fallible`]).
pub trait Codec<O> {
    /// The JSON to journal, or `None` for an output that must not be journaled (an `Err`).
    fn encode(output: &O) -> Option<serde_json::Result<Value>>;
    /// Reads a journaled output back.
    fn decode(value: Value) -> serde_json::Result<O>;
}

/// Journals every output.
#[derive(Debug)]
pub struct Plain;

/// Journals `Ok` outputs only; an `Err` is returned and the step runs again next time.
#[derive(Debug)]
pub struct Fallible;

impl<T: Journaled> Codec<T> for Plain {
    fn encode(output: &T) -> Option<serde_json::Result<Value>> {
        Some(serde_json::to_value(output))
    }
    fn decode(value: Value) -> serde_json::Result<T> {
        serde_json::from_value(value)
    }
}

impl<T: Journaled, E> Codec<Result<T, E>> for Fallible {
    fn encode(output: &Result<T, E>) -> Option<serde_json::Result<Value>> {
        output.as_ref().ok().map(serde_json::to_value)
    }
    fn decode(value: Value) -> serde_json::Result<Result<T, E>> {
        serde_json::from_value(value).map(Ok)
    }
}

/// Implemented by `Result`, to tell fallible outputs apart.
pub trait IsResult {
    /// The `Ok` type.
    type Ok;
    /// The `Err` type.
    type Err;
}

impl<T, E> IsResult for Result<T, E> {
    type Ok = T;
    type Err = E;
}

/// A [`Codec`] as values, so that a future journaling with it carries no trait bound: the
/// bound is checked once, where the codec is made.
pub struct Codecs<O> {
    pub(crate) encode: fn(&O) -> Option<serde_json::Result<Value>>,
    pub(crate) decode: fn(Value) -> serde_json::Result<O>,
}

impl<O> Codecs<O> {
    pub(crate) fn of<C: Codec<O>>() -> Self {
        Codecs {
            encode: C::encode,
            decode: C::decode,
        }
    }
}

impl<O> Clone for Codecs<O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<O> Copy for Codecs<O> {}

impl<O> std::fmt::Debug for Codecs<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Codecs")
    }
}

// ---------------------------------------------------------------------------------------
// Input fingerprints
// ---------------------------------------------------------------------------------------

/// Hashes task arguments (FNV-1a over their JSON) into the step's input fingerprint.
#[derive(Debug)]
pub struct InputHasher(u64);

impl Default for InputHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl InputHasher {
    /// A hasher with nothing added.
    pub fn new() -> Self {
        InputHasher(0xcbf2_9ce4_8422_2325)
    }

    /// Adds one argument.
    pub fn add<T: TaskArgument + ?Sized>(&mut self, argument: &T) {
        // An argument whose `Serialize` fails hashes what was written before the failure;
        // the task then sees the same failure when it serializes the value itself.
        let _ = serde_json::to_writer(&mut *self, argument);
        self.write_bytes(&[0xff]);
    }

    /// Adds one argument, by value: `InputHasher::new().arg(&a).arg(&b).finish()`.
    pub fn arg<T: TaskArgument + ?Sized>(mut self, argument: &T) -> Self {
        self.add(argument);
        self
    }

    /// The fingerprint; never 0, which means "no input".
    pub fn finish(&self) -> u64 {
        self.0.max(1)
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl io::Write for InputHasher {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_bytes(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chained_arguments_hash_like_added_ones() {
        let mut added = InputHasher::new();
        added.add(&"a");
        added.add(&2);
        assert_eq!(InputHasher::new().arg(&"a").arg(&2).finish(), added.finish());
        assert_ne!(InputHasher::new().arg(&2).arg(&"a").finish(), added.finish());
    }
}
