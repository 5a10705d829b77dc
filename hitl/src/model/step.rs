//! A journaled step and a durable timer, as stored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What kind of step a journal entry records.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepKind {
    /// A call of a plain `#[task]` (an activity).
    Task,
    /// A call of a `#[task(inject_context)]` fn (a nested orchestration).
    Orchestration,
    /// Another awaited expression in an orchestration body.
    Await,
    /// `ctx.step(..)` / `ctx.try_step(..)`.
    Named,
    /// `ctx.sleep(..)`, a durable timer.
    Sleep,
    /// `ctx.channel().get(..)` or `.set(..)`.
    Channel,
    /// `ctx.now()`, `ctx.random()` or `ctx.uuid()`.
    Value,
    /// `ctx.request_feedback(..)`: waiting while the request is open, then its resolution.
    Feedback,
    /// A notification of a feedback request (shown in history, not journaled as a step).
    Notification,
    /// `ctx.patched(..)`: whether the run takes a patched branch, decided once.
    Patch,
    /// A step that returned `Err`: a marker, so that a check knows the step ran and may
    /// run again (its output holds the step's kind); replay runs the step again.
    Errored,
    /// A step an operator's rewind set aside: kept for history (its output holds the
    /// original kind and output), ignored by replay, so the step runs again.
    Rewound,
}

impl StepKind {
    /// The kind's name, as shown in history and messages (`task`, `feedback`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Task => "task",
            StepKind::Orchestration => "orchestration",
            StepKind::Await => "await",
            StepKind::Named => "step",
            StepKind::Sleep => "sleep",
            StepKind::Channel => "channel",
            StepKind::Value => "value",
            StepKind::Feedback => "feedback",
            StepKind::Notification => "notification",
            StepKind::Patch => "patch",
            StepKind::Errored => "errored",
            StepKind::Rewound => "rewound",
        }
    }
}

/// The scope part of a step id, with its trailing `/` (`a#0/b#1/c#0` → `a#0/b#1/`; empty
/// at the root): what the ids of the scope's steps start with.
pub(crate) fn scope_of(step_id: &str) -> &str {
    step_id.rfind('/').map_or("", |slash| &step_id[..=slash])
}

/// Journal entries in step-id order, each id once: of two entries for one id the higher
/// `seq` wins, and of equal ones the later. What every store's `load_journal` returns.
pub(crate) fn in_step_id_order(steps: Vec<(String, StepRecord)>) -> Vec<(String, StepRecord)> {
    // The positions are sorted, not the entries: a record is moved once, into the journal.
    let key = |index: usize| (&steps[index].0, steps[index].1.seq, index);
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
    let mut steps: Vec<Option<(String, StepRecord)>> = steps.into_iter().map(Some).collect();
    let mut journal: Vec<(String, StepRecord)> = Vec::with_capacity(steps.len());
    for (step_id, step) in order.into_iter().filter_map(|index| steps[index].take()) {
        match journal.last_mut() {
            Some((last, kept)) if *last == step_id => *kept = step,
            _ => journal.push((step_id, step)),
        }
    }
    journal
}

/// The step name of a step id: its last segment without the occurrence (`a#0/b#1` → `b`).
pub(crate) fn name_of(step_id: &str) -> &str {
    let last = &step_id[scope_of(step_id).len()..];
    last.rsplit_once('#').map_or(last, |(name, _)| name)
}

/// A durable timer: when the engine must act without being asked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub struct Timer {
    /// When, in ms since the epoch.
    pub deadline: u64,
    /// What the timer does.
    pub action: TimerAction,
}

/// What a durable timer does when it fires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TimerAction {
    /// Resolve the request by its expiry policy if it is still pending.
    Expire(String),
    /// Resume the run if it is paused (a request resolved, or a durable sleep ended).
    Wake(String),
}

impl Timer {
    pub(crate) fn key(&self) -> Vec<u8> {
        let (tag, id) = match &self.action {
            TimerAction::Expire(id) => (b'e', id),
            TimerAction::Wake(id) => (b'w', id),
        };
        let mut key = self.deadline.to_be_bytes().to_vec();
        key.push(tag);
        key.extend_from_slice(id.as_bytes());
        key
    }

    pub(crate) fn from_key(key: &[u8]) -> Option<Timer> {
        let deadline = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
        let id = String::from_utf8(key.get(9..)?.to_vec()).ok()?;
        let action = match key.get(8)? {
            b'e' => TimerAction::Expire(id),
            b'w' => TimerAction::Wake(id),
            _ => return None,
        };
        Some(Timer { deadline, action })
    }
}

/// One journaled step, as stored in the `journal` tree. Field names are short because a run
/// stores one of these per step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct StepRecord {
    /// The format version it was written in.
    #[serde(rename = "v")]
    pub version: u32,
    /// What kind it is.
    #[serde(rename = "k")]
    pub kind: StepKind,
    /// Order of completion within the run (history sorts by it).
    #[serde(rename = "q")]
    pub seq: u64,
    /// Source line of the step.
    #[serde(rename = "l")]
    pub line: u32,
    /// Hash of the step's serialized input; 0 when the step has none.
    #[serde(rename = "i", default, skip_serializing_if = "is_zero")]
    pub input_hash: u64,
    /// When the step started, in ms since the epoch.
    #[serde(rename = "s")]
    pub started_at: u64,
    /// `None` while a durable timer is still waiting.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// The journaled output (JSON).
    #[serde(rename = "o")]
    pub output: Value,
    /// A fingerprint of the task's argument and output types (from the type tokens of its
    /// signature); 0 for steps without one, and for steps journaled before it existed.
    #[serde(rename = "t", default, skip_serializing_if = "is_zero_u32")]
    pub types: u32,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}
