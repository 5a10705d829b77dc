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
//! shared responder, for whoever clicks it.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use crate::journal::services::Services;
use crate::model::outbox::OutboxRecord;
use crate::model::request::RequestStatus;
use crate::model::view::Request;

pub use crate::model::outbox::{Attempt, Notify};

/// The most delivery attempts per notification.
const MAX_ATTEMPTS: usize = 8;

/// The background sender of the outbox.
pub(crate) struct Notifier {
    wake: std::sync::Arc<tokio::sync::Notify>,
    base_url: Option<String>,
    client: reqwest::Client,
}

impl Notifier {
    pub(crate) fn new(base_url: Option<String>, wake: std::sync::Arc<tokio::sync::Notify>) -> Self {
        Notifier {
            wake,
            base_url,
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
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
                let next_due = match self.deliver_due(&services).await {
                    Ok(next_due) => next_due,
                    Err(error) => {
                        tracing::error!(%error, "reading the notification outbox failed");
                        Some(crate::clock::to_millis(services.clock.now()) + 1_000)
                    }
                };
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

    /// Sends every notification that is due; returns when the next one will be.
    async fn deliver_due(&self, services: &Services) -> crate::Result<Option<u64>> {
        let mut next_due = None::<u64>;
        let mut secret = None;
        for mut record in services.store.undelivered()? {
            let now = crate::clock::to_millis(services.clock.now());
            if record.next_attempt_at > now {
                next_due =
                    Some(next_due.map_or(record.next_attempt_at, |due| due.min(record.next_attempt_at)));
                continue;
            }
            let Some(request) = services.store.load_request(&record.request_id)? else {
                record.gave_up = true;
                services.store.save_outbox(&record)?;
                continue;
            };
            // Retrying an announcement of a request that is no longer open helps nobody.
            if !record.attempts.is_empty() && request.status != RequestStatus::Pending {
                record.gave_up = true;
                services.store.save_outbox(&record)?;
                continue;
            }
            if secret.is_none() && self.base_url.is_some() {
                secret = Some(crate::links::secret(services.store.as_ref())?);
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
            services.store.save_outbox(&record)?;
        }
        Ok(next_due)
    }

    /// The JSON body of a delivery. With a `base_url`, `link` opens the request's page (after
    /// signing in) and `links` are signed links that open just this request's form, one per
    /// responder they vouch for (see [`crate::links`]).
    fn payload(&self, record: &OutboxRecord, request: &Request, secret: Option<&[u8]>) -> serde_json::Value {
        let link = self
            .base_url
            .as_ref()
            .map(|base| format!("{base}/requests/{}", crate::sign::percent_encode(&request.id)));
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
                        Some(shared_link(base, secret, request, responder))
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
        }
    }
}

/// A Block Kit message: headline, prompt, details (as mrkdwn), and an "Answer" button to
/// the request's page; with [`Notify::signed_link_as`], a second button with the shared
/// signed link.
fn slack_message(
    record: &OutboxRecord,
    request: &Request,
    message: Option<&str>,
    link: Option<&str>,
    shared: Option<&crate::links::SignedLink>,
) -> serde_json::Value {
    let headline = message.unwrap_or("Feedback needed");
    let mut blocks = vec![
        serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": headline}}),
        serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", escape(&request.prompt))}}),
    ];
    if let Some(details) = &request.details {
        blocks.push(
            serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn(details)}}),
        );
    }
    blocks.push(
        serde_json::json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": format!("workflow `{}` · run `{}` · request `{}`",
            escape(&request.workflow), escape(&request.run_id), escape(&request.id))}]}),
    );
    if let Some(link) = link {
        // The request's page: whoever clicks signs in as themselves and comes back to it.
        let mut elements = vec![serde_json::json!({
            "type": "button", "text": {"type": "plain_text", "text": "Answer"},
            "style": "primary", "url": link, "action_id": format!("open-{}", request.id)})];
        if let Some(shared) = shared {
            elements.push(serde_json::json!({
                "type": "button",
                "text": {"type": "plain_text", "text": format!("Answer as {} (shared link)", shared.responder)},
                "url": shared.url,
                "action_id": format!("answer-{}-{}", request.id, shared.responder)}));
        }
        blocks.push(serde_json::json!({"type": "actions", "elements": elements}));
    }
    serde_json::json!({
        "text": format!("{headline}: {}", escape(&request.prompt)),
        "blocks": blocks,
        "metadata": {"event_type": "hitl_feedback_requested", "event_payload": {"idempotency_id": record.id}},
    })
}

