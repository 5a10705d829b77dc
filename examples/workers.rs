//! A fleet of worker processes on one PostgreSQL database, one of them killed part-way.
//!
//! ```text
//! export DATABASE_URL=$(.ci/start-postgres)
//! cargo run --release --example workers -- --database-url "$DATABASE_URL" --workers 3 --runs 200 --kill-one
//! ```
//!
//! Starts `--workers` worker processes (this program again, with `--worker`), each an engine
//! on the database with an HTTP server on a loopback port. It starts `--runs` runs of a
//! release workflow (build → approval → deploy), answers every request twice at once through
//! two different workers' servers (one answer wins, the other is refused), SIGKILLs one
//! worker after a third of the answers with `--kill-one`, waits until every run has
//! settled, and prints a summary, then one JSON line:
//!
//! `{"runs":200,"completed":200,"workers":3,"killed":1,"activities_run_twice":N,
//! "answers_accepted":200,"answers_refused":200,"max_takeover_ms":T}`
//!
//! Every activity execution is logged to a table of the example's own
//! (`workers_example_log`), so that `activities_run_twice` counts what really ran again;
//! `max_takeover_ms` is how long after the kill the last of the killed worker's runs was
//! held by another worker. The example uses a database of its own, created and dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hitl::prelude::*;
use hitl::{PendingFilter, RunFilter, RunStatus};
use tokio::sync::OnceCell;

// The tests' PostgreSQL helpers: `connect` and `with_database`.
#[path = "../tests/postgres_common/mod.rs"]
mod postgres_common;
use postgres_common::{connect, with_database};

/// The token the workers' servers accept.
const TOKEN: &str = "workers-example-token";
/// The workers' lease: a killed worker's runs are taken over about this long after.
const LEASE: Duration = Duration::from_secs(2);

static LOG: OnceCell<tokio_postgres::Client> = OnceCell::const_new();

async fn log_execution(n: u64, activity: &str) {
    let client = LOG
        .get_or_init(|| async {
            let url = std::env::var("WORKERS_EXAMPLE_DB").expect("a worker knows its database");
            connect(&url).await
        })
        .await;
    client
        .execute(
            "INSERT INTO workers_example_log (n, activity) VALUES ($1, $2)",
            &[&(n as i64), &activity],
        )
        .await
        .expect("an execution is logged");
}

#[task]
async fn build(n: u64) -> u64 {
    log_execution(n, "build").await;
    n
}

/// A deployment takes a moment, so that some are in flight when a worker is killed.
#[task]
async fn deploy(n: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(200)).await;
    log_execution(n, "deploy").await;
    n
}

#[workflow(inject_context)]
async fn release(ctx: &TaskContext, n: u64) -> hitl::Result<u64> {
    let built = build(n).await;
    let answer = ctx
        .request_feedback(Feedback::approval(format!("Deploy build {built}?")))
        .await?;
    Ok(if answer.approved() { deploy(built).await } else { 0 })
}

struct Options {
    database_url: String,
    workers: usize,
    runs: u64,
    kill_one: bool,
}

fn options() -> Options {
    let mut options = Options {
        database_url: std::env::var("DATABASE_URL").unwrap_or_default(),
        workers: 3,
        runs: 200,
        kill_one: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match arg.as_str() {
            "--database-url" => options.database_url = value("--database-url"),
            "--workers" => options.workers = value("--workers").parse().expect("--workers N"),
            "--runs" => options.runs = value("--runs").parse().expect("--runs N"),
            "--kill-one" => options.kill_one = true,
            other => panic!("unknown argument `{other}`; see the example's docs"),
        }
    }
    assert!(
        !options.database_url.is_empty(),
        "give --database-url postgres://… (or DATABASE_URL); `.ci/start-postgres` starts one"
    );
    assert!(
        options.workers >= 2 || !options.kill_one,
        "--kill-one needs at least two workers"
    );
    options
}

