//! Notifications: telling a human that a request waits for them.
//!
//! A request's notifications are written to the *outbox* in the same atomic write as the
//! request itself, so they are never lost and never re-sent on replay (a replay finds the
//! request and writes nothing). A background sender delivers them with retries and backoff
//! and records every attempt; each delivery carries a stable idempotency id
//! (`Idempotency-Key` header and `idempotency_id` field), so after a crash between sending
//! and recording, the receiver can drop the duplicate. A failing receiver never blocks or
//! loses the request: it stays answerable whatever happens to its notifications.

use serde::{Deserialize, Serialize};

/// Where to send a notification when a request is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Notify {
    /// POST the request as JSON to a URL.
    Webhook {
        /// The receiver.
        url: String,
    },
    /// POST a Slack Block Kit message to an incoming-webhook URL.
    Slack {
        /// The incoming webhook.
        url: String,
        /// A headline shown above the prompt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

impl Notify {
    /// A JSON webhook.
    pub fn webhook(url: impl Into<String>) -> Self {
        Notify::Webhook { url: url.into() }
    }

    /// A Slack message (Block Kit) with the prompt and a link to the request.
    pub fn slack(url: impl Into<String>) -> Self {
        Notify::Slack {
            url: url.into(),
            message: None,
        }
    }

    /// A headline for a Slack message.
    pub fn message(mut self, text: impl Into<String>) -> Self {
        if let Notify::Slack { message, .. } = &mut self {
            *message = Some(text.into());
        }
        self
    }

    /// The receiver's URL.
    pub fn url(&self) -> &str {
        match self {
            Notify::Webhook { url } | Notify::Slack { url, .. } => url,
        }
    }
}

/// One delivery attempt, as recorded in the outbox and shown in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When, in ms since the epoch.
    pub at: u64,
    /// The HTTP status, if the receiver answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A notification waiting in (or delivered from) the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OutboxRecord {
    pub v: u32,
    /// The idempotency id: `request id/index`.
    pub id: String,
    pub request_id: String,
    pub run_id: String,
    pub notify: Notify,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<u64>,
    /// No more attempts will be made.
    #[serde(default)]
    pub gave_up: bool,
    /// When the next attempt is due, in ms since the epoch.
    pub next_attempt_at: u64,
}

/// The most delivery attempts per notification.
const MAX_ATTEMPTS: usize = 8;

/// The background sender of the outbox.
pub(crate) struct Notifier {
    wake: std::sync::Arc<tokio::sync::Notify>,
    base_url: Option<String>,
    client: reqwest::Client,
}

