//! Notifications as requested and as kept in the outbox: where to send, and every attempt.

use serde::{Deserialize, Serialize};

/// Where to send a notification when a request is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
#[non_exhaustive]
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
        /// Opt-in: also a button with a signed link that answers as this shared responder,
        /// for anyone in the channel (see [`Notify::signed_link_as`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signed_link_as: Option<String>,
    },
    /// Send a plain-text e-mail to one person through the engine's SMTP server
    /// ([`EngineBuilder::smtp`](crate::EngineBuilder::smtp)).
    Email {
        /// The recipient's address.
        to: String,
        /// The subject (and the first line of the text).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Who the e-mail's signed link answers as; the address when unset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        responder: Option<String>,
    },
}

impl Notify {
    /// A JSON webhook.
    pub fn webhook(url: impl Into<String>) -> Self {
        Notify::Webhook { url: url.into() }
    }

    /// A Slack message (Block Kit): the prompt, the details as mrkdwn, and an "Answer"
    /// button that opens the request's page (`{base_url}/requests/{id}`), where the person
    /// signs in with their own credentials and is brought back to the request.
    pub fn slack(url: impl Into<String>) -> Self {
        Notify::Slack {
            url: url.into(),
            message: None,
            signed_link_as: None,
        }
    }

    /// An e-mail to one person (`to`), sent through the engine's SMTP server
    /// ([`EngineBuilder::smtp`](crate::EngineBuilder::smtp)). It holds the prompt, the
    /// details, and, with a `base_url`, a signed link that opens the request's form and
    /// answers as this recipient: the address itself, or the name given with
    /// [`Notify::responder`]. An inbox belongs to one person, so unlike a Slack channel the
    /// link may carry their identity. If the request names its `.responders([...])` and the
    /// recipient is not among them, the e-mail links only to the request's page, where they
    /// sign in. Send one `Notify::email` per person.
    ///
    /// # Examples
    ///
    /// ```
    /// use hitl::prelude::*;
    ///
    /// let ask = Feedback::approval("Ship it?")
    ///     .responders(["alice"])
    ///     .notify(Notify::email("alice@example.com").responder("alice").message("Ship 1.4?"));
    /// ```
    pub fn email(to: impl Into<String>) -> Self {
        Notify::Email {
            to: to.into(),
            message: None,
            responder: None,
        }
    }

    /// The responder an e-mail's signed link answers as (by default, the address). It is the
    /// e-mail's counterpart of [`Notify::signed_link_as`], which does this for a whole Slack
    /// channel; no effect on a webhook or a Slack message.
    pub fn responder(mut self, name: impl Into<String>) -> Self {
        if let Notify::Email { responder, .. } = &mut self {
            *responder = Some(name.into());
        }
        self
    }

    /// **Shared identity, opt-in.** Adds to a Slack message a button with a signed link that
    /// opens the request's form without signing in and answers as `responder` — whoever in
    /// the channel clicks it, so the record names `responder`, not the person. Use it only
    /// where everyone in the channel may answer and a shared name is acceptable; the
    /// request's `.responders([...])`, if any, must include `responder`. No effect on a
    /// webhook or an e-mail (whose link answers as its recipient: [`Notify::responder`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use hitl::prelude::*;
    ///
    /// let shared = Notify::slack("https://hooks.slack.com/services/…").signed_link_as("slack");
    /// ```
    pub fn signed_link_as(mut self, responder: impl Into<String>) -> Self {
        if let Notify::Slack { signed_link_as, .. } = &mut self {
            *signed_link_as = Some(responder.into());
        }
        self
    }

    /// A headline for a Slack message, or the subject of an e-mail. No effect on a webhook.
    pub fn message(mut self, text: impl Into<String>) -> Self {
        if let Notify::Slack { message, .. } | Notify::Email { message, .. } = &mut self {
            *message = Some(text.into());
        }
        self
    }

    /// The receiver's URL: `None` for an e-mail.
    pub fn url(&self) -> Option<&str> {
        match self {
            Notify::Webhook { url } | Notify::Slack { url, .. } => Some(url),
            Notify::Email { .. } => None,
        }
    }

    /// The channel's name: `webhook`, `slack` or `email` (as stored, and in history).
    pub fn channel(&self) -> &'static str {
        match self {
            Notify::Webhook { .. } => "webhook",
            Notify::Slack { .. } => "slack",
            Notify::Email { .. } => "email",
        }
    }
}

/// One delivery attempt, as recorded in the outbox and shown in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When, in ms since the epoch.
    pub at: u64,
    /// The receiver's status code, if it answered: the HTTP status, or for an e-mail the
    /// SMTP server's last reply code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A notification waiting in (or delivered from) the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutboxRecord {
    /// The format version it was written in.
    pub v: u32,
    /// The idempotency id: `request id/index`.
    pub id: String,
    /// The request it announces.
    pub request_id: String,
    /// The run it belongs to.
    pub run_id: String,
    /// Where to send the notification.
    pub notify: Notify,
    /// Every delivery attempt so far.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// When it was delivered, in ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<u64>,
    /// No more attempts will be made.
    #[serde(default)]
    pub gave_up: bool,
    /// Given up because it was no longer needed, not because delivery failed: the request
    /// it announces closed (answered, expired or cancelled) or was withdrawn by a rewind
    /// before a delivery got through. Set only with [`OutboxRecord::gave_up`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withdrawn: bool,
    /// When the next attempt is due, in ms since the epoch.
    pub next_attempt_at: u64,
}

impl OutboxRecord {
    /// Gives up on it as no longer needed (see [`OutboxRecord::withdrawn`]).
    pub(crate) fn withdraw(&mut self) {
        self.gave_up = true;
        self.withdrawn = true;
    }
}
