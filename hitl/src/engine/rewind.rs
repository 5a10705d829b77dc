//! Rewinding a blocked run to a named step: the operator's third decision.
//!
//! The journal of the step's scope after the step (and of the scopes begun in it since) is
//! set aside: each entry is rewritten as a [`StepKind::Rewound`] entry that keeps the
//! original kind and output for history and that replay ignores, so the steps run again.
//! Requests those steps asked stay in history; a still-open one is cancelled, which takes its
//! wake-up and stops its pending notifications; an answered one is asked again when its step
//! runs again. Channel values written by the set-aside steps go back to the last value
//! written before them.

use serde_json::{Value, json};

use super::Shared;
use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::model::request::RequestStatus;
use crate::model::run::RunRecord;
use crate::model::step::{StepKind, StepRecord, name_of, scope_of};

/// What a rewind set aside, for the decision's log line.
pub(super) struct Rewound {
    pub(super) steps: usize,
    pub(super) cancelled_requests: usize,
}

impl Shared {
    /// Sets aside the journal of `to`'s scope after `to`. The run must not be driven.
    pub(super) async fn rewind(&self, record: &RunRecord, to: &str) -> Result<Rewound> {
        let store = &self.services.store;
        let journal = store.load_journal(&record.id).await?;
        let Some(target) = journal
            .iter()
            .find(|(id, step)| id == to && step.kind != StepKind::Rewound && step.finished_at.is_some())
            .map(|(_, step)| step.seq)
        else {
            let known: Vec<&str> = journal
                .iter()
                .filter(|(_, step)| step.kind != StepKind::Rewound && step.finished_at.is_some())
                .map(|(id, _)| id.as_str())
                .collect();
            return Err(Error::InvalidRequest {
                detail: format!(
                    "run `{}` has no completed step `{to}` to rewind to; its completed steps: {}",
                    record.id,
                    known.join(", ")
                ),
            });
        };
        let scope = scope_of(to);
        let (set_aside, kept): (Vec<_>, Vec<_>) = journal.into_iter().partition(|(id, step)| {
            id.starts_with(scope) && step.seq > target && step.kind != StepKind::Rewound
        });
        let now = to_millis(self.services.clock.now());
        let mut cancelled_requests = 0;
        for (id, step) in &set_aside {
            let rewound = StepRecord {
                kind: StepKind::Rewound,
                output: json!({ "kind": step.kind, "output": step.output, "rewound_at": now }),
                ..step.clone()
            };
            match channel_key(id).filter(|_| step.kind == StepKind::Channel) {
                Some(key) => {
                    let value = last_value_of(&kept, key);
                    store
                        .append_channel_set(&record.id, record.lease_epoch, id, &rewound, key, &value)
                        .await?;
                }
                None => {
                    store
                        .append_steps(&record.id, record.lease_epoch, &[(id.clone(), rewound)])
                        .await?;
                }
            }
            if step.kind == StepKind::Feedback
                && let Some(request_id) = step.output["request"].as_str()
                && self.cancel_rewound_request(request_id, to, now).await?
            {
                cancelled_requests += 1;
            }
        }
        store.flush().await?;
        Ok(Rewound {
            steps: set_aside.len(),
            cancelled_requests,
        })
    }

    /// Cancels a request a set-aside step asked, if it is still open, with its wake-up and
    /// its pending notifications. Whether it was open.
    async fn cancel_rewound_request(&self, request_id: &str, to: &str, now: u64) -> Result<bool> {
        let store = &self.services.store;
        let Some(request) = store.load_request(request_id).await? else {
            return Ok(false);
        };
        if request.status != RequestStatus::Pending {
            return Ok(false);
        }
        let reason = format!("the run was rewound to step `{to}`");
        if !self.cancel_request(request_id, &reason, now).await? {
            return Ok(false);
        }
        for mut notification in store.outbox_of(request_id).await? {
            if notification.delivered_at.is_none() && !notification.gave_up {
                notification.withdraw();
                store.save_outbox(&notification).await?;
            }
        }
        Ok(true)
    }
}

/// The key of a `channel.set:{key}#n` step.
fn channel_key(step_id: &str) -> Option<&str> {
    name_of(step_id).strip_prefix("channel.set:")
}

/// The value the last kept `set` of `key` wrote (null: never set).
fn last_value_of(kept: &[(String, StepRecord)], key: &str) -> Value {
    kept.iter()
        .filter(|(id, step)| step.kind == StepKind::Channel && channel_key(id) == Some(key))
        .max_by_key(|(_, step)| step.seq)
        .map_or(Value::Null, |(_, step)| step.output.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_keys_come_from_set_steps_only() {
        assert_eq!(channel_key("review#0/channel.set:plan#2"), Some("plan"));
        assert_eq!(channel_key("channel.set:plan#0"), Some("plan"));
        assert_eq!(channel_key("channel.get:plan#0"), None);
        assert_eq!(channel_key("build#0"), None);
    }
}