impl Notifier {
    pub(crate) fn new(base_url: Option<String>) -> Self {
        Notifier {
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
            base_url,
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Something was added to the outbox.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers due notifications until the engine is gone.
    pub(crate) async fn run(shared: std::sync::Weak<crate::engine::Shared>) {
        loop {
            let notify = match shared.upgrade() {
                Some(shared) => std::sync::Arc::clone(&shared.notifier.wake),
                None => return,
            };
            let mut woken = std::pin::pin!(notify.notified());
            woken.as_mut().enable();
            let next_due = {
                // Hold the engine only while delivering: a dropped engine ends the loop.
                let Some(shared) = shared.upgrade() else { return };
                let next_due = match shared.notifier.deliver_due(&shared).await {
                    Ok(next_due) => next_due,
                    Err(error) => {
                        tracing::error!(%error, "reading the notification outbox failed");
                        Some(crate::clock::to_millis(shared.clock.now()) + 1_000)
                    }
                };
                next_due.map(|due| (due, shared.clock.clone()))
            };
            match next_due {
                Some((due, clock)) => {
                    tokio::select! {
                        () = woken => {}
                        () = clock.sleep_until(crate::clock::from_millis(due)) => {}
                    }
                }
                None => woken.await,
            }
        }
    }

    /// Sends every notification that is due; returns when the next one will be.
    async fn deliver_due(&self, shared: &crate::engine::Shared) -> crate::Result<Option<u64>> {
        let mut next_due = None::<u64>;
        let mut secret = None;
        for mut record in shared.store.undelivered()? {
            let now = crate::clock::to_millis(shared.clock.now());
            if record.next_attempt_at > now {
                next_due =
                    Some(next_due.map_or(record.next_attempt_at, |due| due.min(record.next_attempt_at)));
                continue;
            }
            let Some(request) = shared.store.load_request(&record.request_id)? else {
                record.gave_up = true;
                shared.store.save_outbox(&record)?;
                continue;
            };
            // Retrying an announcement of a request that is no longer open helps nobody.
            if !record.attempts.is_empty() && request.status != crate::feedback::RequestStatus::Pending {
                record.gave_up = true;
                shared.store.save_outbox(&record)?;
                continue;
            }
            if secret.is_none() && self.base_url.is_some() {
                secret = Some(crate::links::secret(shared.store.as_ref())?);
            }
            let body = self.payload(&record, &request.view(), secret.as_deref());
            let result = self
                .client
                .post(record.notify.url())
                .header("content-type", "application/json")
                .header("idempotency-key", &record.id)
                .body(body.to_string())
                .send()
                .await;
            let attempt = match result {
                Ok(response) if response.status().is_success() => Attempt {
                    at: now,
                    status: Some(response.status().as_u16()),
                    error: None,
                },
                Ok(response) => Attempt {
                    at: now,
                    status: Some(response.status().as_u16()),
                    error: Some(format!("the receiver answered {}", response.status())),
                },
                Err(error) => Attempt {
                    at: now,
                    status: None,
                    error: Some(error.without_url().to_string()),
                },
            };
            let delivered = attempt.error.is_none();
            tracing::debug!(notification = %record.id, delivered, "notification attempt");
            record.attempts.push(attempt);
            if delivered {
                record.delivered_at = Some(now);
            } else if record.attempts.len() >= MAX_ATTEMPTS {
                record.gave_up = true;
                tracing::warn!(notification = %record.id, "giving up on a notification after {MAX_ATTEMPTS} attempts");
            } else {
                // 0.5 s, 1 s, 2 s, … up to 5 minutes.
                let backoff = (500u64 << (record.attempts.len() - 1).min(10)).min(300_000);
                record.next_attempt_at = now + backoff;
                next_due =
                    Some(next_due.map_or(record.next_attempt_at, |due| due.min(record.next_attempt_at)));
            }
            shared.store.save_outbox(&record)?;
        }
        Ok(next_due)
    }

    /// The JSON body of a delivery. With a `base_url`, `link` opens the request's page (after
    /// signing in) and `links` are signed links that open just this request's form, one per
    /// responder they vouch for (see [`crate::links`]).
    fn payload(
        &self,
        record: &OutboxRecord,
        request: &crate::feedback::Request,
        secret: Option<&[u8]>,
    ) -> serde_json::Value {
        let link = self
            .base_url
            .as_ref()
            .map(|base| format!("{base}/requests/{}", crate::links::percent_encode(&request.id)));
        let links = match (&self.base_url, secret) {
            (Some(base), Some(secret)) => {
                crate::links::notification_links(base, secret, request, &record.notify)
            }
            _ => Vec::new(),
        };
        match &record.notify {
            Notify::Webhook { .. } => serde_json::json!({
                "idempotency_id": record.id,
                "event": "feedback_requested",
                "request": request,
                "link": link,
                "links": links,
            }),
            Notify::Slack { message, .. } => {
                slack_message(record, request, message.as_deref(), link.as_deref(), &links)
            }
        }
    }
}

/// A Block Kit message: headline, prompt, details, and a button to the request's form.
fn slack_message(
    record: &OutboxRecord,
    request: &crate::feedback::Request,
    message: Option<&str>,
    link: Option<&str>,
    links: &[crate::links::SignedLink],
) -> serde_json::Value {
    let headline = message.unwrap_or("Feedback needed");
    let mut blocks = vec![
        serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": headline}}),
        serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", request.prompt)}}),
    ];
    if let Some(details) = &request.details {
        blocks.push(serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": details}}));
    }
    blocks.push(serde_json::json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": format!("workflow `{}` · run `{}` · request `{}`", request.workflow, request.run_id, request.id)}]}));
    if let Some(link) = link {
        // The request's page (after signing in), then one signed link per responder it
        // vouches for, which opens just this request's form (at most 25 buttons a block).
        let open = serde_json::json!({
            "type": "button", "text": {"type": "plain_text", "text": "Open the request"},
            "url": link, "action_id": format!("open-{}", request.id)});
        let answers = links.iter().take(24).map(|signed| {
            let text = if links.len() == 1 {
                "Answer".to_owned()
            } else {
                format!("Answer as {}", signed.responder)
            };
            serde_json::json!({"type": "button", "text": {"type": "plain_text", "text": text},
                "style": "primary", "url": signed.url,
                "action_id": format!("answer-{}-{}", request.id, signed.responder)})
        });
        let elements: Vec<serde_json::Value> = std::iter::once(open).chain(answers).collect();
        blocks.push(serde_json::json!({"type": "actions", "elements": elements}));
    }
    serde_json::json!({
        "text": format!("{headline}: {}", request.prompt),
        "blocks": blocks,
        "metadata": {"event_type": "hitl_feedback_requested", "event_payload": {"idempotency_id": record.id}},
    })
}
