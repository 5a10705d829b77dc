//! Notifications kept instead of sent, for `hitl::testing`: each is recorded as delivered,
//! with exactly what would have gone out.

use std::sync::Mutex;

use serde_json::Value;

use crate::util::lock;

/// A notification a test engine recorded instead of sending it
/// ([`TestEngine::notifications`](crate::testing::TestEngine::notifications)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SentNotification {
    /// `"webhook"`, `"slack"` or `"email"`.
    pub channel: &'static str,
    /// Where it would have gone: the URL posted to, or the e-mail address.
    pub to: String,
    /// The request it announces.
    pub request_id: String,
    /// The run that asked.
    pub run_id: String,
    /// The id a receiver drops duplicates by (the `Idempotency-Key` header, the
    /// `X-Hitl-Idempotency-Id` of an e-mail).
    pub idempotency_id: String,
    /// What would have been sent: the JSON body posted (a webhook's, or a Slack message's
    /// `blocks`), or for an e-mail `{"from", "subject", "text"}`.
    pub body: Value,
}

/// The notifications recorded so far, in the order they were "sent".
#[derive(Debug, Default)]
pub(crate) struct Capture {
    sent: Mutex<Vec<SentNotification>>,
}

impl Capture {
    pub(crate) fn record(&self, sent: SentNotification) {
        lock(&self.sent).push(sent);
    }

    pub(crate) fn sent(&self) -> Vec<SentNotification> {
        lock(&self.sent).clone()
    }
}
