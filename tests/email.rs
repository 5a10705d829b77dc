//! E-mail notifications: a request's e-mail reaches its one recipient through a real SMTP
//! server, with a link that answers as them; a 5xx refusal ends the retries, a 4xx is retried,
//! a bad address is never sent, and none of it blocks the request.
//!
//! The server is Python's `smtpd` on 127.0.0.1 ([`Sink`], `tests/smtp_sink.py`), a child
//! process killed when the test ends. It parses each message with Python's `email` package,
//! so subjects, headers and the base64 body are read by an implementation that is not hitl's,
//! and prints it as a JSON line that the test waits for.

use std::process::Stdio;

use hitl::notify::{Attempt, Smtp};
use hitl::prelude::*;
use hitl::run::StepStatus;
use hitl::{HistoryEntry, StepKind};
use hitl_workspace::{PATIENCE, eventually, paused_on_one};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

const SENDER: &str = "approvals@example.com";

/// Asks whether to ship, of `alice` and `bob`, notifying everyone in `notify`.
#[workflow(inject_context)]
async fn ship(ctx: &TaskContext, notify: Vec<Notify>) -> hitl::Result<String> {
    let mut ask = Feedback::approval("Ship release 1.4?")
        .details("Canary error rate: **0.1 %**\n.\nThe line above is a lone dot.")
        .responders(["alice", "bob"]);
    for receiver in notify {
        ask = ask.notify(receiver);
    }
    let answer = ctx.request_feedback(ask).await?;
    Ok(format!(
        "approved={} by {}",
        answer.approved(),
        answer.responder()
    ))
}

/// The SMTP server: a child process, and the JSON lines it prints.
struct Sink {
    port: u16,
    lines: mpsc::UnboundedReceiver<Value>,
    _child: tokio::process::Child,
}

impl Sink {
    async fn start() -> Sink {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs the SMTP sink (tests/smtp_sink.py)");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(PATIENCE, stdout.next_line())
            .await
            .expect("the SMTP sink never said it was listening")
            .unwrap()
            .expect("the SMTP sink ended before listening: it needs python3 with smtpd (3.11 or older)");
        let port = first
            .strip_prefix("listening ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP sink said {first:?}"));
        let (send, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
                if send.send(value).is_err() {
                    return;
                }
            }
        });
        Sink {
            port,
            lines,
            _child: child,
        }
    }

    fn relay(&self) -> Smtp {
        Smtp::relay(format!("127.0.0.1:{}", self.port)).from(SENDER)
    }

    /// The next thing the sink printed: a message, or a refusal.
    async fn next(&mut self) -> Value {
        tokio::time::timeout(PATIENCE, self.lines.recv())
            .await
            .expect("the SMTP sink got nothing more")
            .expect("the SMTP sink ended")
    }
}

async fn answer_and_complete(engine: &Engine, run: &hitl::Run<String>, request: &hitl::Request) {
    engine
        .respond(&request.id, Response::approve(), Responder::new("bob"))
        .await
        .unwrap();
    let outcome = tokio::time::timeout(PATIENCE, run.wait())
        .await
        .expect("the run never finished")
        .unwrap();
    assert_eq!(outcome.completed().as_deref(), Some("approved=true by bob"));
}

/// The run's notification entries once none of them is waiting any more.
async fn settled_notifications(engine: &Engine, run_id: &str, count: usize) -> Vec<HistoryEntry> {
    eventually(
        format!("{count} notifications delivered or given up"),
        async || {
            let entries: Vec<HistoryEntry> = engine
                .history(run_id)
                .await
                .unwrap()
                .into_iter()
                .filter(|entry| entry.kind == StepKind::Notification)
                .collect();
            (entries.len() == count && entries.iter().all(|entry| entry.status != StepStatus::Waiting))
                .then_some(entries)
        },
    )
    .await
}

fn attempts(entry: &HistoryEntry) -> Vec<Attempt> {
    serde_json::from_value(entry.output["attempts"].clone()).unwrap()
}

