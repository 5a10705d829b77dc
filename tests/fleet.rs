//! Many worker processes on one PostgreSQL database: runs drain across workers, one worker
//! SIGKILLed mid-way loses nothing, a stalled worker is fenced, concurrent answers through
//! every worker's server have one winner each, a timer all workers see fires once, a
//! notification is delivered once across a kill, and a killed listener connection loses no
//! answer.
//!
//! Workers are real processes: this test binary re-executed with `HITL_FLEET_WORKER` set
//! runs the ignored `fleet_worker` entry, which opens an engine on the database and drives
//! runs until it is killed. Every activity execution is logged to a table with the worker's
//! pid, so the test can count what ran twice, and where.

mod postgres_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hitl::prelude::*;
use hitl::{PendingFilter, RunFilter, RunStatus};
use hitl_workspace::eventually;
use postgres_common::{fresh_database, server_url, sql};
use tokio::sync::OnceCell;

/// The workers' lease: a killed worker's runs are taken over about this long after.
const LEASE: Duration = Duration::from_secs(1);

static LOG: OnceCell<tokio_postgres::Client> = OnceCell::const_new();

/// Records that this process executed `activity` of run `n`.
async fn log_execution(n: u64, activity: &str) {
    let client = LOG
        .get_or_init(|| async {
            let url = std::env::var("HITL_FLEET_WORKER").expect("a worker knows its database");
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("the worker's log connection");
            tokio::spawn(connection);
            client
        })
        .await;
    client
        .execute(
            "INSERT INTO fleet_log (n, activity, pid) VALUES ($1, $2, $3)",
            &[&(n as i64), &activity, &(std::process::id() as i64)],
        )
        .await
        .expect("an execution is logged");
}

#[task]
async fn build(n: u64) -> u64 {
    log_execution(n, "build").await;
    n
}

#[task]
async fn deploy(n: u64) -> u64 {
    log_execution(n, "deploy").await;
    n * 2
}

#[workflow(inject_context)]
async fn fleet_release(ctx: &TaskContext, n: u64) -> hitl::Result<u64> {
    let built = build(n).await;
    let answer = ctx
        .request_feedback(Feedback::approval(format!("Ship build {built}?")))
        .await?;
    Ok(if answer.approved() { deploy(built).await } else { 0 })
}

