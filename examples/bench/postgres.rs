//! `bench --store postgres --database-url URL`: workload W1 and the fan-out on PostgreSQL,
//! beside floors measured on the same server in the same run.
//!
//! ```text
//! export URL=$(.ci/start-postgres)
//! cargo run --release --example bench -- --store postgres --database-url "$URL"          # 10,000 paused runs
//! cargo run --release --example bench -- --store postgres --database-url "$URL" --quick  # 2,000
//! HITL_BENCH_DIAGNOSE=1 cargo run …   # also: where each fan-out's bytes are (pgstattuple)
//! ```
//!
//! Each phase uses a fresh database created on the server of the URL and dropped after it.
//! The durable step and replay figures come from an engine in this process; the
//! answer-to-resumed latency and the fan-out from worker processes (this program again,
//! with `pg-worker`) driving the runs while this process answers through an operator
//! engine. A worker reports the wall-clock instant the first activity after the approval
//! starts as a `resumed <µs since the epoch>` line on its stdout: both processes read the
//! same system clock. See BENCHMARKS.md, "PostgreSQL (issue 13)".

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hitl::PendingFilter;
use hitl::prelude::*;
use serde_json::json;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::memory::FANOUT_BATCH;
use super::postgres_common::{connect, with_database};
use super::{REPORT_RESUMED, RESUMED_AT, micros, paused, percentile, progress, round, w1};

/// The environment variable a worker process finds its database in.
const WORKER_DB: &str = "HITL_BENCH_PG_WORKER_DB";
/// The operator engine's pool: small, the server is shared with the workers.
const OPERATOR_CONNECTIONS: usize = 16;
/// How many answers the benchmark has in flight at once in the fan-out.
const ANSWERS_IN_FLIGHT: usize = 64;

/// DBOS 3.4 on the same server (issue 13): 41 s to start and 51 s to resume 1,000 paused
/// runs, 4.6 KB per paused run.
const DBOS_CREATE_MS_PER_RUN: f64 = 41.0;
const DBOS_RESUME_MS_PER_RUN: f64 = 51.0;
const DBOS_BYTES_PER_PAUSED_RUN: f64 = 4_600.0;

/// What `main` parsed for the PostgreSQL benchmark.
pub struct PgOptions {
    pub database_url: String,
    pub quick: bool,
    pub json: bool,
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// A database of the benchmark's own on the server, dropped (`WITH (FORCE)`) when this is
/// dropped — also when a phase panics.
struct Scratch {
    server_url: String,
    name: String,
    url: String,
}

impl Scratch {
    async fn create(server_url: &str, phase: &str) -> Scratch {
        let name = format!("hitl_bench_{}_{phase}", std::process::id());
        let admin = connect(server_url).await;
        // Two statements: neither may run inside the implicit transaction of a batch.
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin
                .batch_execute(&statement)
                .await
                .expect("the benchmark's database is created");
        }
        Scratch {
            server_url: server_url.to_owned(),
            url: with_database(server_url, &name),
            name,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        // A thread of its own: this may run inside the benchmark's runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = connect(&server_url).await;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("[bench] could not drop database {}: drop it by hand", self.name);
        }
    }
}

