//! E-mail notifications: a request's e-mail reaches its one recipient through a real SMTP
//! server, with a link that answers as them; over STARTTLS or TLS with a password, never
//! falling back to plain text; a 5xx refusal ends the retries, a 4xx is retried, a bad address
//! is never sent, and none of it blocks the request.
//!
//! The server is `tests/smtp_sink.py` on 127.0.0.1 ([`Sink`]), a child process killed when the
//! test ends. Python's `ssl` does its TLS (with a CA and a certificate `openssl` makes for the
//! test) and Python's `email` parses each message, so subjects, headers and the base64 body
//! are read by an implementation that is not hitl's. It prints each event as a JSON line, and
//! the test waits for those lines.

use std::process::Stdio;
use std::time::Duration;

use hitl::HistoryEntry;
use hitl::notify::{Attempt, Smtp};
use hitl::prelude::*;
use hitl::run::StepStatus;
use hitl_workspace::{PATIENCE, attempts, eventually, notifications, paused_on_one};
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

/// The SMTP server (`tests/smtp_sink.py`): a child process, and the events it prints.
struct Sink {
    port: u16,
    events: mpsc::UnboundedReceiver<Value>,
    stdin: tokio::process::ChildStdin,
    _child: tokio::process::Child,
}

impl Sink {
    /// Plain SMTP, no STARTTLS, no AUTH.
    async fn start() -> Sink {
        Sink::spawn(&[]).await
    }

    /// TLS in `mode` (`starttls` or `tls`) with the certificate of `certificates`, and AUTH
    /// for the user `hitl` whose password is `s3cret`.
    async fn with_tls(mode: &str, certificates: &Certificates) -> Sink {
        Sink::with_tls_and(mode, certificates, &[]).await
    }

    /// [`Sink::with_tls`], with more of `tests/smtp_sink.py`'s flags.
    async fn with_tls_and(mode: &str, certificates: &Certificates, flags: &[&str]) -> Sink {
        let (cert, key) = (
            certificates.cert.to_str().unwrap(),
            certificates.key.to_str().unwrap(),
        );
        let args = [
            "--mode",
            mode,
            "--cert",
            cert,
            "--key",
            key,
            "--user",
            "hitl",
            "--password",
            "s3cret",
        ];
        Sink::spawn(&[&args[..], flags].concat()).await
    }

    async fn spawn(args: &[&str]) -> Sink {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs the SMTP sink (tests/smtp_sink.py)");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(PATIENCE, stdout.next_line())
            .await
            .expect("the SMTP sink never said it was listening")
            .unwrap()
            .expect("the SMTP sink ended before listening");
        let port = first
            .strip_prefix("listening ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP sink said {first:?}"));
        let (send, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                let event = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
                if send.send(event).is_err() {
                    return;
                }
            }
        });
        Sink {
            port,
            events,
            stdin: child.stdin.take().unwrap(),
            _child: child,
        }
    }

    fn relay(&self) -> Smtp {
        Smtp::relay(format!("127.0.0.1:{}", self.port)).from(SENDER)
    }

    /// The next event the sink prints: an `RCPT`, a refused sign-in, or a message.
    async fn next(&mut self) -> Value {
        tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .expect("the SMTP sink printed nothing more")
            .expect("the SMTP sink ended")
    }

    /// The next message, past the `RCPT`s that came before it.
    async fn next_message(&mut self) -> Value {
        loop {
            let event = self.next().await;
            if event.get("text").is_some() {
                return event;
            }
            assert_eq!(event["reply"], 250, "a refusal before the message: {event:#}");
        }
    }

    /// Every event not yet read: the sink prints a mark after all it has done, and this reads
    /// up to it.
    async fn drain(&mut self) -> Vec<Value> {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(b"mark\n").await.unwrap();
        self.stdin.flush().await.unwrap();
        let mut events = Vec::new();
        loop {
            let event = self.next().await;
            if event["mark"] == true {
                return events;
            }
            events.push(event);
        }
    }
}