/// The opt-in shared link of [`Notify::signed_link_as`]: signed for `responder`, expiring
/// with the request's deadline (or a week after it was made), like a webhook's links.
fn shared_link(base: &str, secret: &[u8], request: &Request, responder: &str) -> crate::links::SignedLink {
    let expires = request
        .expires_at
        .unwrap_or(request.created_at + crate::links::DEFAULT_LINK_TTL);
    let expires = crate::sign::unix_seconds(expires);
    crate::links::SignedLink {
        url: format!(
            "{base}{}",
            crate::sign::link_path(secret, &request.id, responder, expires)
        ),
        responder: responder.to_owned(),
        expires_at: humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires),
        )
        .to_string(),
    }
}

/// Escapes the three characters Slack's text formats give meaning to.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Markdown (CommonMark) as Slack mrkdwn: `**bold**` → `*bold*`, `*it*`/`_it_` → `_it_`,
/// `~~gone~~` → `~gone~`, `[text](url)` → `<url|text>`, headings → bold lines, lists as `•`
/// or numbered lines (nested ones indented), quotes as `>` lines, code kept; `&`, `<` and `>`
/// escaped everywhere. Raw HTML is shown as text; a link whose target is not `http`,
/// `https` or `mailto` keeps only its text.
pub(crate) fn mrkdwn(markdown: &str) -> String {
    let mut writer = Mrkdwn::default();
    for event in Parser::new_ext(
        markdown,
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS,
    ) {
        writer.event(event);
    }
    writer.out.trim_end().to_owned()
}

#[derive(Clone, Copy)]
enum Span {
    Bold,
    Italic,
    Strike,
}

/// The state of a Markdown → mrkdwn conversion.
#[derive(Default)]
struct Mrkdwn {
    out: String,
    /// Open lists: the next number of an ordered one, `None` for bullets.
    lists: Vec<Option<u64>>,
    /// Inside a block quote.
    quote: usize,
    /// Inside a code block: text goes out as it is (escaped).
    code_block: bool,
    /// Open bold / italic / strike spans (headings count as bold): nested ones add no marker.
    bold: usize,
    italic: usize,
    strike: usize,
    /// Inside a link: its target and the text gathered so far.
    link: Option<(String, String)>,
    /// An item marker was just written: the item's first paragraph starts on its line.
    item_start: bool,
}

impl Mrkdwn {
    fn push(&mut self, text: &str) {
        match &mut self.link {
            Some((_, gathered)) => gathered.push_str(text),
            None => self.out.push_str(text),
        }
    }

    fn newline(&mut self) {
        self.out.push('\n');
        if self.quote > 0 {
            self.out.push_str("> ");
        }
    }

    /// Drops trailing spaces and a quote prefix that begins an empty line (never a `>`
    /// that closes a link).
    fn trim_line_end(&mut self) {
        let trimmed = self.out.trim_end_matches(' ').len();
        self.out.truncate(trimmed);
        if self.out.ends_with("\n>") {
            self.out.pop();
        }
    }

    /// Starts a block: after an empty line, unless it opens a list item's line.
    fn block(&mut self) {
        if std::mem::take(&mut self.item_start) || self.out.is_empty() {
            return;
        }
        self.trim_line_end();
        if self.lists.is_empty() {
            self.out.push('\n');
            if self.quote > 0 {
                self.out.push_str(">\n> ");
            } else {
                self.out.push('\n');
            }
        } else {
            self.newline();
        }
    }