/// The floors, with `tokio_postgres` on a journal-shaped scratch table: a single-row
/// `INSERT` in autocommit (one statement, one commit: what one durable step must at least
/// cost), median of 1,000; and 100 rows in one `INSERT … SELECT FROM unnest(…)` per commit,
/// median of 100 commits, per row.
async fn floors(url: &str) -> (f64, f64) {
    let client = connect(url).await;
    client
        .batch_execute(
            "CREATE TABLE bench_floor (run_id TEXT COLLATE \"C\" NOT NULL, step_id TEXT COLLATE \"C\" NOT NULL, \
             record JSONB NOT NULL, PRIMARY KEY (run_id, step_id))",
        )
        .await
        .unwrap();
    let record = json!({"v": 2, "o": 42, "h": "0123456789abcdef", "s": "trivial", "t": 1_790_000_000_000u64});
    let run_id = "00000000-0000-4000-8000-000000000000";
    let single = client
        .prepare("INSERT INTO bench_floor (run_id, step_id, record) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    // A few warm-up commits, then the measured ones.
    let mut samples = Vec::new();
    for i in 0..1_050u32 {
        let step_id = format!("trivial#{i}");
        let start = Instant::now();
        client
            .execute(&single, &[&run_id, &step_id, &record])
            .await
            .unwrap();
        if i >= 50 {
            samples.push(start.elapsed());
        }
    }
    samples.sort();
    let single_us = micros(percentile(&samples, 0.5));

    let batched = client
        .prepare(
            "INSERT INTO bench_floor (run_id, step_id, record) \
             SELECT $1, s.step_id, s.record FROM unnest($2::text[], $3::jsonb[]) AS s(step_id, record)",
        )
        .await
        .unwrap();
    let mut samples = Vec::new();
    for batch in 0..110u32 {
        let ids: Vec<String> = (0..100).map(|i| format!("batch{batch}#{i}")).collect();
        let records = vec![record.clone(); 100];
        let start = Instant::now();
        client
            .execute(&batched, &[&run_id, &ids, &records])
            .await
            .unwrap();
        if batch >= 10 {
            samples.push(start.elapsed());
        }
    }
    samples.sort();
    let per_row_us = micros(percentile(&samples, 0.5)) / 100.0;
    client.batch_execute("DROP TABLE bench_floor").await.unwrap();
    (single_us, per_row_us)
}

async fn engine(url: &str) -> Engine {
    Engine::builder()
        .postgres(url)
        .register(w1)
        .open()
        .await
        .expect("open the benchmark's engine on PostgreSQL")
}

/// An engine that answers and drives nothing: the benchmark's side of the cross-process
/// figures.
async fn operator(url: &str) -> Engine {
    let store = hitl::store::PgStore::connect_with(url, OPERATOR_CONNECTIONS)
        .await
        .expect("the operator's store connects");
    Engine::builder()
        .store(store)
        .background(false)
        .register(w1)
        .open()
        .await
        .expect("open the operator engine")
}

/// Start → durably paused for one W1 run of `n` steps, driven in this process.
async fn time_to_pause(engine: &Engine, n: u32) -> Duration {
    let start = Instant::now();
    let run = engine.start(w1, (n,)).await.unwrap();
    paused(&run).await;
    start.elapsed()
}

/// Answer → first activity after the ask, for a run driven in this process.
async fn resume_here(engine: &Engine, run: &hitl::Run<u32>, request: &hitl::Request) -> Duration {
    *RESUMED_AT.lock().unwrap() = None;
    let start = Instant::now();
    engine
        .respond(&request.id, Response::approve(), Responder::new("bench"))
        .await
        .unwrap();
    run.wait().await.unwrap();
    let resumed = RESUMED_AT.lock().unwrap().expect("the run resumed");
    resumed.duration_since(start)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Durable step and replay per step, in this process: differences between N = 1000 and
/// N = 10, so that the fixed costs cancel; the median of three rounds each.
async fn steps(url: &str) -> (f64, f64) {
    let engine = engine(url).await;
    let mut durable = Vec::new();
    let mut replay = Vec::new();
    for _ in 0..3 {
        let big = time_to_pause(&engine, 1_000).await;
        let small = time_to_pause(&engine, 10).await;
        durable.push(micros(big.saturating_sub(small)) / 990.0);
    }
    for _ in 0..3 {
        let big = engine.start(w1, (1_000,)).await.unwrap();
        let big_request = paused(&big).await.remove(0);
        let small = engine.start(w1, (10,)).await.unwrap();
        let small_request = paused(&small).await.remove(0);
        let replay_big = resume_here(&engine, &big, &big_request).await;
        let replay_small = resume_here(&engine, &small, &small_request).await;
        replay.push(micros(replay_big.saturating_sub(replay_small)) / 990.0);
    }
    engine.close().await.unwrap();
    (median(durable), median(replay))
}

/// A worker process (`bench pg-worker`) on one database, driven by lines on its stdin.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: UnboundedReceiver<String>,
}

impl Worker {
    async fn start(url: &str) -> Worker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("pg-worker")
            .env(WORKER_DB, url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("a worker starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = unbounded_channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let mut worker = Worker { child, stdin, lines };
        worker.expect("ready").await;
        worker
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("the worker reads its commands");
    }

    /// The rest of the next line starting with `word`; other lines are skipped.
    async fn expect(&mut self, word: &str) -> String {
        loop {
            let line = self
                .lines
                .recv()
                .await
                .unwrap_or_else(|| panic!("a worker exited while the benchmark waited for `{word}`"));
            if let Some(rest) = line.strip_prefix(word) {
                return rest.trim().to_owned();
            }
        }
    }

    /// Drops what the worker printed so far (the `resumed` lines of a fan-out).
    fn discard(&mut self) {
        while self.lines.try_recv().is_ok() {}
    }

    /// Closes its engine (its leases released) and waits for it to exit.
    fn stop(mut self) {
        self.send("exit");
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Answer (by this process) → the first activity after the approval starting on the worker,
/// for `runs` paused runs driven by one worker process, answered one at a time (each run
/// completes before the next answer, as in the sled benchmark, so that a run's last steps
/// do not share the server with the next measurement); and how
/// long `respond` itself took (the answer's transaction), both sorted.
async fn cross_process_latency(url: &str, runs: u32) -> (Vec<Duration>, Vec<Duration>) {
    let mut worker = Worker::start(url).await;
    worker.send(&format!("start {runs} 10"));
    worker.expect("started").await;
    let operator = operator(url).await;
    let pending = operator.pending(&PendingFilter::default()).await.unwrap();
    assert_eq!(pending.len(), runs as usize, "every run of the worker is paused");
    let client = connect(url).await;
    let status = client
        .prepare("SELECT status FROM hitl_runs WHERE id = $1")
        .await
        .unwrap();
    let mut latencies = Vec::new();
    let mut responds = Vec::new();
    for request in pending {
        let answered_at = unix_micros();
        operator
            .respond(&request.id, Response::approve(), Responder::new("bench"))
            .await
            .unwrap();
        responds.push(Duration::from_micros(unix_micros().saturating_sub(answered_at)));
        let resumed_at: u64 = worker.expect("resumed").await.parse().unwrap();
        latencies.push(Duration::from_micros(resumed_at.saturating_sub(answered_at)));
        // Not measured: the run's remaining steps, before the next answer.
        while client
            .query_one(&status, &[&request.run_id])
            .await
            .unwrap()
            .get::<_, &str>(0)
            != "completed"
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    operator.close().await.unwrap();
    worker.stop();
    latencies.sort();
    responds.sort();
    (latencies, responds)
}

/// One fan-out: its creation, storage and resumption figures.
struct FanOut {
    workers: usize,
    create_s: f64,
    create_ms_per_run: f64,
    bytes_per_paused_run: f64,
    resume_s: f64,
    resume_ms_per_run: f64,
}

async fn count(client: &tokio_postgres::Client, query: &str) -> i64 {
    client.query_one(query, &[]).await.expect(query).get(0)
}

/// hitl's tables' `pg_total_relation_size` after `VACUUM`, with one line per table.
async fn storage(client: &tokio_postgres::Client) -> i64 {
    client.batch_execute("VACUUM").await.unwrap();
    let rows = client
        .query(
            "SELECT c.relname::text, pg_total_relation_size(c.oid)::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE 'hitl\\_%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let sizes: Vec<String> = rows
        .iter()
        .map(|row| format!("{} {} KiB", row.get::<_, String>(0), row.get::<_, i64>(1) / 1024))
        .collect();
    progress(format!("storage after VACUUM: {}", sizes.join(", ")));
    if std::env::var_os("HITL_BENCH_DIAGNOSE").is_some() {
        diagnose_storage(client).await;
    }
    rows.iter().map(|row| row.get::<_, i64>(1)).sum()
}

/// With `HITL_BENCH_DIAGNOSE` set: where the bytes are — each table's and index's size, live
/// tuple bytes and free space (`pgstattuple`, from PostgreSQL's contrib), and each table's
/// inserts, updates and HOT updates so far.
async fn diagnose_storage(client: &tokio_postgres::Client) {
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        .await
        .expect("pgstattuple (PostgreSQL contrib) is installed");
    let relations = client
        .query(
            "SELECT c.relname::text, pg_relation_size(c.oid), s.tuple_count, s.tuple_len, s.free_space \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL pgstattuple(c.oid) s \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i') AND c.relname LIKE 'hitl\\_%' \
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    for row in relations {
        let (name, size, tuples, live, free): (String, i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        progress(format!(
            "  {name}: {size} B, {tuples} live tuples of {live} B, {free} B free"
        ));
    }
    let writes = client
        .query(
            "SELECT relname::text, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
             WHERE relname LIKE 'hitl\\_%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    for row in writes {
        let (name, inserts, updates, hot): (String, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        progress(format!(
            "  {name}: {inserts} inserts, {updates} updates ({hot} HOT)"
        ));
    }
}

/// `runs` paused runs started by `workers` worker processes (a share each, 500 at a time,
/// until all are paused), their storage, then every request answered by this process and
/// every run resumed to completion by the workers.
async fn fan_out(server_url: &str, workers: usize, runs: u32) -> FanOut {
    let database = Scratch::create(server_url, &format!("fan{workers}")).await;
    let url = database.url.clone();
    let mut fleet = Vec::new();
    for _ in 0..workers {
        fleet.push(Worker::start(&url).await);
    }
    progress(format!(
        "fan-out: {runs} paused runs on {workers} worker process(es)"
    ));
    let share = runs / workers as u32;
    let start = Instant::now();
    for (index, worker) in fleet.iter_mut().enumerate() {
        let mine = if index == 0 {
            runs - share * (workers as u32 - 1)
        } else {
            share
        };
        worker.send(&format!("start {mine} 10"));
    }
    for worker in &mut fleet {
        worker.expect("started").await;
    }
    let create_s = start.elapsed().as_secs_f64();

    let client = connect(&url).await;
    assert_eq!(
        count(&client, "SELECT count(*) FROM hitl_runs WHERE status = 'paused'").await,
        i64::from(runs)
    );
    let bytes = storage(&client).await;

    progress(format!(
        "fan-out: answer all {runs}, resume all to completion on {workers} worker process(es)"
    ));
    let operator = operator(&url).await;
    let pending = operator.pending(&PendingFilter::default()).await.unwrap();
    assert_eq!(pending.len(), runs as usize);
    let start = Instant::now();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(ANSWERS_IN_FLIGHT));
    let answers: Vec<_> = pending
        .into_iter()
        .map(|request| {
            let (operator, in_flight) = (operator.clone(), in_flight.clone());
            tokio::spawn(async move {
                let _permit = in_flight.acquire().await.unwrap();
                operator
                    .respond(&request.id, Response::approve(), Responder::new("bench"))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for answer in answers {
        answer.await.unwrap();
    }
    // Completion as the database sees it: polled every 5 ms.
    while count(
        &client,
        "SELECT count(*) FROM hitl_runs WHERE status = 'completed'",
    )
    .await
        < i64::from(runs)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let resume_s = start.elapsed().as_secs_f64();
    operator.close().await.unwrap();
    for mut worker in fleet {
        worker.discard();
        worker.stop();
    }
    drop(client);
    drop(database);
    FanOut {
        workers,
        create_s,
        create_ms_per_run: create_s * 1e3 / f64::from(runs),
        bytes_per_paused_run: bytes as f64 / f64::from(runs),
        resume_s,
        resume_ms_per_run: resume_s * 1e3 / f64::from(runs),
    }
}

/// A line of the table: name, value, what it measures, and its target with whether it is met.
type Row = (String, f64, String, Option<(String, bool)>);

/// The benchmark on PostgreSQL; see the module docs.
pub async fn run(options: PgOptions) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fanout_runs: u32 = if options.quick { 2_000 } else { 10_000 };
    let latency_runs = 200;
    let admin = connect(&options.database_url).await;
    let server: String = admin.query_one("SELECT version()", &[]).await.unwrap().get(0);
    let synchronous_commit: String = admin
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap()
        .get(0);
    drop(admin);
    println!("hitl benchmark on PostgreSQL — workload W1: N steps → approval → 10 steps");
    println!(
        "server: {} ({server}), synchronous_commit = {synchronous_commit}",
        hitl::store::postgres::redact(&options.database_url)
    );
    println!(
        "configuration: Engine::builder().postgres(url) defaults (pool of {} connections, lease 30 s), \
         tokio multi-thread runtime, {cores} cores",
        hitl::store::postgres::DEFAULT_MAX_CONNECTIONS
    );

    let w1_database = Scratch::create(&options.database_url, "w1").await;
    progress("floors: single-row INSERT + COMMIT, 100 rows per commit");
    let (floor_commit_us, floor_batch_row_us) = floors(&w1_database.url).await;
    progress("durable step and replay, N = 1000 and N = 10, in this process");
    let (durable_step_us, replay_step_us) = steps(&w1_database.url).await;
    drop(w1_database);

    progress(format!(
        "answer-to-resumed across processes: {latency_runs} runs on a worker process, answered here"
    ));
    let latency_database = Scratch::create(&options.database_url, "latency").await;
    let (latencies, responds) = cross_process_latency(&latency_database.url, latency_runs).await;
    drop(latency_database);
    let resume_p50_us = micros(percentile(&latencies, 0.5));
    let resume_p99_us = micros(percentile(&latencies, 0.99));
    let respond_p50_us = micros(percentile(&responds, 0.5));

    let one = fan_out(&options.database_url, 1, fanout_runs).await;
    let three = fan_out(&options.database_url, 3, fanout_runs).await;

    let durable_step_ratio = durable_step_us / floor_commit_us;
    let fanouts = [&one, &three];
    let mut rows: Vec<Row> = vec![
        (
            "floor_commit_us".into(),
            floor_commit_us,
            "single-row INSERT + COMMIT, median of 1,000".into(),
            None,
        ),
        (
            "floor_batch_row_us".into(),
            floor_batch_row_us,
            "per row, 100 rows per commit, median of 100".into(),
            None,
        ),
        (
            "durable_step_us".into(),
            durable_step_us,
            "per step, (N = 1000 − N = 10) / 990, median of 3".into(),
            None,
        ),
        (
            "durable_step_ratio".into(),
            durable_step_ratio,
            "/ floor_commit_us".into(),
            Some(("≤ 1.5".into(), durable_step_ratio <= 1.5)),
        ),
        (
            "replay_step_us".into(),
            replay_step_us,
            "per journaled step on resume, median of 3".into(),
            None,
        ),
        (
            "resume_p50_us".into(),
            resume_p50_us,
            format!("answer here → first activity after it on a worker process, {latency_runs} runs"),
            Some(("≤ 3000".into(), resume_p50_us <= 3_000.0)),
        ),
        (
            "resume_p99_us".into(),
            resume_p99_us,
            "the same, 99th percentile".into(),
            None,
        ),
        (
            "respond_p50_us".into(),
            respond_p50_us,
            "of which `respond` on the operator engine (the answer's transaction), p50".into(),
            None,
        ),
    ];
    for fan in fanouts {
        let w = fan.workers;
        let cores_note = if w > 1 {
            format!(", {cores} cores")
        } else {
            String::new()
        };
        rows.extend([
            (
                format!("fanout{w}_create_ms_per_run"),
                fan.create_ms_per_run,
                format!(
                    "{fanout_runs} runs started on {w} worker(s) until all paused ({:.2} s){cores_note}",
                    fan.create_s
                ),
                Some((
                    format!(
                        "≤ {:.1} (DBOS {DBOS_CREATE_MS_PER_RUN} / 10)",
                        DBOS_CREATE_MS_PER_RUN / 10.0
                    ),
                    fan.create_ms_per_run * 10.0 <= DBOS_CREATE_MS_PER_RUN,
                )),
            ),
            (
                format!("fanout{w}_resume_ms_per_run"),
                fan.resume_ms_per_run,
                format!(
                    "answer all here, {w} worker(s) resume all to completion ({:.2} s){cores_note}",
                    fan.resume_s
                ),
                Some((
                    format!(
                        "≤ {:.1} (DBOS {DBOS_RESUME_MS_PER_RUN} / 10)",
                        DBOS_RESUME_MS_PER_RUN / 10.0
                    ),
                    fan.resume_ms_per_run * 10.0 <= DBOS_RESUME_MS_PER_RUN,
                )),
            ),
            (
                format!("fanout{w}_bytes_per_paused_run"),
                fan.bytes_per_paused_run,
                format!(
                    "pg_total_relation_size of hitl_* after VACUUM / runs (DBOS {DBOS_BYTES_PER_PAUSED_RUN})"
                ),
                Some(("≤ 3072".into(), fan.bytes_per_paused_run <= 3_072.0)),
            ),
        ]);
    }
    println!();
    println!(
        "resumed = the first activity after the approval starts on the worker (its wall clock, same machine)"
    );
    println!();
    println!("| figure | value | meaning | target | met |");
    println!("|---|---:|---|---|---|");
    for (name, value, meaning, target) in &rows {
        let (target, met) = match target {
            Some((target, met)) => (target.as_str(), if *met { "yes" } else { "no" }),
            None => ("", ""),
        };
        println!("| `{name}` | {value:.2} | {meaning} | {target} | {met} |");
    }
    println!("| `fanout_runs` | {fanout_runs} | paused runs in each fan-out | | |");
    println!(
        "| `cores` | {cores} | available_parallelism, shared by the server, the workers and the benchmark | | |"
    );
    if options.json {
        let mut report = serde_json::Map::new();
        report.insert("store".into(), json!("postgres"));
        report.insert("quick".into(), json!(options.quick));
        report.insert("cores".into(), json!(cores));
        report.insert("synchronous_commit".into(), json!(synchronous_commit));
        report.insert(
            "resumed_measured_by".into(),
            json!("first activity after the approval, worker wall clock"),
        );
        report.insert("fanout_runs".into(), json!(fanout_runs));
        for (name, value, _, _) in &rows {
            report.insert(name.clone(), json!(round(*value, 3)));
        }
        println!("{}", serde_json::Value::Object(report));
    }
}

/// `bench pg-worker`: an engine on the database in `HITL_BENCH_PG_WORKER_DB` that drives
/// runs. Prints `ready`, then reads commands on stdin: `start COUNT N` starts COUNT runs of
/// W1 with N steps, 500 at a time, and prints `started COUNT` once all are paused; `exit`
/// closes the engine (releasing its leases). Every run's first activity after its approval
/// prints `resumed <µs since the epoch>`.
pub async fn worker() {
    let url = std::env::var(WORKER_DB).expect("started by the benchmark");
    REPORT_RESUMED.store(true, Ordering::SeqCst);
    let engine = engine(&url).await;
    let (sender, mut commands) = unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    println!("ready");
    while let Some(command) = commands.recv().await {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["start", count, n] => {
                let (count, n): (u32, u32) = (count.parse().unwrap(), n.parse().unwrap());
                for batch_start in (0..count).step_by(FANOUT_BATCH as usize) {
                    let batch: Vec<_> = (batch_start..(batch_start + FANOUT_BATCH).min(count))
                        .map(|_| {
                            let engine = engine.clone();
                            tokio::spawn(async move {
                                let run = engine.start(w1, (n,)).await.unwrap();
                                paused(&run).await;
                            })
                        })
                        .collect();
                    for task in batch {
                        task.await.unwrap();
                    }
                }
                println!("started {count}");
            }
            ["exit"] => break,
            other => panic!("unknown worker command {other:?}"),
        }
    }
    engine.close().await.unwrap();
}
