//! Step identities: a [`Frame`] (the run and its current scope), the [`Step`] it names, and
//! the journal lookups and writes of that step.
//!
//! A step's identity is `scope path / name # occurrence`, assigned when the step is first
//! polled. Each scope counts occurrences per name, so a new step with a new name never shifts
//! the identities of other steps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::run_state::RunState;
use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::model::compat::{Incompatibility, IncompatibilityKind};
use crate::model::step::{StepKind, StepRecord};
use crate::store::FORMAT_VERSION;
use crate::util::lock;

/// Where in the source a step was written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    pub(crate) file: &'static str,
    pub(crate) line: u32,
}

impl Position {
    /// The position of the caller of a `#[track_caller]` fn.
    #[track_caller]
    pub(crate) fn caller() -> Self {
        let location = std::panic::Location::caller();
        Position {
            file: location.file(),
            line: location.line(),
        }
    }
}

/// A position in a run's body: the run and the current scope.
#[derive(Clone)]
pub(crate) struct Frame {
    pub(crate) run: Arc<RunState>,
    scope: Arc<Scope>,
}

/// A scope counts step occurrences per name; each `async` block and nested orchestration
/// gets its own, so concurrent branches cannot steal each other's occurrence numbers.
struct Scope {
    path: String,
    occurrences: Mutex<HashMap<String, u32>>,
}

impl Scope {
    fn new(path: String) -> Self {
        Scope {
            path,
            occurrences: Mutex::new(HashMap::new()),
        }
    }

    /// What the ids of this scope's steps (and of its nested scopes) start with.
    fn prefix(&self) -> String {
        if self.path.is_empty() {
            String::new()
        } else {
            format!("{}/", self.path)
        }
    }

    /// `path/name#n`, with `n` the number of earlier same-named steps in this scope.
    fn next_id(&self, name: &str) -> String {
        let occurrence = {
            let mut occurrences = lock(&self.occurrences);
            match occurrences.get_mut(name) {
                Some(counter) => {
                    *counter += 1;
                    *counter - 1
                }
                None => {
                    occurrences.insert(name.to_owned(), 1);
                    0
                }
            }
        };
        // Built by hand: `format!` took two thirds of this function's time in a long replay.
        let mut digits = [0u8; 10];
        let mut start = digits.len();
        let mut rest = occurrence;
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let digits = std::str::from_utf8(&digits[start..]).expect("ASCII digits");
        let mut id = String::with_capacity(self.path.len() + 1 + name.len() + 1 + digits.len());
        if !self.path.is_empty() {
            id.push_str(&self.path);
            id.push('/');
        }
        id.push_str(name);
        id.push('#');
        id.push_str(digits);
        id
    }
}

impl Frame {
    /// The root frame of a run's body.
    pub(crate) fn root(run: &Arc<RunState>) -> Frame {
        Frame {
            run: Arc::clone(run),
            scope: Arc::new(Scope::new(String::new())),
        }
    }

    /// A new child frame for a nested scope named after `name` (occurrence counted here).
    pub(crate) fn child(&self, name: &str) -> Frame {
        Frame {
            run: Arc::clone(&self.run),
            scope: Arc::new(Scope::new(self.scope.next_id(name))),
        }
    }

    /// The child frame of an already-begun step (a nested orchestration's body).
    pub(crate) fn child_of(&self, step: &Step) -> Frame {
        Frame {
            run: Arc::clone(&self.run),
            scope: Arc::new(Scope::new(step.id.clone())),
        }
    }

    /// Starts a step: assigns its identity and finds it in the journal.
    ///
    /// Returns `None` when the caller must not run the step (and should wait forever; the
    /// engine drops the future): the run has stopped, the journal contradicts this step, or a
    /// check has reached a step it would have to execute.
    pub(crate) fn begin(
        &self,
        name: &str,
        position: Position,
        kind: StepKind,
        input_hash: u64,
        types: u32,
    ) -> Option<(Step, Option<StepRecord>)> {
        if self.run.is_stopped() {
            return None;
        }
        let id = self.scope.next_id(name);
        let mut journaled = self.run.take_journaled(&id);
        // A step that returned `Err` last time runs again. A check cannot know what it will
        // return now: it stops here, and the scope's later entries cannot be verified.
        if journaled
            .as_ref()
            .is_some_and(|record| record.kind == StepKind::Errored)
        {
            if self.run.checking() {
                self.run.unverifiable_after(self.scope.prefix());
                return None;
            }
            journaled = None;
        }
        // A replayed step keeps its journaled start; only a step that executes reads the clock.
        let started_at = match &journaled {
            Some(record) => record.started_at,
            None => to_millis(self.run.services.clock.now()),
        };
        let step = Step {
            frame: self.clone(),
            id,
            position,
            kind,
            input_hash,
            types,
            started_at,
        };
        let journaled = match journaled {
            Some(record) => match step.mismatch(&record) {
                None => Some(record),
                // An operator accepted the divergence: a step that no longer matches its
                // entry runs again (on its new input, types or kind).
                Some(_) if !self.run.holds(&record) => None,
                Some((problem, detail)) => {
                    if self.run.checking() {
                        self.run
                            .found(Incompatibility::new(problem, &step.id, Some(record.line), detail));
                    } else {
                        let error = step.nondeterminism(detail);
                        self.run.fail(&error, Some(&step));
                    }
                    return None;
                }
            },
            None => None,
        };
        // A finished nested orchestration replays as its output: its own steps are never
        // reached again, and are not left to replay.
        if kind == StepKind::Orchestration && journaled.is_some() {
            self.run.consume_under(&format!("{}/", step.id));
        }
        if self.run.checking() {
            match &journaled {
                // A waiting entry is where the run stands: nothing after it is replayed.
                Some(record) if record.finished_at.is_none() => return None,
                Some(_) => {}
                // A patch is decided, not executed: by design it may come before journaled
                // steps.
                None if kind == StepKind::Patch => {}
                None => {
                    let own = format!("{}/", step.id);
                    // A nested orchestration with journaled steps of its own is not new: it
                    // was in progress.
                    let in_progress =
                        kind == StepKind::Orchestration && !self.run.remaining_under(&own, None).is_empty();
                    let remaining = self.run.remaining_under(&self.scope.prefix(), Some(&own));
                    if !remaining.is_empty() && !in_progress {
                        self.run.new_step_before(&step.id, position.line, remaining);
                    }
                    // A nested orchestration's body is checked; any other new step would
                    // execute, which a check never does.
                    if kind != StepKind::Orchestration {
                        return None;
                    }
                }
            }
        }
        Some((step, journaled))
    }