/// One worker process: `--worker`, with the database in `WORKERS_EXAMPLE_DB`.
async fn worker() {
    let url = std::env::var("WORKERS_EXAMPLE_DB").expect("started by the example");
    let engine = Engine::builder()
        .postgres(url)
        .lease(LEASE)
        .register(release)
        .open()
        .await
        .expect("the worker's engine opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("ready http://{}", listener.local_addr().unwrap());
    let config = hitl::server::ServerConfig::new().token("ops", TOKEN);
    hitl::server::serve_with(listener, engine, config)
        .await
        .expect("the server runs");
}

struct Worker {
    child: Child,
    server: String,
}

impl Worker {
    fn start(url: &str) -> Worker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("--worker")
            .env("WORKERS_EXAMPLE_DB", url)
            .stdout(Stdio::piped())
            .spawn()
            .expect("a worker starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let server = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("ready ") => break line["ready ".len()..].to_owned(),
                Some(Ok(_)) => {}
                other => panic!("a worker exited before it was ready: {other:?}"),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Worker { child, server }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn count(client: &tokio_postgres::Client, query: &str) -> i64 {
    client.query_one(query, &[]).await.expect(query).get(0)
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("--worker") {
        return worker().await;
    }
    let options = options();
    let admin = connect(&options.database_url).await;
    let name = format!("hitl_workers_example_{}", std::process::id());
    for statement in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .expect("the example's database is created");
    }
    let url = with_database(&options.database_url, &name);
    let db = connect(&url).await;
    db.batch_execute("CREATE TABLE workers_example_log (n BIGINT NOT NULL, activity TEXT NOT NULL)")
        .await
        .unwrap();

    let started = Instant::now();
    let mut workers: Vec<Option<Worker>> = (0..options.workers).map(|_| Some(Worker::start(&url))).collect();
    let servers: Vec<String> = workers
        .iter()
        .flatten()
        .map(|worker| worker.server.clone())
        .collect();
    println!("{} workers ready in {:?}", options.workers, started.elapsed());

    // The example itself is an operator: it enqueues runs and reads; the workers drive them.
    let operator = Engine::builder()
        .postgres(url.clone())
        .background(false)
        .register(release)
        .open()
        .await
        .unwrap();
    for n in 0..options.runs {
        operator
            .start_with_id(release, format!("release-{n:04}"), (n,))
            .await
            .unwrap();
    }

    let client = reqwest::Client::new();
    let (mut accepted, mut refused) = (0u64, 0u64);
    let mut answered = std::collections::HashSet::new();
    let mut killed = None::<(Instant, Vec<String>, String)>;
    let mut max_takeover = None::<Duration>;
    let mut round = 0usize;
    loop {
        let pending = operator.pending(&PendingFilter::default()).await.unwrap();
        let mut answers = Vec::new();
        // A tenth of the runs per round, so that the kill lands while resumed runs are live.
        let chunk = (options.runs as usize / 10).max(1);
        let batch: Vec<_> = pending
            .into_iter()
            .filter(|request| !answered.contains(&request.id))
            .take(chunk)
            .collect();
        for request in batch {
            answered.insert(request.id.clone());
            // Twice at once, through two different live workers' servers: one answer wins.
            let live: Vec<&String> = servers
                .iter()
                .zip(&workers)
                .filter(|(_, worker)| worker.is_some())
                .map(|(server, _)| server)
                .collect();
            for attempt in 0..2 {
                let server = live[(round + attempt) % live.len()];
                round += 1;
                answers.push(
                    client
                        .post(format!("{server}/api/requests/{}/respond", request.id))
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(r#"{"approved": true}"#)
                        .send(),
                );
            }
        }
        for answer in answers {
            match answer.await.map(|response| response.status().as_u16()) {
                Ok(200) => accepted += 1,
                Ok(409) => refused += 1,
                other => panic!("an answer failed: {other:?}"),
            }
        }
        if options.kill_one && killed.is_none() && accepted >= options.runs / 3 {
            let mut victim = workers[0].take().expect("the first worker");
            let pid = victim.child.id();
            let held: Vec<String> = db
                .query(
                    "SELECT id FROM hitl_runs WHERE status = 'running' AND owner LIKE $1",
                    &[&format!("{pid}:%")],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect();
            victim.child.kill().expect("SIGKILL");
            victim.child.wait().unwrap();
            println!(
                "killed worker {pid} after {accepted} answers; it held {} runs",
                held.len()
            );
            killed = Some((Instant::now(), held, format!("{pid}:%")));
        }
        if let Some((at, held, owner)) = &killed
            && max_takeover.is_none()
        {
            let still_held = db
                .query_one(
                    "SELECT count(*) FROM hitl_runs WHERE id = ANY($1) AND owner LIKE $2 AND status = 'running'",
                    &[held, owner],
                )
                .await
                .unwrap()
                .get::<_, i64>(0);
            if still_held == 0 {
                max_takeover = Some(at.elapsed());
            }
        }
        let settled = operator
            .runs(&RunFilter::default())
            .await
            .unwrap()
            .iter()
            .filter(|run| run.status.is_terminal())
            .count() as u64;
        if settled == options.runs && (killed.is_none() || max_takeover.is_some() || !options.kill_one) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let completed = operator
        .runs(&RunFilter {
            status: Some(RunStatus::Completed),
            ..RunFilter::default()
        })
        .await
        .unwrap()
        .len();
    let twice = count(
        &db,
        "SELECT count(*) FROM (SELECT 1 FROM workers_example_log GROUP BY n, activity HAVING count(*) > 1) AS repeated",
    )
    .await;
    let max_takeover_ms = max_takeover.map_or(0, |took| took.as_millis() as u64);
    println!(
        "{completed} of {} runs completed on {} workers in {:?} ({} killed); {twice} activities ran twice; \
         {accepted} answers accepted, {refused} refused; the killed worker's runs were taken over within {max_takeover_ms} ms",
        options.runs,
        options.workers,
        started.elapsed(),
        usize::from(killed.is_some()),
    );
    println!(
        "{}",
        serde_json::json!({
            "runs": options.runs,
            "completed": completed,
            "workers": options.workers,
            "killed": usize::from(killed.is_some()),
            "activities_run_twice": twice,
            "answers_accepted": accepted,
            "answers_refused": refused,
            "max_takeover_ms": max_takeover_ms,
        })
    );
    drop(operator);
    drop(workers);
    drop(db);
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}
