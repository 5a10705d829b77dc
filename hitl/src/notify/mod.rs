//! Notifications: telling a human that a request waits for them.
//!
//! A request's notifications are written to the *outbox* in the same atomic write as the
//! request itself, so they are never lost and never re-sent on replay (a replay finds the
//! request and writes nothing). A background sender delivers them with retries and backoff
//! and records every attempt; each delivery carries a stable idempotency id
//! (`Idempotency-Key` header and `idempotency_id` field), so after a crash between sending
//! and recording, the receiver can drop the duplicate. A failing receiver never blocks or
//! loses the request: it stays answerable whatever happens to its notifications.
//!
//! A Slack message is seen by everyone in its channel, so it carries no identity: its
//! "Answer" button opens the request's page, where each person signs in with their own
//! credentials. Only [`Notify::signed_link_as`] adds a signed link that answers as one
//! shared responder, for whoever clicks it. An e-mail ([`Notify::email`]) goes to one
//! person, so its link answers as that person. It is handed to the engine's SMTP server
//! ([`Smtp`]: a relay, or a provider over TLS); a 5xx refusal ends its retries at once, other
//! failures are retried for a day, and an engine without a server leaves it waiting.

mod capture;
mod email;
mod mrkdwn;
mod slack;
mod smtp;

use std::sync::Arc;

use crate::journal::services::Services;
use crate::links::signed_link;
use crate::model::outbox::OutboxRecord;
use crate::model::request::RequestStatus;
use crate::model::view::Request;
use crate::util::InFlight;
use email::{Letter, email_message, email_text};
use slack::slack_message;

pub use crate::model::outbox::{Attempt, Notify};
pub(crate) use capture::Capture;
pub use capture::SentNotification;
pub use smtp::Smtp;

/// The most due notifications one round claims.
const CLAIM_BATCH: usize = 100;

/// How long a webhook or Slack post may take before it counts as failed.
const POST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The most delivery attempts per webhook or Slack notification.
const MAX_ATTEMPTS: usize = 8;

/// How long an e-mail is retried after its first attempt: mail relays restart and queue, and
/// SMTP's own custom is to keep trying for days (RFC 5321 §4.5.4.1); one day, while its
/// request is open.
const EMAIL_RETRY_FOR_MS: u64 = 24 * 3600 * 1000;

/// The longest wait between two tries of a webhook or Slack post.
const POST_BACKOFF_CAP_MS: u64 = 5 * 60 * 1000;

/// The longest wait between two tries of an e-mail: RFC 5321 §4.5.4.1 asks for at least 30
/// minutes once a message has failed, and a day of tries stays near 60, not near 300.
const EMAIL_BACKOFF_CAP_MS: u64 = 30 * 60 * 1000;

/// Why an e-mail waits on an engine without an SMTP relay.
const NO_RELAY: &str =
    "this engine has no SMTP relay for e-mail (EngineBuilder::smtp): it waits for one that has";

/// How often an engine without a relay looks at an e-mail again (one with a relay, on a
/// shared store, may have sent it meanwhile).
const RELAY_RECHECK_MS: u64 = 5 * 60 * 1000;

/// The background sender of the outbox.
pub(crate) struct Notifier {
    wake: std::sync::Arc<tokio::sync::Notify>,
    base_url: Option<String>,
    client: reqwest::Client,
    smtp: Option<Smtp>,
    /// How long a claimed notification is this sender's before another may retry it.
    claim_for_ms: u64,
    /// How many notifications a round claims: as many as it can send one after the other
    /// within the claim even if each takes its whole timeout, so that no claim lapses while
    /// its notification waits its turn and another worker sends it too.
    claim_batch: usize,
    /// Under `hitl::testing`: notifications are recorded here instead of being sent.
    capture: Option<Arc<Capture>>,
    /// The round of deliveries under way, if any: what [`Notifier::caught_up`] waits on.
    delivering: Arc<InFlight>,
}