/// A test CA, and a certificate for 127.0.0.1 that it signed, made with `openssl`.
struct Certificates {
    _dir: tempfile::TempDir,
    ca_pem: String,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn certificates() -> Certificates {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("openssl makes the test certificates");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let rsa = ["-newkey", "rsa:2048", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &rsa,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=hitl test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &rsa,
            &[
                "-keyout",
                "key.pem",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        path("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    Certificates {
        ca_pem: std::fs::read_to_string(path("ca.pem")).unwrap(),
        cert: path("cert.pem"),
        key: path("key.pem"),
        _dir: dir,
    }
}

/// An engine that sends through `smtp`, and a run of [`ship`] that e-mails `notify`, paused
/// on its request.
async fn ship_through(smtp: Smtp, notify: Vec<Notify>) -> (Engine, hitl::Run<String>, hitl::Request) {
    let engine = Engine::temporary()
        .smtp(smtp)
        .register(ship)
        .open()
        .await
        .unwrap();
    let run = engine.start(ship, (notify,)).await.unwrap();
    let request = paused_on_one(&run).await;
    (engine, run, request)
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
            let entries = notifications(engine, run_id).await;
            (entries.len() == count && entries.iter().all(|entry| entry.status != StepStatus::Waiting))
                .then_some(entries)
        },
    )
    .await
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
    let (first, second) = (sink.next_message().await, sink.next_message().await);
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

    let refusal = |address: &str, reply: u16| serde_json::json!({"rcpt": address, "reply": reply});
    assert_eq!(sink.next().await, refusal("refuse@example.com", 550));
    assert_eq!(sink.next().await, refusal("busy@example.com", 451));
    let delivered = sink.next_message().await;
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
    assert_eq!(
        sink.drain().await,
        Vec::<Value>::new(),
        "the bad address never reached the server, and nothing was sent twice"
    );
    answer_and_complete(&engine, &run, &request).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_relay_an_email_waits_for_one_and_the_run_goes_on() {
    // On a shared store another worker may have the relay: this engine does not give up on
    // the e-mail, it says why it waits and leaves it for later.
    let engine = Engine::temporary().register(ship).open().await.unwrap();
    let run = engine
        .start(ship, (vec![Notify::email("alice@example.com")],))
        .await
        .unwrap();
    let request = paused_on_one(&run).await;
    let attempt = first_attempt(&engine, run.id()).await;
    assert!(
        attempt.error.as_deref().unwrap().contains("EngineBuilder::smtp"),
        "the reason says what to set: {attempt:?}"
    );
    let entry = &notifications(&engine, run.id()).await[0];
    assert_eq!(entry.status, StepStatus::Waiting, "{entry:#?}");
    assert_eq!(entry.output["url"], "mailto:alice@example.com");
    answer_and_complete(&engine, &run, &request).await;
}

// --- TLS and passwords --------------------------------------------------------------------------

/// The one notification of `run_id` once it has at least one attempt.
async fn first_attempt(engine: &Engine, run_id: &str) -> Attempt {
    eventually("the e-mail's first attempt is recorded", async || {
        let entry = notifications(engine, run_id).await.into_iter().next()?;
        attempts(&entry).into_iter().next()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_a_password_deliver_over_tls() {
    let certificates = certificates();
    let mut sink = Sink::with_tls("starttls", &certificates).await;
    let relay = sink
        .relay()
        .starttls()
        .credentials("hitl", "s3cret")
        .root_certificates_pem(&certificates.ca_pem)
        .unwrap();
    let notify = vec![Notify::email("bob@example.com").responder("bob")];
    let (engine, run, request) = ship_through(relay, notify).await;
    let message = sink.next_message().await;
    assert_eq!(message["tls"], true, "{message:#}");
    assert_eq!(message["user"], "hitl", "{message:#}");
    assert_eq!(message["rcpt_tos"], serde_json::json!(["bob@example.com"]));
    assert_eq!(message["subject"], "Feedback needed: Ship release 1.4?");
    let entries = settled_notifications(&engine, run.id(), 1).await;
    assert_eq!(entries[0].status, StepStatus::Completed);
    assert_eq!(attempts(&entries[0])[0].status, Some(250));
    answer_and_complete(&engine, &run, &request).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_checks_the_certificate_and_its_name_and_a_wrong_password_is_not_retried() {
    let certificates = certificates();
    let mut sink = Sink::with_tls("tls", &certificates).await;
    let notify = || vec![Notify::email("bob@example.com")];

    // An engine whose SMTP server is the sink over implicit TLS, signing in with `password`,
    // trusting the test CA or not.
    let sink_relay = sink.relay();
    let engine = async |password: &str, trust_the_test_ca: bool| {
        let mut relay = sink_relay.clone().tls().credentials("hitl", password);
        if trust_the_test_ca {
            relay = relay.root_certificates_pem(&certificates.ca_pem).unwrap();
        }
        Engine::temporary()
            .smtp(relay)
            .register(ship)
            .open()
            .await
            .unwrap()
    };

    // Without the test CA, the server's certificate is not trusted: nothing is sent.
    let untrusting = engine("s3cret", false).await;
    let run = untrusting.start(ship, (notify(),)).await.unwrap();
    paused_on_one(&run).await;
    let attempt = first_attempt(&untrusting, run.id()).await;
    let error = attempt.error.unwrap_or_default();
    assert!(error.contains("TLS") && error.contains("certificate"), "{error}");
    untrusting.close().await.unwrap(); // no more retries against the sink
    assert_eq!(
        sink.drain().await,
        Vec::<Value>::new(),
        "nothing reached an untrusted server"
    );

    // Trusted, but reached by a name its certificate does not hold (it names 127.0.0.1 only):
    // nothing is sent either.
    let misnamed = Engine::temporary()
        .smtp(
            Smtp::relay(format!("localhost:{}", sink.port))
                .from(SENDER)
                .tls()
                .credentials("hitl", "s3cret")
                .root_certificates_pem(&certificates.ca_pem)
                .unwrap(),
        )
        .register(ship)
        .open()
        .await
        .unwrap();
    let run = misnamed.start(ship, (notify(),)).await.unwrap();
    paused_on_one(&run).await;
    let error = first_attempt(&misnamed, run.id()).await.error.unwrap_or_default();
    assert!(
        error.contains("TLS") && error.contains("not valid for name") && error.contains("localhost"),
        "{error}"
    );
    misnamed.close().await.unwrap();
    assert_eq!(
        sink.drain().await,
        Vec::<Value>::new(),
        "nothing reached a server that is not the one named"
    );

    // A wrong password: the server's 535 ends the retries.
    let wrong_password = engine("guess", true).await;
    let run = wrong_password.start(ship, (notify(),)).await.unwrap();
    paused_on_one(&run).await;
    assert_eq!(sink.next().await["auth_failed"], "hitl");
    let entries = settled_notifications(&wrong_password, run.id(), 1).await;
    assert_eq!(entries[0].status, StepStatus::Failed);
    let failed = attempts(&entries[0]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].status, Some(535));
    let error = failed[0].error.as_deref().unwrap();
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode("\0hitl\0guess");
    assert!(
        error.contains("`AUTH`") && !error.contains("guess") && !error.contains(&token),
        "the password is not echoed: {error}"
    );

    // With the CA and the password: delivered over TLS.
    let trusting = engine("s3cret", true).await;
    let run = trusting.start(ship, (notify(),)).await.unwrap();
    let request = paused_on_one(&run).await;
    let message = sink.next_message().await;
    assert_eq!(
        (message["tls"].clone(), message["user"].clone()),
        (true.into(), "hitl".into()),
        "{message:#}"
    );
    answer_and_complete(&trusting, &run, &request).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_from_before_esmtp_that_never_says_goodbye_gets_the_message_once() {
    let mut sink = Sink::spawn(&["--refuse-ehlo", "--silent-quit"]).await;
    // A goodbye that never comes must not turn the delivery into a failure and a resend.
    let relay = sink.relay().timeout(Duration::from_secs(5));
    let (engine, run, request) = ship_through(relay, vec![Notify::email("bob@example.com")]).await;
    let message = sink.next_message().await;
    let helo = message["helo"].as_str().unwrap();
    assert_eq!(
        helo, "[127.0.0.1]",
        "HELO, with the address literal of the local end"
    );
    let entries = settled_notifications(&engine, run.id(), 1).await;
    assert_eq!(entries[0].status, StepStatus::Completed);
    let statuses: Vec<_> = attempts(&entries[0])
        .iter()
        .map(|attempt| attempt.status)
        .collect();
    assert_eq!(statuses, [Some(250)]);
    assert_eq!(sink.drain().await, Vec::<Value>::new(), "sent once");
    answer_and_complete(&engine, &run, &request).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_injected_before_tls_ends_the_delivery_and_is_not_retried() {
    let certificates = certificates();
    let mut sink = Sink::with_tls_and("starttls", &certificates, &["--inject-after-starttls"]).await;
    let relay = sink
        .relay()
        .starttls()
        .root_certificates_pem(&certificates.ca_pem)
        .unwrap();
    let (engine, run, request) = ship_through(relay, vec![Notify::email("bob@example.com")]).await;
    let entries = settled_notifications(&engine, run.id(), 1).await;
    assert_eq!(entries[0].status, StepStatus::Failed, "{entries:#?}");
    let failed = attempts(&entries[0]);
    assert_eq!(failed.len(), 1, "not retried: {failed:?}");
    let error = failed[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("sent data after its answer to STARTTLS"),
        "{error}"
    );
    assert_eq!(
        sink.drain().await,
        Vec::<Value>::new(),
        "no envelope, in plain text or otherwise"
    );
    answer_and_complete(&engine, &run, &request).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hitl_sends_no_password_in_plain_text_and_never_falls_back_from_starttls() {
    // The plain sink offers neither STARTTLS nor AUTH.
    let mut sink = Sink::start().await;
    // A password without TLS is a mistake hitl refuses outright; a missing STARTTLS may be
    // an offer stripped on the way, and is tried again later, never in plain text.
    for (smtp, expected, retried) in [
        (
            sink.relay().credentials("hitl", "s3cret"),
            "does not send an SMTP password without TLS",
            false,
        ),
        (sink.relay().starttls(), "does not offer STARTTLS", true),
    ] {
        let (engine, run, request) = ship_through(smtp, vec![Notify::email("bob@example.com")]).await;
        let attempt = first_attempt(&engine, run.id()).await;
        assert!(
            attempt.error.as_deref().unwrap().contains(expected),
            "{attempt:?}"
        );
        if !retried {
            let entries = settled_notifications(&engine, run.id(), 1).await;
            assert_eq!(entries[0].status, StepStatus::Failed);
            assert_eq!(attempts(&entries[0]).len(), 1, "not retried");
        } else {
            let entry = &notifications(&engine, run.id()).await[0];
            assert_eq!(
                entry.status,
                StepStatus::Waiting,
                "still to be retried: {entry:#?}"
            );
        }
        assert_eq!(
            sink.drain().await,
            Vec::<Value>::new(),
            "nothing went out in plain text"
        );
        answer_and_complete(&engine, &run, &request).await;
    }
}
