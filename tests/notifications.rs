//! Notifications: a receiver hears of a request once, however the run pauses, resumes or
//! restarts; a failing receiver gets its message in the end; a dead one never blocks the
//! request; Slack gets Block Kit with a button to the request's form.
//!
//! Every story posts to a real HTTP/1.1 receiver on 127.0.0.1 started by the test
//! ([`Receiver`], a `std::net::TcpListener` on a thread of its own), which records each
//! delivery's headers and JSON body and answers with a status scripted per call. The engine
//! runs on the system clock, so the retry story waits out the real backoff (0.5 s, then 1 s).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hitl::prelude::*;
use hitl::run::StepStatus;
use hitl::{HistoryEntry, StepKind};
use hitl_workspace::{PATIENCE, attempts, eventually, notifications, paused_on_one};
use serde_json::Value;

/// The path of the announcements [`caught_up`] sends; [`Receiver::deliveries`] leaves them out.
const CAUGHT_UP: &str = "/caught-up-";

// --- the workflow -------------------------------------------------------------------------------

/// Asks to keep a deployment, notifying every receiver in `notify`.
#[workflow(inject_context)]
async fn keep_deployment(ctx: &TaskContext, notify: Vec<Notify>) -> hitl::Result<String> {
    let mut ask = Feedback::approval("Keep the new deployment?").details("Canary error rate: **0.1 %**");
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

// --- the receiver -------------------------------------------------------------------------------

/// One HTTP request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    /// When it arrived, in milliseconds since the Unix epoch: the unit and clock (the system
    /// clock, the engine's here) of the attempts the engine records.
    at_ms: u64,
    path: String,
    /// Header names in lower case.
    headers: BTreeMap<String, String>,
    body: Value,
}

impl Delivery {
    fn idempotency_key(&self) -> &str {
        self.headers.get("idempotency-key").map_or("", String::as_str)
    }
}

#[derive(Default)]
struct ReceiverState {
    deliveries: Vec<Delivery>,
    /// Statuses for the next calls, in order; 200 once empty.
    script: VecDeque<u16>,
    /// While set, the receiver records a call but keeps the connection open without answering.
    stall: bool,
    /// Set, the next call is recorded and answered only once the test says so.
    held: Option<std::sync::mpsc::Receiver<()>>,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that records what it is sent.
struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
    stopped: Arc<AtomicBool>,
}

impl Receiver {
    /// A receiver answering 200 to everything.
    fn start() -> Self {
        Receiver::scripted(&[])
    }