    /// Whether the run reaches this point for the first time in this scope: no journaled
    /// entry of the scope is left to replay. The rule of `ctx.patched(..)`.
    pub(crate) fn at_frontier(&self) -> bool {
        self.run.remaining_under(&self.scope.prefix(), None).is_empty()
    }
}

/// A step that has been given its identity.
pub(crate) struct Step {
    pub(crate) frame: Frame,
    pub(crate) id: String,
    position: Position,
    kind: StepKind,
    input_hash: u64,
    types: u32,
    started_at: u64,
}

impl Step {
    /// How a journaled entry contradicts this step, if it does.
    fn mismatch(&self, record: &StepRecord) -> Option<(IncompatibilityKind, String)> {
        let types_changed = record.types != 0 && self.types != 0 && record.types != self.types;
        if record.kind == self.kind && !types_changed && record.input_hash == self.input_hash {
            return None; // the replay's hot path: no message built
        }
        let at = format!(
            "step `{}` (journaled at line {}, now line {})",
            self.id, record.line, self.position.line
        );
        if record.kind != self.kind {
            Some((
                IncompatibilityKind::ChangedKind,
                format!(
                    "{at}: the journal recorded a {} step, the code now runs a {} step",
                    record.kind.as_str(),
                    self.kind.as_str()
                ),
            ))
        } else if types_changed {
            Some((
                IncompatibilityKind::ChangedTypes,
                format!("{at}: the task's argument or output types changed since it was journaled"),
            ))
        } else if record.input_hash != self.input_hash {
            Some((
                IncompatibilityKind::ChangedInput,
                format!("{at}: its input differs from the journaled input"),
            ))
        } else {
            None
        }
    }

    /// The journaled output of this step no longer decodes into its output type: a code
    /// change (a check records it), not damaged bytes.
    pub(crate) fn undecodable(&self, record_line: u32, error: impl std::fmt::Display) {
        let detail = format!(
            "step `{}` (journaled at line {record_line}, now line {}): the journaled output no longer decodes as the step's output type ({error})",
            self.id, self.position.line
        );
        if self.frame.run.checking() {
            self.frame.run.found(Incompatibility::new(
                IncompatibilityKind::OutputNoLongerDecodes,
                &self.id,
                Some(record_line),
                detail,
            ));
        } else {
            self.frame.run.fail(&self.nondeterminism(detail), Some(self));
        }
    }

    /// The source line of the step.
    pub(crate) fn line(&self) -> u32 {
        self.position.line
    }

    pub(crate) fn run(&self) -> &Arc<RunState> {
        &self.frame.run
    }

    /// `file:line` of the step.
    pub(crate) fn location(&self) -> String {
        format!("{}:{}", self.position.file, self.position.line)
    }

    /// The idempotency key of the step: stable across retries, replays and restarts.
    pub(crate) fn idempotency_key(&self) -> Arc<str> {
        Arc::from(format!("{}/{}", self.frame.run.id, self.id))
    }

    pub(crate) fn nondeterminism(&self, detail: String) -> Error {
        Error::NonDeterminism {
            step: self.id.clone(),
            location: self.location(),
            detail,
        }
    }

    /// Notes that the step returned `Err` (it is not journaled and will run again).
    ///
    /// A marker is journaled with the run's next write: a later check then knows this step
    /// ran (and runs again), instead of taking it for a step added before journaled ones.
    pub(crate) fn note_error(&self) {
        *lock(&self.frame.run.last_error) = Some((self.id.clone(), self.location()));
        if !self.frame.run.checking() {
            let mut marker = self.record_for(serde_json::json!({ "kind": self.kind }), true);
            marker.kind = StepKind::Errored;
            self.frame.run.buffer_step(self.id.clone(), marker);
        }
    }