/// Blocks (polling the `fleet_go` table) until the test lets it go: an activity that is in
/// flight while the test stops its worker.
#[task]
async fn wait_for_go(n: u64) -> u64 {
    log_execution(n, "waiting").await;
    let client = LOG.get().expect("logged above");
    loop {
        let go: bool = client
            .query_one("SELECT go FROM fleet_go", &[])
            .await
            .expect("the go flag")
            .get(0);
        if go {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    log_execution(n, "went").await;
    n
}

#[workflow]
async fn fleet_stall(n: u64) -> u64 {
    let built = build(n).await;
    let went = wait_for_go(built).await;
    deploy(went).await
}

#[task]
async fn after_expiry(n: u64) -> u64 {
    log_execution(n, "after_expiry").await;
    n
}

/// Asks with a short deadline nobody meets: the expiry timer is seen by every worker.
#[workflow(inject_context)]
async fn fleet_expiring(ctx: &TaskContext, n: u64) -> hitl::Result<String> {
    let asked = ctx
        .request_feedback(Feedback::approval(format!("Ship {n}?")).expires_after(Duration::from_millis(300)))
        .await;
    match asked {
        Err(hitl::Error::RequestExpired { .. }) => Ok(format!("expired {}", after_expiry(n).await)),
        Err(error) => Err(error),
        Ok(_) => Ok("answered".to_owned()),
    }
}

/// Asks and notifies a webhook receiver.
#[workflow(inject_context)]
async fn fleet_notified(ctx: &TaskContext, n: u64, receiver: String) -> hitl::Result<bool> {
    let answer = ctx
        .request_feedback(Feedback::approval(format!("Ship {n}?")).notify(Notify::webhook(receiver)))
        .await?;
    Ok(answer.approved())
}

/// The token the workers' servers accept (responder `ops`).
const TOKEN: &str = "ops-token-0123456789";

fn fleet_engine(url: &str) -> hitl::EngineBuilder {
    Engine::builder()
        .postgres(url)
        .lease(LEASE)
        .register(fleet_release)
        .register(fleet_stall)
        .register(fleet_expiring)
        .register(fleet_notified)
}

/// A worker process's body (run by the fleet tests, not on its own).
#[test]
#[ignore = "a worker process of the fleet tests, started by them"]
fn fleet_worker() {
    let url = std::env::var("HITL_FLEET_WORKER").expect("started by a fleet test");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = fleet_engine(&url)
            .open()
            .await
            .expect("the worker's engine opens");
        let mut address = String::new();
        if std::env::var("HITL_FLEET_SERVE").is_ok() {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            address = format!("http://{}", listener.local_addr().unwrap());
            let config = hitl::server::ServerConfig::new().token("ops", TOKEN);
            tokio::spawn(hitl::server::serve_with(listener, engine.clone(), config));
        }
        println!("hitl-fleet-worker ready {address}");
        // Reports which runs it drives whenever that changes, for tests that must know.
        let mut reported = None;
        loop {
            let driving = engine.driving().await;
            if reported.as_ref() != Some(&driving) {
                println!("hitl-fleet-worker driving {}", driving.join(","));
                reported = Some(driving);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// A running worker process; killed when dropped.
struct Worker {
    child: Child,
    /// Its server's base URL, when it serves.
    server: String,
    /// What it printed after it was ready.
    lines: std::sync::mpsc::Receiver<String>,
}

impl Worker {
    fn start(url: &str) -> Worker {
        Worker::start_with(url, &[])
    }

    fn start_with(url: &str, env: &[(&str, &str)]) -> Worker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fleet_worker",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("HITL_FLEET_WORKER", url)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("a worker process starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let server = loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("hitl-fleet-worker ready") => {
                    break line.trim_end().rsplit(' ').next().unwrap_or_default().to_owned();
                }
                Some(Ok(_)) => {}
                other => panic!("the worker exited before it was ready: {other:?}"),
            }
        };
        // Keep draining its output so that it never blocks on a full pipe.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Worker {
            child,
            server,
            lines: receiver,
        }
    }

    /// Waits until the worker reports that it drives exactly `runs` (comma-separated).
    fn drives(&self, runs: &str) {
        let wanted = format!("hitl-fleet-worker driving {runs}");
        loop {
            match self.lines.recv_timeout(hitl_workspace::PATIENCE) {
                Ok(line) if line.trim_end() == wanted.trim_end() => return,
                Ok(_) => {}
                Err(error) => panic!("the worker never reported `{wanted}`: {error}"),
            }
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no lease released.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn fleet_database(server: &str) -> String {
    let url = fresh_database(server).await;
    sql(
        &url,
        "CREATE TABLE fleet_log (n BIGINT NOT NULL, activity TEXT NOT NULL, pid BIGINT NOT NULL); \
         CREATE TABLE fleet_go (go BOOLEAN NOT NULL); INSERT INTO fleet_go VALUES (false);",
    )
    .await;
    url
}

/// The test as an operator: it enqueues runs and answers, and drives nothing.
async fn operator(url: &str) -> Engine {
    fleet_engine(url).background(false).open().await.unwrap()
}

async fn runs_in(engine: &Engine, status: RunStatus) -> usize {
    engine
        .runs(&RunFilter {
            status: Some(status),
            ..RunFilter::default()
        })
        .await
        .unwrap()
        .len()
}

async fn count(url: &str, query: &str) -> i64 {
    sql(url, query).await[0][0].as_deref().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_three_workers_drain_300_runs_with_one_killed_midway() {
    let Some(server) = server_url("fleet_three_workers_drain_300_runs_with_one_killed_midway") else {
        return;
    };
    let url = fleet_database(&server).await;
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::start(&url)).collect();
    let operator = operator(&url).await;
    const RUNS: u64 = 300;
    for n in 0..RUNS {
        operator
            .start_with_id(fleet_release, format!("run-{n:03}"), (n,))
            .await
            .unwrap();
    }
    let killed_pid = workers[0].pid();
    let mut answered = 0;
    let mut killed_at = None;
    eventually("every run completes", async || {
        for request in operator.pending(&PendingFilter::default()).await.unwrap() {
            match operator
                .respond(&request.id, Response::approve(), Responder::new("ops"))
                .await
            {
                Ok(_) => answered += 1,
                Err(error) => panic!("an answer to an open request was refused: {error}"),
            }
        }
        if killed_at.is_none() && answered >= RUNS / 3 {
            workers[0].kill();
            killed_at = Some(Instant::now());
        }
        (runs_in(&operator, RunStatus::Completed).await == RUNS as usize).then_some(())
    })
    .await;
    assert!(killed_at.is_some(), "a worker was killed mid-way");
    assert_eq!(answered, RUNS, "each run's request was answered once");
    for n in 0..RUNS {
        assert_eq!(
            operator.wait(&format!("run-{n:03}")).await.unwrap(),
            Outcome::Completed(serde_json::json!(n * 2))
        );
    }
    // Every activity ran; one ran twice only if it was in flight on the killed worker
    // (executed, not yet journaled), and then it ran once there and once elsewhere.
    let executed = count(&url, "SELECT count(DISTINCT (n, activity)) FROM fleet_log").await;
    let by_killed = count(
        &url,
        &format!("SELECT count(*) FROM fleet_log WHERE pid = {killed_pid}"),
    )
    .await;
    assert!(
        by_killed > 0,
        "the killed worker had taken part before it was killed"
    );
    assert_eq!(executed, 2 * RUNS as i64, "every build and deploy ran");
    let repeated = sql(
        &url,
        "SELECT n, activity, count(*), bool_or(pid = {killed_pid}) FROM fleet_log GROUP BY n, activity HAVING count(*) > 1"
            .replace("{killed_pid}", &killed_pid.to_string())
            .as_str(),
    )
    .await;
    for row in &repeated {
        assert_eq!(row[2].as_deref(), Some("2"), "ran more than twice: {row:?}");
        assert_eq!(
            row[3].as_deref(),
            Some("t"),
            "repeated without the killed worker: {row:?}"
        );
    }
    eprintln!(
        "fleet: {RUNS} runs completed on 3 workers, one SIGKILLed after {answered_at_kill} answers; \
         {} activities ran twice (in flight at the kill)",
        repeated.len(),
        answered_at_kill = RUNS / 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_a_stalled_worker_is_fenced_and_its_run_finishes_elsewhere_once() {
    let Some(server) = server_url("fleet_a_stalled_worker_is_fenced_and_its_run_finishes_elsewhere_once")
    else {
        return;
    };
    let url = fleet_database(&server).await;
    let stalled = Worker::start(&url);
    let operator = operator(&url).await;
    operator.start_with_id(fleet_stall, "stall", (7,)).await.unwrap();
    let stalled = tokio::task::spawn_blocking(move || {
        stalled.drives("stall");
        stalled
    })
    .await
    .unwrap();
    eventually("the first worker is inside the blocking activity", async || {
        (count(&url, "SELECT count(*) FROM fleet_log WHERE activity = 'waiting'").await == 1).then_some(())
    })
    .await;
    stalled.signal("-STOP");
    // A second worker takes the run over once the stopped one's lease lapses, replays the
    // journaled build and waits in the same activity.
    let successor = Worker::start(&url);
    eventually("the successor took the run over", async || {
        (count(&url, "SELECT count(*) FROM fleet_log WHERE activity = 'waiting'").await == 2).then_some(())
    })
    .await;
    sql(&url, "UPDATE fleet_go SET go = true").await;
    assert_eq!(
        hitl_workspace::patiently("the run completes", operator.wait("stall"))
            .await
            .unwrap(),
        Outcome::Completed(serde_json::json!(14))
    );
    // The stopped worker wakes, finishes its activity, and is fenced: it writes nothing, and
    // its deploy never runs.
    let history = operator.history("stall").await.unwrap();
    let settled_at = operator.run_info("stall").await.unwrap().updated_at;
    // The stopped worker wakes: its next lease renewal, or the journal write of its
    // activity, is refused, and it drops the run without writing anything.
    stalled.signal("-CONT");
    let stalled_blocking = tokio::task::spawn_blocking(move || {
        stalled.drives("");
        stalled
    });
    let _stalled = hitl_workspace::patiently("the stopped worker drops the run", stalled_blocking)
        .await
        .unwrap();
    assert_eq!(
        operator.history("stall").await.unwrap(),
        history,
        "the journal is as the successor left it"
    );
    assert_eq!(operator.run_info("stall").await.unwrap().updated_at, settled_at);
    assert_eq!(
        count(&url, "SELECT count(*) FROM fleet_log WHERE activity = 'build'").await,
        1,
        "the journaled build is never run again"
    );
    assert_eq!(
        count(&url, "SELECT count(*) FROM fleet_log WHERE activity = 'deploy'").await,
        1,
        "the run finished exactly once"
    );
    assert_eq!(
        count(
            &url,
            &format!(
                "SELECT count(*) FROM fleet_log WHERE activity = 'deploy' AND pid = {}",
                successor.pid()
            )
        )
        .await,
        1,
        "on the successor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_concurrent_answers_through_every_workers_server_have_one_winner_each() {
    let Some(server) =
        server_url("fleet_concurrent_answers_through_every_workers_server_have_one_winner_each")
    else {
        return;
    };
    let url = fleet_database(&server).await;
    let workers: Vec<Worker> = (0..3)
        .map(|_| Worker::start_with(&url, &[("HITL_FLEET_SERVE", "1")]))
        .collect();
    let operator = operator(&url).await;
    const RUNS: usize = 100;
    for n in 0..RUNS {
        operator
            .start_with_id(fleet_release, format!("run-{n:03}"), (n as u64,))
            .await
            .unwrap();
    }
    let requests = eventually("every run asks", async || {
        let pending = operator.pending(&PendingFilter::default()).await.unwrap();
        (pending.len() == RUNS).then_some(pending)
    })
    .await;
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        for attempt in 0..5 {
            let server = &workers[(i + attempt) % workers.len()].server;
            let post = client
                .post(format!("{server}/api/requests/{}/respond", request.id))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(r#"{"approved": true}"#)
                .send();
            let id = request.id.clone();
            answers.push(tokio::spawn(async move {
                (id, post.await.expect("a server answers").status().as_u16())
            }));
        }
    }
    let mut winners = std::collections::BTreeMap::<String, usize>::new();
    let mut refused = 0;
    for answer in answers {
        let (id, status) = answer.await.unwrap();
        match status {
            200 => *winners.entry(id).or_default() += 1,
            409 => refused += 1,
            other => panic!("an answer got {other}"),
        }
    }
    assert_eq!(winners.len(), RUNS, "every request has a winner");
    assert!(
        winners.values().all(|&wins| wins == 1),
        "exactly one winner each: {winners:?}"
    );
    assert_eq!(
        refused,
        RUNS * 4,
        "every other answer is refused as already answered"
    );
    eventually("every run completes", async || {
        (runs_in(&operator, RunStatus::Completed).await == RUNS).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_a_timer_every_worker_sees_fires_once() {
    let Some(server) = server_url("fleet_a_timer_every_worker_sees_fires_once") else {
        return;
    };
    let url = fleet_database(&server).await;
    let _workers: Vec<Worker> = (0..3).map(|_| Worker::start(&url)).collect();
    let operator = operator(&url).await;
    const RUNS: u64 = 20;
    for n in 0..RUNS {
        operator
            .start_with_id(fleet_expiring, format!("expiring-{n}"), (n,))
            .await
            .unwrap();
    }
    eventually("every run ends after its request expired", async || {
        (runs_in(&operator, RunStatus::Completed).await == RUNS as usize).then_some(())
    })
    .await;
    for n in 0..RUNS {
        assert_eq!(
            operator.wait(&format!("expiring-{n}")).await.unwrap(),
            Outcome::Completed(serde_json::json!(format!("expired {n}")))
        );
    }
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM fleet_log WHERE activity = 'after_expiry'"
        )
        .await,
        RUNS as i64,
        "each expiry resumed its run once"
    );
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM hitl_requests WHERE status = 'expired'"
        )
        .await,
        RUNS as i64
    );
    // The wake-up an expiry arms is removed by whoever resumed the run, just after it did.
    eventually("every timer is spent", async || {
        (count(&url, "SELECT count(*) FROM hitl_timers").await == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_a_killed_listener_connection_loses_no_answer() {
    let Some(server) = server_url("fleet_a_killed_listener_connection_loses_no_answer") else {
        return;
    };
    let url = fleet_database(&server).await;
    let _workers: Vec<Worker> = (0..3).map(|_| Worker::start(&url)).collect();
    let operator = operator(&url).await;
    const RUNS: usize = 40;
    for n in 0..RUNS {
        operator
            .start_with_id(fleet_release, format!("run-{n:03}"), (n as u64,))
            .await
            .unwrap();
    }
    let listeners = "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN hitl_events' AND datname = current_database()";
    eventually("three workers listen", async || {
        (count(&url, listeners).await == 3).then_some(())
    })
    .await;
    let mut answered = 0;
    let mut terminated = 0;
    eventually("every run completes", async || {
        for request in operator.pending(&PendingFilter::default()).await.unwrap() {
            operator
                .respond(&request.id, Response::approve(), Responder::new("ops"))
                .await
                .unwrap();
            answered += 1;
            if answered == RUNS / 2 && terminated == 0 {
                terminated = count(
                    &url,
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE query = 'LISTEN hitl_events' AND datname = current_database()) AS killed",
                )
                .await;
            }
        }
        (runs_in(&operator, RunStatus::Completed).await == RUNS).then_some(())
    })
    .await;
    assert_eq!(
        terminated, 3,
        "the three listener connections were killed while answers arrived"
    );
    assert_eq!(answered, RUNS);
    eventually("the listeners reconnected", async || {
        (count(&url, listeners).await == 3).then_some(())
    })
    .await;
}

/// A webhook receiver on 127.0.0.1: records each delivery's idempotency key, and while
/// `stall` is set holds the connection open without answering (a delivery in flight).
struct Receiver {
    url: String,
    stall: Arc<AtomicBool>,
    /// (idempotency key, answered with 200).
    deliveries: Arc<Mutex<Vec<(String, bool)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let stall = Arc::new(AtomicBool::new(true));
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let (thread_stall, thread_deliveries) = (Arc::clone(&stall), Arc::clone(&deliveries));
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(key) = read_request(&mut stream) else {
                    continue;
                };
                if thread_stall.load(Ordering::SeqCst) {
                    thread_deliveries.lock().unwrap().push((key, false));
                    held.push(stream); // never answered
                } else {
                    let answered = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .is_ok();
                    thread_deliveries.lock().unwrap().push((key, answered));
                }
            }
        });
        Receiver {
            url,
            stall,
            deliveries,
        }
    }

    fn deliveries(&self) -> Vec<(String, bool)> {
        self.deliveries.lock().unwrap().clone()
    }
}

/// Reads one HTTP request; returns its `idempotency-key`.
fn read_request(stream: &mut std::net::TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut key = None;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "idempotency-key" => key = Some(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_a_notification_is_delivered_once_across_a_worker_kill() {
    let Some(server) = server_url("fleet_a_notification_is_delivered_once_across_a_worker_kill") else {
        return;
    };
    let url = fleet_database(&server).await;
    let receiver = Receiver::start();
    let mut sender = Worker::start(&url);
    let operator = operator(&url).await;
    const RUNS: u64 = 3;
    for n in 0..RUNS {
        operator
            .start_with_id(fleet_notified, format!("notified-{n}"), (n, receiver.url.clone()))
            .await
            .unwrap();
    }
    // The only worker claims the notifications and is killed while its first delivery is in
    // flight (the receiver holds it unanswered).
    eventually("a delivery is in flight", async || {
        (!receiver.deliveries().is_empty()).then_some(())
    })
    .await;
    sender.kill();
    receiver.stall.store(false, Ordering::SeqCst);
    let _others: Vec<Worker> = (0..2).map(|_| Worker::start(&url)).collect();
    eventually("every notification is delivered", async || {
        // Every run asked (a run the killed worker had not yet asked for is taken over and
        // asks on another), and every notification was delivered.
        let delivered = count(
            &url,
            "SELECT count(*) FROM hitl_outbox WHERE NOT open AND record->'delivered_at' IS NOT NULL",
        )
        .await;
        (delivered == RUNS as i64).then_some(())
    })
    .await;
    let deliveries = receiver.deliveries();
    let mut answered = std::collections::BTreeMap::<String, usize>::new();
    for (key, ok) in &deliveries {
        if *ok {
            *answered.entry(key.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        answered.len(),
        RUNS as usize,
        "each request's notification arrived: {deliveries:?}"
    );
    assert!(
        answered.values().all(|&times| times == 1),
        "and was delivered once: {deliveries:?}"
    );
    let in_flight = &deliveries[0].0;
    assert!(
        !deliveries[0].1,
        "the first delivery was the one in flight at the kill"
    );
    assert!(
        answered.contains_key(in_flight),
        "it was retried by another worker, with the same idempotency key"
    );
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM hitl_outbox WHERE record->'delivered_at' IS NOT NULL"
        )
        .await,
        RUNS as i64,
        "each is recorded delivered"
    );
}