    /// Opens or closes a span; only the outermost of nested same spans writes its marker.
    fn span(&mut self, which: Span, opening: bool) {
        let (depth, marker) = match which {
            Span::Bold => (&mut self.bold, "*"),
            Span::Italic => (&mut self.italic, "_"),
            Span::Strike => (&mut self.strike, "~"),
        };
        let outermost = if opening {
            *depth += 1;
            *depth == 1
        } else {
            *depth = depth.saturating_sub(1);
            *depth == 0
        };
        if outermost {
            self.push(marker);
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) if self.code_block => {
                let mut lines = text.split('\n').peekable();
                while let Some(line) = lines.next() {
                    self.out.push_str(&escape(line));
                    if lines.peek().is_some() {
                        self.newline();
                    }
                }
            }
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => {
                self.item_start = false;
                let text = escape(&text);
                let mut lines = text.split('\n').peekable();
                while let Some(line) = lines.next() {
                    self.push(line);
                    if lines.peek().is_some() && !line.is_empty() {
                        self.newline();
                    }
                }
            }
            Event::Code(code) => {
                self.item_start = false;
                self.push(&format!("`{}`", escape(&code)));
            }
            Event::SoftBreak | Event::HardBreak => match &mut self.link {
                Some((_, gathered)) => gathered.push(' '),
                None => self.newline(),
            },
            Event::Rule => {
                self.block();
                self.out.push_str("———");
            }
            Event::TaskListMarker(done) => self.push(if done { "☑ " } else { "☐ " }),
            _ => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock => self.block(),
            Tag::Heading { .. } => {
                self.block();
                self.span(Span::Bold, true);
            }
            Tag::BlockQuote(_) => {
                self.block();
                if self.quote == 0 {
                    self.out.push_str("> ");
                }
                self.quote += 1;
                self.item_start = true;
            }
            Tag::CodeBlock(_) => {
                self.block();
                self.out.push_str("```");
                self.newline();
                self.code_block = true;
            }
            Tag::List(start) => {
                if self.lists.is_empty() {
                    self.block();
                    self.item_start = true;
                }
                self.lists.push(start);
            }
            Tag::Item => {
                if !std::mem::take(&mut self.item_start) {
                    self.newline();
                }
                let depth = self.lists.len().saturating_sub(1);
                self.out.push_str(&"    ".repeat(depth));
                let marker = match self.lists.last_mut() {
                    Some(Some(number)) => {
                        *number += 1;
                        format!("{}. ", *number - 1)
                    }
                    _ => "• ".to_owned(),
                };
                self.out.push_str(&marker);
                self.item_start = true;
            }
            Tag::Emphasis => {
                self.span(Span::Italic, true);
            }
            Tag::Strong => {
                self.span(Span::Bold, true);
            }
            Tag::Strikethrough => {
                self.span(Span::Strike, true);
            }
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                self.item_start = false;
                self.link = Some((dest_url.to_string(), String::new()));
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) | TagEnd::Strong => {
                self.span(Span::Bold, false);
            }
            TagEnd::Emphasis => {
                self.span(Span::Italic, false);
            }
            TagEnd::Strikethrough => {
                self.span(Span::Strike, false);
            }
            TagEnd::BlockQuote(_) => {
                self.quote -= 1;
            }
            TagEnd::CodeBlock => {
                self.code_block = false;
                self.trim_line_end();
                let trimmed = self.out.trim_end_matches('\n').len();
                self.out.truncate(trimmed);
                self.newline();
                self.out.push_str("```");
            }
            TagEnd::List(_) => {
                self.lists.pop();
            }
            TagEnd::Item => self.item_start = false,
            TagEnd::Link | TagEnd::Image => {
                if let Some((url, text)) = self.link.take() {
                    let lower = url.trim().to_ascii_lowercase();
                    let safe = ["http:", "https:", "mailto:"]
                        .iter()
                        .any(|scheme| lower.starts_with(scheme))
                        && !url.chars().any(char::is_control);
                    let target = escape(url.trim()).replace('|', "%7C");
                    let written = match (safe, text.is_empty()) {
                        (false, _) => text,
                        (true, true) => format!("<{target}>"),
                        (true, false) if text == escape(url.trim()) => format!("<{target}>"),
                        (true, false) => format!("<{target}|{text}>"),
                    };
                    self.push(&written);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mrkdwn;

    #[test]
    fn emphasis_becomes_slack_emphasis() {
        assert_eq!(mrkdwn("**bold** and __bold__"), "*bold* and *bold*");
        assert_eq!(mrkdwn("*it* and _it_"), "_it_ and _it_");
        assert_eq!(mrkdwn("~~gone~~ and `a*b`"), "~gone~ and `a*b`");
        assert_eq!(mrkdwn("***both***"), "_*both*_");
        assert_eq!(mrkdwn("**outer *inner* outer**"), "*outer _inner_ outer*");
    }

    #[test]
    fn links_become_slack_links() {
        assert_eq!(
            mrkdwn("see [the runbook](https://example.com/a?b=1&c=2)"),
            "see <https://example.com/a?b=1&amp;c=2|the runbook>"
        );
        assert_eq!(mrkdwn("<https://example.com>"), "<https://example.com>");
        assert_eq!(
            mrkdwn("see [a](https://a.example)\n\nthen [b](https://b.example)"),
            "see <https://a.example|a>\n\nthen <https://b.example|b>",
            "a link that ends a paragraph keeps its closing `>`"
        );
        assert_eq!(
            mrkdwn("[mail](mailto:ops@example.com)"),
            "<mailto:ops@example.com|mail>"
        );
        assert_eq!(
            mrkdwn("[a|b](https://example.com/x|y)"),
            "<https://example.com/x%7Cy|a|b>",
            "a `|` in the target cannot end it early"
        );
        assert_eq!(
            mrkdwn("[click](javascript:alert(1))"),
            "click",
            "a script target keeps only its text"
        );
        assert_eq!(
            mrkdwn("![graph](https://example.com/g.png)"),
            "<https://example.com/g.png|graph>"
        );
    }

    #[test]
    fn headings_become_bold_lines_and_paragraphs_stay_apart() {
        assert_eq!(
            mrkdwn("# Canary report\n\nError rate **0.1 %**.\n\n## Next"),
            "*Canary report*\n\nError rate *0.1 %*.\n\n*Next*"
        );
        assert_eq!(
            mrkdwn("# A **bold** title"),
            "*A bold title*",
            "no marker inside the bold line"
        );
    }

    #[test]
    fn lists_are_kept_as_lines() {
        assert_eq!(mrkdwn("- one\n- **two**\n- three"), "• one\n• *two*\n• three");
        assert_eq!(
            mrkdwn("Steps:\n\n3. drain\n4. deploy"),
            "Steps:\n\n3. drain\n4. deploy"
        );
        assert_eq!(mrkdwn("- a\n  - b\n- c"), "• a\n    • b\n• c");
        assert_eq!(mrkdwn("- [x] done\n- [ ] todo"), "• ☑ done\n• ☐ todo");
        assert_eq!(mrkdwn("- one\n- two\n\nafter"), "• one\n• two\n\nafter");
    }

    #[test]
    fn control_characters_are_escaped_and_html_is_text() {
        assert_eq!(mrkdwn("a < b & c > d"), "a &lt; b &amp; c &gt; d");
        assert_eq!(
            mrkdwn("<script>alert(1)</script> and <!here>"),
            "&lt;script&gt;alert(1)&lt;/script&gt; and &lt;!here&gt;"
        );
        assert_eq!(
            mrkdwn("`<@U123>`"),
            "`&lt;@U123&gt;`",
            "no mention through code either"
        );
    }

    #[test]
    fn code_blocks_and_quotes_are_kept() {
        assert_eq!(mrkdwn("```\nlet a = b < c;\n```"), "```\nlet a = b &lt; c;\n```");
        assert_eq!(mrkdwn("> careful\n> now\n\nok"), "> careful\n> now\n\nok");
        assert_eq!(mrkdwn("line one\nline two"), "line one\nline two");
        assert_eq!(mrkdwn("above\n\n---\n\nbelow"), "above\n\n———\n\nbelow");
    }
}