    pub(crate) fn record_for(&self, output: Value, finished: bool) -> StepRecord {
        StepRecord {
            version: FORMAT_VERSION,
            kind: self.kind,
            seq: self.frame.run.next_seq(),
            line: self.position.line,
            input_hash: self.input_hash,
            started_at: self.started_at,
            finished_at: finished.then(|| to_millis(self.frame.run.services.clock.now())),
            output,
            types: self.types,
        }
    }

    /// Journals the step's output (with any sync steps buffered before it) and, in
    /// `Durability::Flush`, waits until it is durable.
    ///
    /// Returns `false` when the write failed; the run has then been failed.
    pub(crate) async fn complete(&self, output: Value) -> bool {
        let record = self.record_for(output, true);
        let result = self.write(record).await;
        self.finish_write(result).await
    }

    /// Journals an unfinished step (a durable timer's deadline) and makes it durable.
    pub(crate) async fn complete_waiting(&self, output: Value) -> bool {
        let record = self.record_for(output, false);
        match self.write(record).await {
            Ok(()) => self.await_flush(self.frame.run.services.store.flush()).await,
            Err(error) => {
                self.frame.run.fail(&error, Some(self));
                false
            }
        }
    }

    /// Journals the step's output without waiting for a flush: for a value already durable
    /// elsewhere (a request's resolution); the next durable step's flush covers the write.
    pub(crate) async fn complete_unflushed(&self, output: Value) -> bool {
        let record = self.record_for(output, true);
        match self.write(record).await {
            Ok(()) => true,
            Err(error) => {
                self.frame.run.fail(&error, Some(self));
                false
            }
        }
    }

    /// Journals a channel `set` with the channel's new value, atomically.
    pub(crate) async fn complete_channel_set(&self, key: &str, value: Value) -> bool {
        let record = self.record_for(value.clone(), true);
        let run = &self.frame.run;
        if run.checking() {
            return true;
        }
        let result = match run.write_buffered().await {
            Ok(()) => {
                run.services
                    .store
                    .append_channel_set(&run.id, run.epoch, &self.id, &record, key, &value)
                    .await
            }
            Err(error) => Err(error),
        };
        self.finish_write(result).await
    }

    /// Journals the step from sync code (a sync task, `ctx.now()`, …): the record joins the
    /// run's write buffer, which the run's next write carries (the next async step, a
    /// request, the pause or the end). Nothing the run does after this step is observable
    /// before that write, and a crash before it repeats only this step.
    pub(crate) fn complete_sync(&self, output: Value) {
        let record = self.record_for(output, true);
        self.frame.run.buffer_step(self.id.clone(), record);
    }

    async fn write(&self, record: StepRecord) -> Result<()> {
        let run = &self.frame.run;
        // A check writes nothing: the one entry it can reach is the end of a nested
        // orchestration whose steps all replayed, and its output goes on as if journaled.
        if run.checking() {
            return Ok(());
        }
        let step = (self.id.clone(), record);
        let mut steps = run.take_buffered();
        // The common case, nothing buffered, writes the one step without a vector.
        let result = if steps.is_empty() {
            run.services
                .store
                .append_steps(&run.id, run.epoch, std::slice::from_ref(&step))
                .await
        } else {
            steps.push(step);
            run.services.store.append_steps(&run.id, run.epoch, &steps).await
        };
        crate::failpoint::hit("after_journal_write");
        result
    }

    async fn finish_write(&self, result: Result<()>) -> bool {
        match result {
            Ok(()) if self.frame.run.checking() => true,
            Ok(()) if self.frame.run.services.durability == crate::Durability::Flush => {
                self.await_flush(self.frame.run.services.store.flush()).await
            }
            Ok(()) => true,
            Err(error) => {
                self.frame.run.fail(&error, Some(self));
                false
            }
        }
    }

    async fn await_flush(&self, flush: crate::store::FlushFuture) -> bool {
        if self.frame.run.checking() {
            return true;
        }
        match flush.await {
            Ok(()) => true,
            Err(error) => {
                self.frame.run.fail(&error, Some(self));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Scope;

    #[test]
    fn step_ids_count_occurrences_per_name_within_their_scope() {
        let root = Scope::new(String::new());
        let ids: Vec<String> = ["a", "b", "a"].iter().map(|name| root.next_id(name)).collect();
        assert_eq!(ids, ["a#0", "b#0", "a#1"]);
        for _ in 2..10 {
            root.next_id("a");
        }
        assert_eq!(root.next_id("a"), "a#10");
        let nested = Scope::new("o#0".to_owned());
        assert_eq!(nested.next_id("a"), "o#0/a#0");
        *super::lock(&nested.occurrences).get_mut("a").unwrap() = u32::MAX - 1;
        assert_eq!(nested.next_id("a"), "o#0/a#4294967294");
    }
}