impl Notifier {
    pub(crate) fn new(
        base_url: Option<String>,
        smtp: Option<Smtp>,
        wake: std::sync::Arc<tokio::sync::Notify>,
        claim_for: std::time::Duration,
        capture: Option<Arc<Capture>>,
    ) -> Self {
        let attempt = attempt_bound(smtp.as_ref());
        // A claim outlasts one attempt at its longest, so that a slow receiver never lets it
        // lapse mid-send (and another worker send it too).
        let claim_for = claim_for.max(attempt);
        let fits = claim_for.as_millis() / attempt.as_millis().max(1);
        Notifier {
            wake,
            base_url,
            smtp,
            claim_for_ms: claim_for.as_millis() as u64,
            claim_batch: (fits as usize).clamp(1, CLAIM_BATCH),
            capture,
            delivering: Arc::default(),
            client: reqwest::Client::builder()
                .timeout(POST_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// Delivers due notifications until the engine's services are gone.
    pub(crate) async fn run(self: std::sync::Arc<Self>, services: std::sync::Weak<Services>) {
        loop {
            let mut woken = std::pin::pin!(self.wake.notified());
            woken.as_mut().enable();
            let next_due = {
                // Hold the services only while delivering: a dropped engine ends the loop.
                let Some(services) = services.upgrade() else {
                    return;
                };
                let round = self.delivering.enter();
                let next_due = match self.deliver_due(&services).await {
                    Ok(next_due) => next_due,
                    Err(error) => {
                        tracing::error!(%error, "reading the notification outbox failed");
                        Some(crate::clock::to_millis(services.clock.now()) + 1_000)
                    }
                };
                drop(round);
                next_due.map(|due| (due, services.clock.clone()))
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

    /// Waits until no notification is due at the clock's time and no round of deliveries is
    /// under way: everything due has been sent (or, under a test kit, recorded). What
    /// `hitl::testing` waits on; it needs the engine's sender to be running.
    pub(crate) async fn caught_up(&self, services: &Services) -> crate::Result<()> {
        loop {
            let mut done = std::pin::pin!(self.delivering.ended());
            done.as_mut().enable();
            let now = crate::clock::to_millis(services.clock.now());
            // The store first: a round is counted in before it claims (and so hides) what it
            // sends.
            if services.store.due_notifications(now, 1).await?.is_empty() && self.delivering.is_idle() {
                return Ok(());
            }
            done.await;
        }
    }

    /// Sends every notification that is due; returns when the next one will be.
    async fn deliver_due(&self, services: &Services) -> crate::Result<Option<u64>> {
        let mut secret = None;
        // The due ones, claimed: another worker on a shared store does not send them too, and
        // if this one dies mid-delivery they are due again once the claim lapses.
        let claimed_at = crate::clock::to_millis(services.clock.now());
        let due = services
            .store
            .claim_notifications(claimed_at, claimed_at + self.claim_for_ms, self.claim_batch)
            .await?;
        let more = due.len() == self.claim_batch;
        for mut record in due {
            let now = crate::clock::to_millis(services.clock.now());
            let Some(request) = services.store.load_request(&record.request_id).await? else {
                record.gave_up = true;
                services.store.save_outbox(&record).await?;
                continue;
            };
            // Retrying an announcement of a request that is no longer open helps nobody.
            if !record.attempts.is_empty() && request.status != RequestStatus::Pending {
                record.withdraw();
                services.store.save_outbox(&record).await?;
                continue;
            }
            if secret.is_none() && self.base_url.is_some() {
                secret = Some(crate::links::secret(services.store.as_ref()).await?);
            }
            let request = request.view();
            let (attempt, permanent) = match (&record.notify, &self.smtp, &self.capture) {
                (_, _, Some(capture)) => {
                    capture.record(self.captured(&record, &request, secret.as_deref(), now));
                    (sent(now, 200), false)
                }
                (Notify::Email { .. }, None, None) => {
                    wait_for_a_relay(&mut record, now);
                    services.store.save_outbox(&record).await?;
                    continue;
                }
                (Notify::Email { .. }, Some(smtp), None) => {
                    self.email(smtp, &record, &request, secret.as_deref(), now).await
                }
                _ => self.post(&record, &request, secret.as_deref(), now).await,
            };
            let delivered = attempt.error.is_none();
            tracing::debug!(notification = %record.id, delivered, "notification attempt");
            record.attempts.push(attempt);
            if delivered {
                record.delivered_at = Some(now);
            } else if permanent || out_of_retries(&record) {
                record.gave_up = true;
                tracing::warn!(
                    notification = %record.id,
                    attempts = record.attempts.len(),
                    error = record.attempts.last().and_then(|attempt| attempt.error.as_deref()),
                    "giving up on a notification"
                );
            } else {
                record.next_attempt_at = now + backoff_ms(&record.notify, record.attempts.len());
            }
            services.store.save_outbox(&record).await?;
            if !record.gave_up && record.delivered_at.is_none() {
                withdraw_if_closed(services, &mut record).await?;
            }
        }
        if more {
            return Ok(Some(claimed_at));
        }
        // The soonest undelivered one (this engine's or, on a shared store, another's) says
        // when to look again.
        Ok(services
            .store
            .due_notifications(u64::MAX, 1)
            .await?
            .first()
            .map(|record| record.next_attempt_at))
    }

    /// Sends an e-mail notification through `smtp`: one attempt, and whether its failure is
    /// one that retrying cannot mend.
    async fn email(
        &self,
        smtp: &Smtp,
        record: &OutboxRecord,
        request: &Request,
        secret: Option<&[u8]>,
        now: u64,
    ) -> (Attempt, bool) {
        let Some(letter) = self.letter(&smtp.from, record, request, secret, now) else {
            return failed(
                now,
                None,
                format!("a {} notification is not an e-mail", record.notify.channel()),
                true,
            );
        };
        match smtp::send(smtp, letter.to, &email_message(record, request, &letter)).await {
            Ok(code) => (sent(now, code), false),
            Err(failure) => {
                let permanent = failure.is_permanent();
                failed(now, failure.code, failure.error, permanent)
            }
        }
    }

    /// The e-mail `record` sends from `from`, at `now`: its recipient, subject and links
    /// (the request's page, and a link that answers as the recipient, or as the responder
    /// it names, if the request lets them answer). `None` for a notification that is not an
    /// e-mail.
    fn letter<'a>(
        &self,
        from: &'a str,
        record: &'a OutboxRecord,
        request: &Request,
        secret: Option<&[u8]>,
        now: u64,
    ) -> Option<Letter<'a>> {
        let Notify::Email {
            to,
            message,
            responder,
        } = &record.notify
        else {
            return None;
        };
        let responder = responder.as_deref().unwrap_or(to);
        let may_answer =
            request.responders.is_empty() || request.responders.iter().any(|name| name == responder);
        let personal = match (&self.base_url, secret) {
            (Some(base), Some(secret)) if may_answer => Some(signed_link(base, secret, request, responder)),
            _ => None,
        };
        Some(Letter {
            from,
            to,
            subject: message.as_deref(),
            page: self.page_link(request),
            personal,
            sent_at: now / 1000,
        })
    }

    /// What a notification would send, recorded instead of sent (`hitl::testing`).
    fn captured(
        &self,
        record: &OutboxRecord,
        request: &Request,
        secret: Option<&[u8]>,
        now: u64,
    ) -> SentNotification {
        let from = self
            .smtp
            .as_ref()
            .map_or("hitl@localhost", |smtp| smtp.from.as_str());
        let (to, body) = match self.letter(from, record, request, secret, now) {
            Some(letter) => {
                let (subject, text) = email_text(request, &letter);
                let body = serde_json::json!({ "from": from, "subject": subject, "text": text });
                (letter.to.to_owned(), body)
            }
            None => (
                record.notify.url().unwrap_or_default().to_owned(),
                self.payload(record, request, secret),
            ),
        };
        SentNotification {
            channel: record.notify.channel(),
            to,
            request_id: request.id.clone(),
            run_id: request.run_id.clone(),
            idempotency_id: record.id.clone(),
            body,
        }
    }

    /// Posts a webhook or Slack notification: one attempt, and whether its failure is one
    /// that retrying cannot mend.
    async fn post(
        &self,
        record: &OutboxRecord,
        request: &Request,
        secret: Option<&[u8]>,
        now: u64,
    ) -> (Attempt, bool) {
        let Some(url) = record.notify.url() else {
            return failed(
                now,
                None,
                format!("a {} notification has no URL", record.notify.channel()),
                true,
            );
        };
        let body = self.payload(record, request, secret);
        let result = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("idempotency-key", &record.id)
            .body(body.to_string())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => (sent(now, response.status().as_u16()), false),
            Ok(response) => {
                let status = response.status();
                failed(
                    now,
                    Some(status.as_u16()),
                    format!("the receiver answered {status}"),
                    false,
                )
            }
            Err(error) => failed(now, None, error.without_url().to_string(), false),
        }
    }

    /// The request's page, where a person signs in to answer: `{base_url}/requests/{id}`.
    fn page_link(&self, request: &Request) -> Option<String> {
        self.base_url
            .as_ref()
            .map(|base| format!("{base}/requests/{}", crate::sign::percent_encode(&request.id)))
    }

    /// The JSON body of a delivery. With a `base_url`, `link` opens the request's page (after
    /// signing in) and `links` are signed links that open just this request's form, one per
    /// responder they vouch for (see [`crate::links`]).
    fn payload(&self, record: &OutboxRecord, request: &Request, secret: Option<&[u8]>) -> serde_json::Value {
        let link = self.page_link(request);
        let links = match (&self.base_url, secret, &record.notify) {
            (Some(base), Some(secret), Notify::Webhook { .. }) => {
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
            Notify::Slack {
                message,
                signed_link_as,
                ..
            } => {
                let shared = match (&self.base_url, secret, signed_link_as) {
                    (Some(base), Some(secret), Some(responder)) => {
                        Some(signed_link(base, secret, request, responder))
                    }
                    _ => None,
                };
                slack_message(
                    record,
                    request,
                    message.as_deref(),
                    link.as_deref(),
                    shared.as_ref(),
                )
            }
            // An e-mail is not posted: `email` sends it over SMTP.
            Notify::Email { .. } => serde_json::Value::Null,
        }
    }
}

/// The longest one delivery attempt takes: the slower transport's timeout, and a second
/// for the reads and writes around it.
fn attempt_bound(smtp: Option<&Smtp>) -> std::time::Duration {
    let email = smtp.map_or(std::time::Duration::ZERO, |smtp| smtp.timeout + smtp::QUIT_WAIT);
    POST_TIMEOUT.max(email) + std::time::Duration::from_secs(1)
}

/// How long to wait after the `failures`-th failed try (1 for the first): 0.5 s, doubling,
/// up to 5 minutes for a post and 30 minutes for an e-mail.
fn backoff_ms(notify: &Notify, failures: usize) -> u64 {
    let cap = match notify {
        Notify::Email { .. } => EMAIL_BACKOFF_CAP_MS,
        _ => POST_BACKOFF_CAP_MS,
    };
    (500u64 << failures.saturating_sub(1).min(16)).min(cap)
}

/// A delivered attempt, with the receiver's status code.
fn sent(at: u64, status: u16) -> Attempt {
    Attempt {
        at,
        status: Some(status),
        error: None,
    }
}

/// A failed attempt, and whether retrying cannot mend it.
fn failed(at: u64, status: Option<u16>, error: String, permanent: bool) -> (Attempt, bool) {
    (
        Attempt {
            at,
            status,
            error: Some(error),
        },
        permanent,
    )
}

/// Whether a failed notification has had its last try: eight attempts for a webhook or a Slack
/// message, [`EMAIL_RETRY_FOR_MS`] after the first one for an e-mail.
fn out_of_retries(record: &OutboxRecord) -> bool {
    match &record.notify {
        Notify::Email { .. } => {
            // The day counts from the first real try, not from a wait for a relay.
            let mut tried = record
                .attempts
                .iter()
                .filter(|attempt| attempt.error.as_deref() != Some(NO_RELAY));
            match (tried.next(), record.attempts.last()) {
                (Some(first), Some(last)) => last.at.saturating_sub(first.at) >= EMAIL_RETRY_FOR_MS,
                _ => false,
            }
        }
        _ => record.attempts.len() >= MAX_ATTEMPTS,
    }
}

/// Keeps an e-mail waiting on an engine without a relay: the reason is recorded if nothing
/// has been tried yet, and the e-mail is looked at again in [`RELAY_RECHECK_MS`] (by any
/// engine: on a shared store, one with a relay may take it first). Once its request is
/// answered or closed, the next look gives it up.
fn wait_for_a_relay(record: &mut OutboxRecord, now: u64) {
    if record.attempts.is_empty() {
        record.attempts.push(Attempt {
            at: now,
            status: None,
            error: Some(NO_RELAY.to_owned()),
        });
    }
    record.next_attempt_at = now + RELAY_RECHECK_MS;
}

/// Withdraws a notification whose request closed while its attempt was in flight. Whoever
/// closed the request (a rewind, a cancel) withdrew the pending notifications it found, but
/// this attempt's save came after and put the notification back to pending. Read after that
/// save, the request's status is the one that closing left, so one of the two writers always
/// sees the other: the closer finds the saved attempt, or this read finds the close.
async fn withdraw_if_closed(services: &Services, record: &mut OutboxRecord) -> crate::Result<()> {
    // A request that is gone is the next pass's to handle, as at the top of a pass.
    let closed = services
        .store
        .load_request(&record.request_id)
        .await?
        .is_some_and(|request| request.status != RequestStatus::Pending);
    if closed {
        record.withdraw();
        services.store.save_outbox(record).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Notifier, Notify, Smtp};

    fn notifier(claim_for: Duration, smtp: Option<Smtp>) -> Notifier {
        Notifier::new(None, smtp, Arc::default(), claim_for, None)
    }

    #[test]
    fn a_round_claims_what_it_can_send_within_the_claim_at_the_slowest() {
        // 30 s (the default lease) holds two posts of at most 11 s each.
        assert_eq!(notifier(Duration::from_secs(30), None).claim_batch, 2);
        assert_eq!(notifier(Duration::from_secs(600), None).claim_batch, 54);
        assert_eq!(
            notifier(Duration::from_secs(3_600), None).claim_batch,
            super::CLAIM_BATCH
        );
        // An e-mail may take its SMTP timeout and the QUIT wait.
        let slow_relay = Smtp::relay("127.0.0.1:25").timeout(Duration::from_secs(60));
        assert_eq!(
            notifier(Duration::from_secs(600), Some(slow_relay)).claim_batch,
            9
        );
    }

    #[test]
    fn retries_back_off_from_half_a_second_to_five_minutes_for_a_post_and_thirty_for_an_email() {
        let post = Notify::webhook("https://hooks.example.com/hitl");
        let email = Notify::email("alice@example.com");
        let waits = |notify: &Notify| (1..=14).map(|n| super::backoff_ms(notify, n)).collect::<Vec<_>>();
        assert_eq!(waits(&post)[..4], [500, 1_000, 2_000, 4_000]);
        assert_eq!(*waits(&post).last().unwrap(), 5 * 60 * 1000);
        assert_eq!(waits(&email)[..4], [500, 1_000, 2_000, 4_000]);
        assert_eq!(*waits(&email).last().unwrap(), 30 * 60 * 1000);
        assert_eq!(super::backoff_ms(&email, 1_000), 30 * 60 * 1000);
        // A day of e-mail tries, from the first failure.
        let (mut elapsed, mut tries) = (0, 1);
        while elapsed < 24 * 3600 * 1000 {
            elapsed += super::backoff_ms(&email, tries);
            tries += 1;
        }
        assert!((55..=65).contains(&tries), "{tries} tries in a day");
    }

    #[test]
    fn a_claim_outlasts_one_attempt_however_short_the_lease() {
        let notifier = notifier(Duration::from_secs(1), None);
        assert_eq!(notifier.claim_for_ms, 11_000);
        assert_eq!(notifier.claim_batch, 1);
    }
}