fn entry_to<'a>(entries: &'a [HistoryEntry], address: &str) -> &'a HistoryEntry {
    entries
        .iter()
        .find(|entry| entry.output["to"] == address)
        .unwrap_or_else(|| panic!("no notification to {address}: {entries:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_carries_the_request_and_a_link_that_answers_as_its_recipient() {
    let mut sink = Sink::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let engine = Engine::temporary()
        .base_url(&base)
        .smtp(sink.relay())
        .register(ship)
        .open()
        .await
        .unwrap();
    let server = tokio::spawn(hitl::server::serve_with(
        listener,
        engine.clone(),
        hitl::server::ServerConfig::new(),
    ));
    let alice = Notify::email("alice@example.com")
        .responder("alice")
        .message("Släpp 1.4? Svar behövs före fredag — tack!");
    // Carol is not among the request's responders: her e-mail only links to the page.
    let carol = Notify::email("carol@example.com");
    let run = engine.start(ship, (vec![alice, carol],)).await.unwrap();
    let request = paused_on_one(&run).await;
    let page = format!("{base}/requests/{}", request.id);
    let (first, second) = (sink.next().await, sink.next().await);
    let message_to = |address: &str| {
        [&first, &second]
            .into_iter()
            .find(|message| message["rcpt_tos"] == serde_json::json!([address]))
            .unwrap_or_else(|| panic!("no message to {address}: {first:#} {second:#}"))
            .clone()
    };

    let to_alice = message_to("alice@example.com");
    assert_eq!(to_alice["mail_from"], SENDER);
    assert_eq!(to_alice["headers"]["from"], serde_json::json!([SENDER]));
    assert_eq!(
        to_alice["headers"]["to"],
        serde_json::json!(["alice@example.com"])
    );
    assert_eq!(
        to_alice["subject"], "Släpp 1.4? Svar behövs före fredag — tack!",
        "the subject's encoded words decode to what was asked: {to_alice:#}"
    );
    assert_eq!(
        to_alice["headers"]["x-hitl-idempotency-id"],
        serde_json::json!([format!("{}/0", request.id)])
    );
    assert_eq!(
        to_alice["headers"]["message-id"],
        serde_json::json!([format!("<{}/0@hitl>", request.id)])
    );
    let text = to_alice["text"].as_str().unwrap().replace("\r\n", "\n");
    assert!(text.contains("Ship release 1.4?"), "{text}");
    assert!(
        text.contains("Canary error rate: **0.1 %**\n.\nThe line above is a lone dot."),
        "a line of a single dot, which would end SMTP's data, arrives whole: {text}"
    );
    let link = text
        .lines()
        .find_map(|line| line.strip_prefix("Answer as alice: "))
        .unwrap_or_else(|| panic!("no link for alice: {text}"));
    assert!(link.starts_with(&format!("{page}?as=alice&exp=")), "{link}");
    let response = reqwest::get(link).await.unwrap();
    assert_eq!(response.status(), 200);
    let form = response.text().await.unwrap();
    assert!(
        form.contains("Answering as <strong>alice</strong> through a signed link"),
        "{form}"
    );

    let to_carol = message_to("carol@example.com");
    assert_eq!(to_carol["subject"], "Feedback needed: Ship release 1.4?");
    let text = to_carol["text"].as_str().unwrap();
    assert!(!text.contains("Answer as"), "carol may not answer: {text}");
    assert!(text.contains(&format!("Sign in to answer: {page}")), "{text}");

    let entries = settled_notifications(&engine, run.id(), 2).await;
    for address in ["alice@example.com", "carol@example.com"] {
        let entry = entry_to(&entries, address);
        assert_eq!(entry.status, StepStatus::Completed, "{entry:#?}");
        assert_eq!(entry.output["channel"], "email");
        let attempts = attempts(entry);
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(
            attempts[0].status,
            Some(250),
            "the relay's reply to the data: {attempts:?}"
        );
    }
    answer_and_complete(&engine, &run, &request).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_ends_the_retries_a_busy_relay_is_retried_and_a_bad_address_is_never_sent() {
    let mut sink = Sink::start().await;
    let engine = Engine::temporary()
        .smtp(sink.relay())
        .register(ship)
        .open()
        .await
        .unwrap();
    let notify = vec![
        Notify::email("refuse@example.com"),
        Notify::email("busy@example.com"),
        // A display name is not an address: sent as given, it could name other recipients.
        Notify::email("Alice <alice@example.com>"),
    ];
    let run = engine.start(ship, (notify,)).await.unwrap();
    let request = paused_on_one(&run).await;

    assert_eq!(sink.next().await["refused"], 550);
    assert_eq!(sink.next().await["refused"], 451);
    let delivered = sink.next().await;
    assert_eq!(
        delivered["rcpt_tos"],
        serde_json::json!(["busy@example.com"]),
        "{delivered:#}"
    );
    let text = delivered["text"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "Answer it with the hitl CLI or the HTTP API: request {}",
            request.id
        )),
        "without a base_url there is no link: {text}"
    );

    let entries = settled_notifications(&engine, run.id(), 3).await;
    let refused = entry_to(&entries, "refuse@example.com");
    assert_eq!(refused.status, StepStatus::Failed);
    let refused = attempts(refused);
    assert_eq!(refused.len(), 1, "a 5xx is not retried: {refused:?}");
    assert_eq!(refused[0].status, Some(550));
    assert!(
        refused[0].error.as_deref().unwrap().contains("no such mailbox"),
        "{refused:?}"
    );

    let busy = entry_to(&entries, "busy@example.com");
    assert_eq!(busy.status, StepStatus::Completed);
    let busy = attempts(busy);
    let statuses: Vec<_> = busy.iter().map(|attempt| attempt.status).collect();
    assert_eq!(statuses, [Some(451), Some(250)], "{busy:?}");
    assert!(
        busy[1].at >= busy[0].at + 500,
        "the retry waited out the backoff: {busy:?}"
    );

    let bad = entry_to(&entries, "Alice <alice@example.com>");
    assert_eq!(bad.status, StepStatus::Failed);
    let bad = attempts(bad);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0]
            .error
            .as_deref()
            .unwrap()
            .contains("is not an e-mail address"),
        "{bad:?}"
    );
    assert!(
        sink.lines.try_recv().is_err(),
        "the bad address reached the relay, or something was sent twice"
    );
    answer_and_complete(&engine, &run, &request).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_relay_an_email_is_recorded_as_failed_and_the_run_goes_on() {
    let engine = Engine::temporary().register(ship).open().await.unwrap();
    let run = engine
        .start(ship, (vec![Notify::email("alice@example.com")],))
        .await
        .unwrap();
    let request = paused_on_one(&run).await;
    let entries = settled_notifications(&engine, run.id(), 1).await;
    assert_eq!(entries[0].status, StepStatus::Failed);
    let attempts = attempts(&entries[0]);
    assert_eq!(
        attempts.len(),
        1,
        "missing configuration is not retried: {attempts:?}"
    );
    assert!(
        attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("EngineBuilder::smtp"),
        "the error says what to set: {attempts:?}"
    );
    answer_and_complete(&engine, &run, &request).await;
}
