//! The JSON lines both backends' dumps print (`hitl --db DIR dump`, `hitl --database-url URL
//! dump`): one object per record, with `"record"` or, for a value that does not decode,
//! `"error"`.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::step::{Timer, TimerAction};
use crate::store::packed::Chunk;

/// Writes JSON lines to `out` and counts them; a write error names `path`.
pub(crate) struct DumpLines<'a> {
    out: &'a mut dyn Write,
    path: PathBuf,
    pub(crate) lines: u64,
}

impl<'a> DumpLines<'a> {
    pub(crate) fn new(out: &'a mut dyn Write, path: impl Into<PathBuf>) -> Self {
        DumpLines {
            out,
            path: path.into(),
            lines: 0,
        }
    }

    pub(crate) fn line(&mut self, value: Value) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut *self.out, &value)
            .map_err(std::io::Error::from)
            .map_err(io)?;
        self.out.write_all(b"\n").map_err(io)?;
        self.lines += 1;
        Ok(())
    }

    /// The line of one durable timer.
    pub(crate) fn timer(&mut self, timer: &Timer) -> Result<()> {
        let (action, id) = match &timer.action {
            TimerAction::Expire(id) => ("expire", id),
            TimerAction::Wake(id) => ("wake", id),
        };
        self.line(json!({ "tree": "timers", "deadline": timer.deadline, "action": action, "id": id }))
    }

    /// The lines of one journal chunk of `run_id`: a step each, or one line saying that the
    /// chunk's framing does not decode.
    pub(crate) fn chunk(&mut self, run_id: &str, number: impl Into<Value>, chunk: &[u8]) -> Result<()> {
        let number = number.into();
        let Some(entries) = Chunk::entries(chunk) else {
            return self.line(json!({ "tree": "journal", "run_id": run_id, "chunk": number,
                                     "error": "the chunk's framing does not decode" }));
        };
        for (step_id, step) in entries {
            let (field, value) = match step {
                Ok(step) => ("record", to_json(&step)),
                Err(error) => ("error", Value::from(error)),
            };
            self.line(json!({ "tree": "journal", "run_id": run_id, "chunk": number,
                              "step_id": step_id, field: value }))?;
        }
        Ok(())
    }
}

/// A decoded record as `("record", its JSON)`, or why it does not decode as `("error", …)`.
pub(crate) fn shown<T: serde::Serialize>(result: Result<T>) -> (&'static str, Value) {
    match result {
        Ok(record) => ("record", to_json(&record)),
        Err(error) => ("error", Value::from(error.to_string())),
    }
}

fn to_json<T: serde::Serialize>(record: &T) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}
