//! Many worker processes on one PostgreSQL database: runs drain across workers, one worker
//! SIGKILLed mid-way loses nothing, and answers given anywhere resume runs wherever they are.
//!
//! Workers are real processes: this test binary re-executed with `HITL_FLEET_WORKER` set
//! runs the ignored `fleet_worker` entry, which opens an engine on the database and drives
//! runs until it is killed. Every activity execution is logged to a table with the worker's
//! pid, so the test can count what ran twice, and where.

mod postgres_common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
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
        let _engine = Engine::builder()
            .postgres(url)
            .lease(LEASE)
            .register(fleet_release)
            .open()
            .await
            .expect("the worker's engine opens");
        println!("hitl-fleet-worker ready");
        std::future::pending::<()>().await;
    });
}

/// A running worker process; killed when dropped.
struct Worker {
    child: Child,
}

impl Worker {
    fn start(url: &str) -> Worker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fleet_worker",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("HITL_FLEET_WORKER", url)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("a worker process starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("hitl-fleet-worker ready") => break,
                Some(Ok(_)) => {}
                other => panic!("the worker exited before it was ready: {other:?}"),
            }
        }
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Worker { child }
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
        "CREATE TABLE fleet_log (n BIGINT NOT NULL, activity TEXT NOT NULL, pid BIGINT NOT NULL)",
    )
    .await;
    url
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
    // The test itself is an operator: it enqueues runs and answers, and drives nothing.
    let operator = Engine::builder()
        .postgres(url.clone())
        .background(false)
        .register(fleet_release)
        .open()
        .await
        .unwrap();
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
        let completed = operator
            .runs(&RunFilter {
                status: Some(RunStatus::Completed),
                ..RunFilter::default()
            })
            .await
            .unwrap()
            .len();
        (completed == RUNS as usize).then_some(())
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