    /// A receiver answering `statuses` to its first calls, then 200.
    fn scripted(statuses: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ReceiverState {
            script: statuses.iter().copied().collect(),
            ..ReceiverState::default()
        }));
        let stopped = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_stopped) = (Arc::clone(&state), Arc::clone(&stopped));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&thread_state);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Receiver { addr, state, stopped }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the stories sent (the announcements of [`caught_up`] left out).
    fn deliveries(&self) -> Vec<Delivery> {
        let state = self.state.lock().unwrap();
        let story = state
            .deliveries
            .iter()
            .filter(|delivery| !delivery.path.starts_with(CAUGHT_UP));
        story.cloned().collect()
    }

    fn got_call_to(&self, path: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .deliveries
            .iter()
            .any(|delivery| delivery.path == path)
    }

    fn set_stall(&self, stall: bool) {
        self.state.lock().unwrap().stall = stall;
    }

    /// The next call is recorded at once and answered when the returned sender sends.
    fn hold_next_answer(&self) -> std::sync::mpsc::Sender<()> {
        let (release, held) = std::sync::mpsc::channel();
        self.state.lock().unwrap().held = Some(held);
        release
    }

    /// Waits until the receiver got `n` calls; panics after [`PATIENCE`].
    async fn wait_for(&self, n: usize) -> Vec<Delivery> {
        eventually(&format!("the receiver got {n} call(s)"), async || {
            let deliveries = self.deliveries();
            (deliveries.len() >= n).then_some(deliveries)
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop so that it sees the flag
    }
}

/// Reads one request from `stream`, records it, and answers it (or, stalling, never does).
fn serve(stream: TcpStream, state: &Mutex<ReceiverState>) {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return; // the Drop wake-up, or a client that went away
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("a header line");
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers.get("content-length").map_or(0, |n| n.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body = serde_json::from_slice(&body).unwrap_or_else(|error| {
        panic!(
            "the receiver got a body that is not JSON ({error}): {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    let (status, stall, held) = {
        let mut state = state.lock().unwrap();
        state.deliveries.push(Delivery {
            at_ms: u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap(),
            path,
            headers,
            body,
        });
        let status = state.script.pop_front().unwrap_or(200);
        (status, state.stall, state.held.take())
    };
    if let Some(held) = held {
        let _ = held.recv();
    }
    if stall {
        // Keep the connection open, unanswered, until the client gives up on it.
        let _ = reader.read(&mut [0; 1]);
        return;
    }
    let reason = if status < 400 { "OK" } else { "Error" };
    let response = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = (&stream).write_all(response.as_bytes());
}

/// A URL on which nothing listens: connections are refused.
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

// --- helpers ------------------------------------------------------------------------------------

/// Waits until `engine`'s notifier has sent everything that was due when this was called —
/// so that "nothing more was sent" is a fact, not the hope of a quiet period.
///
/// The notifier sends one notification at a time, in passes over the outbox. Two new
/// announcements in turn: the first is in a pass that began after this call; the second,
/// asked only once the first arrived, in a later pass. When the second arrives, the first's
/// pass is over, and with it every send due before this call, a duplicate included. (A retry
/// after a successful delivery cannot be pending: the stories check that the delivery is
/// recorded.)
async fn caught_up(engine: &Engine, receiver: &Receiver) {
    static ANNOUNCEMENTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for _ in 0..2 {
        let path = format!("{CAUGHT_UP}{}", ANNOUNCEMENTS.fetch_add(1, Ordering::SeqCst));
        engine
            .start(keep_deployment, (vec![Notify::webhook(receiver.url(&path))],))
            .await
            .unwrap();
        eventually(&format!("the receiver got {path}"), async || {
            receiver.got_call_to(&path).then_some(())
        })
        .await;
    }
}

/// Waits until the run's only notification satisfies `done`; returns it.
async fn notification_when(
    engine: &Engine,
    run_id: &str,
    what: &str,
    done: impl Fn(&HistoryEntry) -> bool,
) -> HistoryEntry {
    eventually(what, async || {
        let entries = notifications(engine, run_id).await;
        assert!(
            entries.len() <= 1,
            "one notification expected, history has {entries:#?}"
        );
        entries.into_iter().next().filter(|entry| done(entry))
    })
    .await
}

/// Opens an engine on `path`, retrying while a just-closed engine still holds the directory.
async fn open_at(path: &Path) -> Engine {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match Engine::builder()
            .path(path)
            .register(keep_deployment)
            .open()
            .await
        {
            Ok(engine) => return engine,
            Err(hitl::Error::DatabaseLocked { .. }) if Instant::now() < deadline => {
                eprintln!("the database is still locked by the closed engine; retrying");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => panic!("could not reopen the database: {error}"),
        }
    }
}

async fn completes(run: &hitl::Run<String>) -> String {
    let outcome = tokio::time::timeout(PATIENCE, run.wait())
        .await
        .expect("the run never finished")
        .unwrap();
    outcome
        .completed()
        .unwrap_or_else(|| panic!("the run did not complete"))
}

/// Checks a webhook delivery's body against the request, and its header against its body.
fn assert_webhook_delivery(delivery: &Delivery, request: &hitl::Request) {
    assert_eq!(delivery.path, "/hook");
    assert_eq!(
        delivery.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let body = &delivery.body;
    assert_eq!(body["event"], "feedback_requested");
    assert_eq!(body["request"]["id"], request.id.as_str());
    assert_eq!(body["request"]["prompt"], "Keep the new deployment?");
    assert_eq!(body["request"]["kind"], "approval");
    assert_eq!(
        body["idempotency_id"],
        format!("{}/0", request.id),
        "the idempotency id is the request id and the notification's index"
    );
    assert_eq!(
        delivery.idempotency_key(),
        body["idempotency_id"].as_str().unwrap(),
        "the Idempotency-Key header carries the body's idempotency_id"
    );
}

// --- exactly once -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_announced_once_across_pause_resume_and_completion() {
    let receiver = Receiver::start();
    let engine = Engine::temporary()
        .register(keep_deployment)
        .open()
        .await
        .unwrap();
    let run = engine
        .start(keep_deployment, (vec![Notify::webhook(receiver.url("/hook"))],))
        .await
        .unwrap();
    let request = paused_on_one(&run).await;
    let deliveries = receiver.wait_for(1).await;
    assert_webhook_delivery(&deliveries[0], &request);
    notification_when(&engine, run.id(), "the delivery is recorded", |entry| {
        entry.status == StepStatus::Completed
    })
    .await;

    // Answering resumes the run, which replays the feedback step: nothing is sent again.
    engine
        .respond(
            &request.id,
            Response::approve().comment("looks fine"),
            Responder::new("alice"),
        )
        .await
        .unwrap();
    assert_eq!(completes(&run).await, "approved=true by alice");
    caught_up(&engine, &receiver).await;
    assert_eq!(receiver.deliveries().len(), 1, "{:#?}", receiver.deliveries());
    let entry = &notifications(&engine, run.id()).await[0];
    assert_eq!(entry.name, "notify");
    assert_eq!(attempts(entry).len(), 1, "{entry:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_announced_once_across_a_restart_while_paused() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = open_at(&path).await;
    let run = engine
        .start(keep_deployment, (vec![Notify::webhook(receiver.url("/hook"))],))
        .await
        .unwrap();
    let run_id = run.id().to_owned();
    let request = paused_on_one(&run).await;
    notification_when(&engine, &run_id, "the delivery is recorded", |entry| {
        entry.status == StepStatus::Completed
    })
    .await;
    drop(run);
    engine.close().await.unwrap();

    // A new process (here: a new engine on the same directory) finds the delivery recorded.
    let engine = open_at(&path).await;
    caught_up(&engine, &receiver).await;
    assert_eq!(
        receiver.deliveries().len(),
        1,
        "reopening the database sent the notification again"
    );

    engine
        .respond(&request.id, Response::approve(), Responder::new("bob"))
        .await
        .unwrap();
    let run = engine.run(keep_deployment, &run_id).await.unwrap();
    assert_eq!(completes(&run).await, "approved=true by bob");
    caught_up(&engine, &receiver).await;
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
    assert_webhook_delivery(&deliveries[0], &request);
    assert_eq!(attempts(&notifications(&engine, &run_id).await[0]).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_cut_off_by_a_restart_is_resent_with_the_same_idempotency_key() {
    let receiver = Receiver::start();
    receiver.set_stall(true); // the first call is received but never answered
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = open_at(&path).await;
    let run = engine
        .start(keep_deployment, (vec![Notify::webhook(receiver.url("/hook"))],))
        .await
        .unwrap();
    let run_id = run.id().to_owned();
    let request = paused_on_one(&run).await;
    receiver.wait_for(1).await;
    // The process stops between sending and recording the attempt.
    drop(run);
    engine.close().await.unwrap();
    receiver.set_stall(false);

    let engine = open_at(&path).await;
    let deliveries = receiver.wait_for(2).await;
    notification_when(&engine, &run_id, "the resend is recorded", |entry| {
        entry.status == StepStatus::Completed
    })
    .await;
    assert_webhook_delivery(&deliveries[0], &request);
    assert_webhook_delivery(&deliveries[1], &request);
    assert_eq!(
        deliveries[0].idempotency_key(),
        deliveries[1].idempotency_key(),
        "a receiver can drop the resend by its key"
    );
    let recorded = attempts(&notifications(&engine, &run_id).await[0]);
    assert_eq!(
        recorded.len(),
        1,
        "only the resend's attempt was recorded: {recorded:#?}"
    );
    assert_eq!(recorded[0].status, Some(200));

    engine
        .respond(&request.id, Response::approve(), Responder::new("carol"))
        .await
        .unwrap();
    let run = engine.run(keep_deployment, &run_id).await.unwrap();
    assert_eq!(completes(&run).await, "approved=true by carol");
    caught_up(&engine, &receiver).await;
    assert_eq!(receiver.deliveries().len(), 2, "{:#?}", receiver.deliveries());
}

// --- failing receivers --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_twice_gets_one_delivery_after_backing_off() {
    let receiver = Receiver::scripted(&[500, 500]);
    let engine = Engine::temporary()
        .register(keep_deployment)
        .open()
        .await
        .unwrap();
    let run = engine
        .start(keep_deployment, (vec![Notify::webhook(receiver.url("/hook"))],))
        .await
        .unwrap();
    let request = paused_on_one(&run).await;
    let started = Instant::now();
    let entry = notification_when(&engine, run.id(), "the third attempt delivers", |entry| {
        entry.status == StepStatus::Completed
    })
    .await;
    eprintln!("delivered after {:?} of retries", started.elapsed());

    assert_eq!(entry.kind, StepKind::Notification);
    assert_eq!(entry.name, "notify");
    assert_eq!(entry.output["url"], receiver.url("/hook"));
    assert_eq!(entry.output["idempotency_id"], format!("{}/0", request.id));
    let recorded = attempts(&entry);
    assert_eq!(recorded.len(), 3, "{recorded:#?}");
    for failed in &recorded[..2] {
        assert_eq!(failed.status, Some(500), "{recorded:#?}");
        assert!(
            failed.error.as_deref().is_some_and(|error| error.contains("500")),
            "{recorded:#?}"
        );
    }
    assert_eq!(recorded[2].status, Some(200), "{recorded:#?}");
    assert_eq!(recorded[2].error, None, "{recorded:#?}");
    // Backoff on the engine clock: 0.5 s after the first failure, 1 s after the second.
    assert!(recorded[1].at - recorded[0].at >= 500, "{recorded:#?}");
    assert!(recorded[2].at - recorded[1].at >= 1_000, "{recorded:#?}");

    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 3, "{deliveries:#?}");
    for delivery in &deliveries {
        assert_webhook_delivery(delivery, &request);
    }
    // And the backoff was really waited: each retry arrived no sooner than its due time, the
    // failed attempt's time plus the backoff. (Not "so long after the previous arrival": that
    // arrival came a send's latency after its attempt began, and under load a send takes a
    // while.)
    assert!(
        deliveries[1].at_ms >= recorded[0].at + 500,
        "{recorded:#?}\n{deliveries:#?}"
    );
    assert!(
        deliveries[2].at_ms >= recorded[1].at + 1_000,
        "{recorded:#?}\n{deliveries:#?}"
    );

    engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    assert_eq!(completes(&run).await, "approved=true by alice");
    caught_up(&engine, &receiver).await;
    assert_eq!(
        receiver.deliveries().len(),
        3,
        "nothing is sent after the successful delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_never_blocks_the_request() {
    let url = dead_url();
    let engine = Engine::temporary()
        .register(keep_deployment)
        .open()
        .await
        .unwrap();
    let run = engine
        .start(keep_deployment, (vec![Notify::webhook(&url)],))
        .await
        .unwrap();
    let request = paused_on_one(&run).await;
    let entry = notification_when(&engine, run.id(), "two attempts failed", |entry| {
        attempts(entry).len() >= 2
    })
    .await;
    assert_eq!(entry.status, StepStatus::Waiting, "it is retried: {entry:#?}");

    engine
        .respond(
            &request.id,
            Response::reject().comment("roll back"),
            Responder::new("dave"),
        )
        .await
        .unwrap();
    assert_eq!(completes(&run).await, "approved=false by dave");

    // Its next retry finds the request answered, so it is given up, and shows as skipped, not
    // failed: nothing is left that an operator must look into.
    let entry = notification_when(&engine, run.id(), "the notification was given up", |entry| {
        entry.status != StepStatus::Waiting
    })
    .await;
    assert_eq!(
        entry.status,
        StepStatus::Skipped,
        "never delivered, no longer needed: {entry:#?}"
    );
    assert_eq!(entry.finished_at, None);
    assert_eq!(entry.output["url"], url.as_str());
    let recorded = attempts(&entry);
    assert!(recorded.len() >= 2, "{recorded:#?}");
    for attempt in &recorded {
        assert_eq!(attempt.status, None, "nobody answered: {recorded:#?}");
        assert!(
            attempt.error.as_deref().is_some_and(|error| !error.is_empty()),
            "{recorded:#?}"
        );
    }
    let request = engine.request(&request.id).await.unwrap();
    assert_eq!(request.status, hitl::RequestStatus::Answered);
    assert_eq!(request.answer.unwrap().responder, "dave");
}

// --- Slack --------------------------------------------------------------------------------------

/// The blocks of a Slack message of a given type.
fn blocks_of<'a>(body: &'a Value, kind: &str) -> Vec<&'a Value> {
    body["blocks"]
        .as_array()
        .unwrap_or_else(|| panic!("a Slack message has a `blocks` array: {body:#}"))
        .iter()
        .filter(|block| block["type"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_closed_while_its_announcement_is_in_flight_is_withdrawn_at_once() {
    let receiver = Receiver::scripted(&[500]);
    let release = receiver.hold_next_answer();
    let engine = Engine::temporary()
        .register(keep_deployment)
        .open()
        .await
        .unwrap();
    let run = engine
        .start(keep_deployment, (vec![Notify::webhook(receiver.url("/hook"))],))
        .await
        .unwrap();
    paused_on_one(&run).await;
    // The attempt is in flight: the receiver has it and has not answered.
    receiver.wait_for(1).await;
    engine.cancel(run.id(), "no longer needed").await.unwrap();
    release.send(()).unwrap();
    // The pass that made the attempt is over: its failure is recorded, and it saw that the
    // request closed meanwhile. Not the retry 0.5 s later: that would send nothing either,
    // but until then the request's notification would read as waiting to be sent.
    caught_up(&engine, &receiver).await;
    let entries = notifications(&engine, run.id()).await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].status, StepStatus::Skipped, "{entries:#?}");
    assert_eq!(attempts(&entries[0]).len(), 1, "{entries:#?}");
    assert_eq!(receiver.deliveries().len(), 1, "nothing sent after the close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_message_is_block_kit_with_a_button_to_the_request() {
    let receiver = Receiver::start();
    let engine = Engine::temporary()
        .base_url("https://hitl.example.com/")
        .register(keep_deployment)
        .open()
        .await
        .unwrap();
    let slack = Notify::slack(receiver.url("/slack")).message("Approval needed");
    let webhook = Notify::webhook(receiver.url("/hook"));
    let run = engine
        .start(keep_deployment, (vec![slack, webhook],))
        .await
        .unwrap();
    let request = paused_on_one(&run).await;
    let deliveries = receiver.wait_for(2).await;
    let link = format!("https://hitl.example.com/requests/{}", request.id);

    let message = deliveries
        .iter()
        .find(|d| d.path == "/slack")
        .expect("a Slack delivery");
    let body = &message.body;
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("Keep the new deployment?"),
        "fallback text: {body:#}"
    );
    let headers = blocks_of(body, "header");
    assert_eq!(headers[0]["text"]["text"], "Approval needed", "{body:#}");
    let sections: Vec<&str> = blocks_of(body, "section")
        .iter()
        .map(|block| block["text"]["text"].as_str().unwrap())
        .collect();
    assert!(
        sections
            .iter()
            .any(|text| text.contains("Keep the new deployment?")),
        "{body:#}"
    );
    assert!(
        sections.contains(&"Canary error rate: *0.1 %*"),
        "the details' Markdown is Slack mrkdwn: {body:#}"
    );
    let actions = blocks_of(body, "actions");
    assert_eq!(actions.len(), 1, "{body:#}");
    let buttons = actions[0]["elements"].as_array().unwrap();
    assert_eq!(buttons.len(), 1, "one button, carrying no identity: {body:#}");
    let button = &buttons[0];
    assert_eq!(button["type"], "button", "{body:#}");
    assert_eq!(button["text"]["text"], "Answer", "{body:#}");
    assert_eq!(button["url"], link.as_str(), "{body:#}");
    assert!(
        !body.to_string().contains("sig="),
        "no signed link anyone in the channel could use: {body:#}"
    );
    assert_eq!(
        message.idempotency_key(),
        body["metadata"]["event_payload"]["idempotency_id"],
        "{body:#}"
    );
    assert_eq!(message.idempotency_key(), format!("{}/0", request.id));

    // The webhook of the same request links to the same page, under its own idempotency id.
    let hook = deliveries
        .iter()
        .find(|d| d.path == "/hook")
        .expect("a webhook delivery");
    assert_eq!(hook.body["link"], link.as_str());
    assert_eq!(hook.idempotency_key(), format!("{}/1", request.id));

    engine
        .respond(&request.id, Response::approve(), Responder::new("erin"))
        .await
        .unwrap();
    assert_eq!(completes(&run).await, "approved=true by erin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_base_url_a_slack_message_has_no_button() {
    let receiver = Receiver::start();
    let engine = Engine::temporary()
        .register(keep_deployment)
        .open()
        .await
        .unwrap();
    let run = engine
        .start(keep_deployment, (vec![Notify::slack(receiver.url("/slack"))],))
        .await
        .unwrap();
    let request = paused_on_one(&run).await;
    let body = &receiver.wait_for(1).await[0].body;
    assert_eq!(
        blocks_of(body, "header")[0]["text"]["text"],
        "Feedback needed",
        "{body:#}"
    );
    assert!(
        blocks_of(body, "actions").is_empty(),
        "no link to make a button of: {body:#}"
    );
    let context = blocks_of(body, "context");
    let context = context[0]["elements"][0]["text"].as_str().unwrap();
    assert!(
        context.contains(&request.id),
        "the message names the request: {body:#}"
    );
}

/// Asks with the hostile details and notifies every receiver in `notify`.
#[workflow(inject_context)]
async fn ask_the_channel(ctx: &TaskContext, notify: Vec<Notify>) -> hitl::Result<String> {
    let mut ask = Feedback::approval("Restart the <primary> & replica?")
        .details("# Runbook\n\n**Why**: see [the incident](https://status.example.com/i?id=7&x=1)\n\n- drain <a>\n- restart");
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

/// A GET on the loopback server without following redirects.
async fn get(url: &str) -> (u16, String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slack_button_sends_people_to_sign_in_and_a_shared_link_is_only_there_on_request() {
    let receiver = Receiver::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let engine = Engine::temporary()
        .base_url(&base)
        .register(ask_the_channel)
        .open()
        .await
        .unwrap();
    let config = hitl::server::ServerConfig::new().token("alice", "alice-token-0123456789");
    let server = tokio::spawn(hitl::server::serve_with(listener, engine.clone(), config));
    let plain = Notify::slack(receiver.url("/plain"));
    let shared = Notify::slack(receiver.url("/shared")).signed_link_as("slack");
    let run = engine
        .start(ask_the_channel, (vec![plain, shared],))
        .await
        .unwrap();
    let request = paused_on_one(&run).await;
    let deliveries = receiver.wait_for(2).await;
    let body_of = |path: &str| {
        &deliveries
            .iter()
            .find(|delivery| delivery.path == path)
            .unwrap_or_else(|| panic!("no delivery to {path}"))
            .body
    };
    let page = format!("{base}/requests/{}", request.id);

    // Markdown and Slack's control characters, converted and escaped.
    let plain = body_of("/plain");
    let sections: Vec<&str> = blocks_of(plain, "section")
        .iter()
        .map(|block| block["text"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        sections,
        [
            "*Restart the &lt;primary&gt; &amp; replica?*",
            "*Runbook*\n\n*Why*: see <https://status.example.com/i?id=7&amp;x=1|the incident>\n\n• drain &lt;a&gt;\n• restart",
        ],
        "{plain:#}"
    );

    // Without the opt-in: one button, the request's page; it sends a stranger to sign in
    // and back to the request.
    let buttons = blocks_of(plain, "actions")[0]["elements"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(buttons.len(), 1, "{plain:#}");
    assert_eq!(buttons[0]["url"], page.as_str(), "{plain:#}");
    let (status, location, _) = get(&page).await;
    assert_eq!(status, 303);
    assert_eq!(
        location,
        format!("/login?next=%2Frequests%2F{}", request.id),
        "signing in comes back to the request"
    );

    // With `.signed_link_as("slack")`: the same button, and a shared one that says so and
    // opens the form as `slack` without signing in.
    let shared = body_of("/shared");
    let buttons = blocks_of(shared, "actions")[0]["elements"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(buttons.len(), 2, "{shared:#}");
    assert_eq!(buttons[0]["url"], page.as_str(), "{shared:#}");
    assert_eq!(
        buttons[1]["text"]["text"], "Answer as slack (shared link)",
        "{shared:#}"
    );
    let signed = buttons[1]["url"].as_str().unwrap();
    assert!(signed.starts_with(&format!("{page}?as=slack&exp=")), "{signed}");
    let (status, _, text) = get(signed).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("Answering as <strong>slack</strong> through a signed link"),
        "{text}"
    );

    engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    assert_eq!(completes(&run).await, "approved=true by alice");
    server.abort();
}
