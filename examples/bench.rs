//! Benchmark: workload W1 (N steps → one approval → 10 steps) against the storage floor.
//!
//! ```text
//! cargo run --release --example bench            # full run (10,000 paused runs)
//! cargo run --release --example bench -- --quick # under 90 s on 2 cores (2,000 runs)
//! cargo run --release --example bench -- --json  # one JSON object as the last stdout line
//! cargo run --release --example bench -- --store postgres --database-url URL  # on PostgreSQL
//! ```
//!
//! Everything goes through the public API with the default configuration, on a real-disk
//! directory (`$HITL_BENCH_DIR`, else a temporary directory under `./target`). Each figure is
//! measured in the same run as the floor it is compared with; see BENCHMARKS.md. The
//! PostgreSQL benchmark (`--store postgres`) is in `bench/postgres.rs`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hitl::prelude::*;
use hitl::{PendingFilter, Request};
use serde_json::json;

#[path = "bench/memory.rs"]
mod memory;
#[path = "bench/postgres.rs"]
mod postgres;
// The tests' PostgreSQL helpers (`connect`, `with_database`), for the PostgreSQL part.
#[path = "../tests/postgres_common/mod.rs"]
mod postgres_common;

/// When the first activity after the approval started, for the resume latency.
static RESUMED_AT: Mutex<Option<Instant>> = Mutex::new(None);

/// Pairs of paused runs (N = 1000 and N = 10) resumed for `replay_step_us`, the median of
/// their per-step differences.
const REPLAY_PAIRS: usize = 5;

/// A PostgreSQL benchmark worker process also prints that instant (wall clock) on stdout.
static REPORT_RESUMED: AtomicBool = AtomicBool::new(false);

#[task]
async fn trivial(i: u32) -> u32 {
    i
}

#[task]
async fn first_after_approval(i: u32) -> u32 {
    let mut resumed = RESUMED_AT.lock().unwrap();
    if resumed.is_none() {
        *resumed = Some(Instant::now());
    }
    if REPORT_RESUMED.load(Ordering::Relaxed) {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        println!("resumed {}", since_epoch.as_micros());
    }
    i
}

#[workflow(inject_context)]
async fn w1(ctx: &TaskContext, n: u32) -> hitl::Result<u32> {
    let mut sum = 0;
    for i in 0..n {
        sum += trivial(i).await;
    }
    let answer = ctx.request_feedback(Feedback::approval("Continue?")).await?;
    sum += first_after_approval(u32::from(answer.approved())).await;
    for i in 0..9 {
        sum += trivial(i).await;
    }
    Ok(sum)
}

struct Options {
    quick: bool,
    json: bool,
    /// `--only fanout`: the fan-out alone (and the sled floor it is compared with).
    fanout_only: bool,
}

fn progress(message: impl AsRef<str>) {
    eprintln!("[bench] {}", message.as_ref());
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// The filesystem type of the mount holding `path` (longest matching mount point).
fn filesystem_of(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, mount, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount).then(|| (mount.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "unknown".to_owned(), |(_, kind)| kind)
}

async fn open(path: &Path, durability: Durability) -> Engine {
    Engine::builder()
        .path(path)
        .durability(durability)
        .register(w1)
        .open()
        .await
        .expect("open the benchmark database")
}

async fn paused(run: &hitl::Run<u32>) -> Vec<Request> {
    match run.settled().await.expect("settle") {
        Outcome::Paused(requests) => requests,
        other => panic!("W1 should pause, got {other:?}"),
    }
}

/// A sled database for a floor, configured as the engine configures its own (64 MiB cache,
/// a flush every 500 ms).
fn floor_db(path: PathBuf) -> sled::Db {
    sled::Config::new()
        .path(path)
        .cache_capacity(64 * 1024 * 1024)
        .flush_every_ms(Some(500))
        .open()
        .unwrap()
}

/// sled alone, per op, on journal-sized values: `insert` + `flush`, `insert`, and `get` of a
/// key written in the same run (what replaying one journaled step must at least read).
fn storage_floor(dir: &Path) -> (f64, f64, f64) {
    let db = floor_db(dir.join("floor"));
    let tree = db.open_tree("journal").unwrap();
    let value = vec![b'x'; 90];
    let key = |i: u32| format!("00000000-0000-4000-8000-000000000000\0trivial#{i}");
    let flushed = 1_000;
    let start = Instant::now();
    for i in 0..flushed {
        tree.insert(key(i), value.as_slice()).unwrap();
        db.flush().unwrap();
    }
    let flush_us = micros(start.elapsed()) / f64::from(flushed);
    let inserted = 100_000;
    let start = Instant::now();
    for i in 0..inserted {
        tree.insert(key(i + flushed), value.as_slice()).unwrap();
    }
    let insert_us = micros(start.elapsed()) / f64::from(inserted);
    let start = Instant::now();
    for i in 0..inserted {
        std::hint::black_box(tree.get(key(i + flushed)).unwrap());
    }
    let get_us = micros(start.elapsed()) / f64::from(inserted);
    (flush_us, insert_us, get_us)
}

/// sled making format 3's answer: one transaction over three trees (read the open request's
/// index entry and the run's document; move the request to the closed index, arm the
/// wake-up, rewrite the document), then a flush; per op. A diagnostic beside
/// `resume_p50_us`: a transaction writes its batch marker apart from its values, so it
/// costs sled more than a one-key flush, which is why format 4's answer is one
/// compare-and-swap of the run's document (what `floor_flush_us` measures).
fn transaction_floor(dir: &Path) -> f64 {
    use sled::Transactional;
    use sled::transaction::ConflictableTransactionError;
    let db = floor_db(dir.join("transaction-floor"));
    let trees = ["runs", "requests", "timers"].map(|name| db.open_tree(name).unwrap());
    let [runs, requests, timers] = &trees;
    let (request, document) = (vec![b'q'; 300], vec![b'r'; 200]);
    let committed = 200;
    let start = Instant::now();
    for i in 0..committed {
        let key = |what: &str| format!("{what}00000000-0000-4000-8000-{i:012}");
        (runs, requests, timers)
            .transaction(|(runs, requests, timers)| {
                requests.get(key("open"))?;
                runs.get(key("run"))?;
                requests.remove(key("open").as_bytes())?;
                requests.insert(key("closed").as_bytes(), request.as_slice())?;
                timers.insert(key("wake").as_bytes(), &[])?;
                runs.insert(key("run").as_bytes(), document.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .unwrap();
        db.flush().unwrap();
    }
    micros(start.elapsed()) / f64::from(committed)
}

/// Time to durable pause for N steps, in one durability mode.
async fn time_to_pause(dir: &Path, durability: Durability, n: u32) -> Duration {
    let engine = open(dir, durability).await;
    let start = Instant::now();
    let run = engine.start(w1, (n,)).await.unwrap();
    paused(&run).await;
    let elapsed = start.elapsed();
    drop(run);
    engine.close().await.unwrap();
    elapsed
}

/// Answer → first activity after the ask, for one paused run.
async fn resume_latency(engine: &Engine, run: &hitl::Run<u32>, request: &Request) -> Duration {
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// The per-step and resume figures (all but the fan-out).
struct Latencies {
    pause_flush: Duration,
    durable_step_us: f64,
    buffered_step_us: f64,
    replay_step_us: f64,
    resume_p50_us: f64,
    resume_p99_us: f64,
    fresh_resume_ms: f64,
}

impl Latencies {
    /// `--only fanout`: not measured (shown as NaN, `null` in the JSON).
    fn skipped() -> Self {
        Latencies {
            pause_flush: Duration::ZERO,
            durable_step_us: f64::NAN,
            buffered_step_us: f64::NAN,
            replay_step_us: f64::NAN,
            resume_p50_us: f64::NAN,
            resume_p99_us: f64::NAN,
            fresh_resume_ms: f64::NAN,
        }
    }
}

async fn latencies(dir: &Path) -> Latencies {
    progress("time to pause, N = 1000, Durability::Flush");
    let pause_flush = time_to_pause(&dir.join("pause-flush"), Durability::Flush, 1_000).await;
    let pause_flush_small = time_to_pause(&dir.join("pause-flush-small"), Durability::Flush, 10).await;
    progress("time to pause, N = 1000, Durability::Buffered");
    let pause_buffered = time_to_pause(&dir.join("pause-buffered"), Durability::Buffered, 1_000).await;
    let pause_buffered_small =
        time_to_pause(&dir.join("pause-buffered-small"), Durability::Buffered, 10).await;
    // Per step: the difference between N = 1000 and N = 10, so fixed costs cancel out.
    let durable_step_us = micros(pause_flush.saturating_sub(pause_flush_small)) / 990.0;
    let buffered_step_us = micros(pause_buffered.saturating_sub(pause_buffered_small)) / 990.0;

    progress("replay cost: resuming paused runs of N = 1000 and N = 10");
    let replay_dir = dir.join("replay");
    let engine = open(&replay_dir, Durability::Flush).await;
    // The median of a few pairs: each resume holds one flush, whose jitter (±100 µs here)
    // alone moves one pair's figure by ±0.1 µs per step.
    let mut per_step = Vec::new();
    for _ in 0..REPLAY_PAIRS {
        let big = engine.start(w1, (1_000,)).await.unwrap();
        let big_request = paused(&big).await.remove(0);
        let small = engine.start(w1, (10,)).await.unwrap();
        let small_request = paused(&small).await.remove(0);
        let replay_big = resume_latency(&engine, &big, &big_request).await;
        let replay_small = resume_latency(&engine, &small, &small_request).await;
        per_step.push(micros(replay_big.saturating_sub(replay_small)) / 990.0);
    }
    per_step.sort_by(f64::total_cmp);
    let replay_step_us = per_step[per_step.len() / 2];
    engine.close().await.unwrap();

    progress("answer-to-resumed latency, 200 runs of N = 10");
    let engine = open(&dir.join("latency"), Durability::Flush).await;
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let run = engine.start(w1, (10,)).await.unwrap();
        let request = paused(&run).await.remove(0);
        latencies.push(resume_latency(&engine, &run, &request).await);
    }
    latencies.sort();
    let resume_p50_us = micros(percentile(&latencies, 0.5));
    let resume_p99_us = micros(percentile(&latencies, 0.99));
    engine.close().await.unwrap();

    progress("resume in a fresh process");
    let fresh_dir = dir.join("fresh");
    let engine = open(&fresh_dir, Durability::Flush).await;
    let run = engine.start(w1, (10,)).await.unwrap();
    let request = paused(&run).await.remove(0);
    drop(run);
    engine.close().await.unwrap();
    let operator = Engine::builder().path(&fresh_dir).open().await.unwrap();
    operator
        .respond(&request.id, Response::approve(), Responder::new("bench"))
        .await
        .unwrap();
    operator.close().await.unwrap();
    let start = Instant::now();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("resume-child")
        .arg(&fresh_dir)
        .status()
        .unwrap();
    let fresh_resume_ms = start.elapsed().as_secs_f64() * 1e3;
    assert!(status.success(), "the child process failed to resume the run");

    Latencies {
        pause_flush,
        durable_step_us,
        buffered_step_us,
        replay_step_us,
        resume_p50_us,
        resume_p99_us,
        fresh_resume_ms,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("resume-child") {
        return resume_child(Path::new(&args[1])).await;
    }
    if args.first().map(String::as_str) == Some("pg-worker") {
        return postgres::worker().await;
    }
    if let Some(options) = postgres_options(&args) {
        return postgres::run(options).await;
    }
    let options = Options {
        quick: args.iter().any(|a| a == "--quick"),
        json: args.iter().any(|a| a == "--json"),
        fanout_only: args
            .windows(2)
            .any(|pair| pair[0] == "--only" && pair[1] == "fanout"),
    };
    let accepted = |index: usize, arg: &str| {
        matches!(arg, "--quick" | "--json" | "--only" | "--store")
            || (arg == "fanout" && index > 0 && args[index - 1] == "--only")
            || (arg == "sled" && index > 0 && args[index - 1] == "--store")
    };
    if let Some((_, unknown)) = args
        .iter()
        .enumerate()
        .find(|(index, arg)| !accepted(*index, arg))
    {
        eprintln!(
            "unknown argument `{unknown}`; accepted: --quick, --json, --only fanout, --store sled|postgres"
        );
        std::process::exit(2);
    }
    if args.iter().any(|a| a == "--only") && !options.fanout_only {
        eprintln!("`--only` takes `fanout`");
        std::process::exit(2);
    }
    let base = std::env::var_os("HITL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target").join("bench"));
    std::fs::create_dir_all(&base).unwrap();
    let scratch = tempfile::tempdir_in(&base).unwrap();
    let dir = scratch.path();
    if memory::child_main(dir).await {
        return;
    }
    let filesystem = filesystem_of(dir);
    let fanout_runs: u32 = if options.quick { 2_000 } else { 10_000 };

    println!("hitl benchmark — workload W1: N steps → approval → 10 steps");
    println!("directory: {} ({filesystem})", dir.display());
    println!(
        "configuration: defaults (Durability::Flush unless noted, sled cache 64 MiB — 4 MiB for the \
         fan-out, flush_every 500 ms), tokio multi-thread runtime, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    progress("storage floor");
    let (floor_flush_us, floor_insert_us, floor_get_us) = storage_floor(dir);
    let floor_transaction_us = transaction_floor(dir);

    let Latencies {
        pause_flush,
        durable_step_us,
        buffered_step_us,
        replay_step_us,
        resume_p50_us,
        resume_p99_us,
        fresh_resume_ms,
    } = if options.fanout_only {
        Latencies::skipped()
    } else {
        latencies(dir).await
    };

    progress(format!("fan-out: {fanout_runs} paused runs of N = 10"));
    let engine = Engine::builder()
        .path(dir.join("fanout"))
        .cache_capacity(memory::FANOUT_CACHE_BYTES)
        .register(w1)
        .open()
        .await
        .unwrap();
    let growth = memory::fan_out(&engine, fanout_runs).await;
    let fanout_create_s = growth.create_s;
    engine.flush().await.unwrap();
    let stats = engine.storage_stats().await.unwrap();
    let fanout_disk_bytes_per_run =
        stats.on_disk.expect("sled knows its size") as f64 / f64::from(fanout_runs);
    let fanout_logical_bytes_per_run =
        stats.logical.expect("sled knows its size") as f64 / f64::from(fanout_runs);
    let fanout_rss_in_process_bytes_per_run = growth.bytes_per_run(fanout_runs);
    progress(format!(
        "RSS: start {} MiB, half {} MiB, all {} MiB",
        growth.rss_start >> 20,
        growth.rss_half >> 20,
        growth.rss_all >> 20
    ));

    progress("fan-out: answer all and resume all to completion");
    let pending = engine.pending(&PendingFilter::default()).await.unwrap();
    assert_eq!(pending.len(), fanout_runs as usize);
    let start = Instant::now();
    let answers: Vec<_> = pending
        .into_iter()
        .map(|request| {
            let engine = engine.clone();
            tokio::spawn(async move {
                engine
                    .respond(&request.id, Response::approve(), Responder::new("bench"))
                    .await
                    .unwrap();
                engine.wait(&request.run_id).await.unwrap()
            })
        })
        .collect();
    for answer in answers {
        assert!(matches!(answer.await.unwrap(), Outcome::Completed(_)));
    }
    let fanout_resume_all_s = start.elapsed().as_secs_f64();
    engine.close().await.unwrap();

    progress("memory: the fan-out again in a process of its own, by default and with one malloc arena");
    let fanout_rss_bytes_per_run =
        memory::in_child("fanout", fanout_runs, &[]).map_or(f64::NAN, |figures| figures.rss_bytes_per_run);
    let fanout_rss_one_arena_bytes_per_run =
        memory::in_child("fanout", fanout_runs, &[("MALLOC_ARENA_MAX", "1")])
            .map_or(f64::NAN, |figures| figures.rss_bytes_per_run);
    // With jemalloc purging freed pages at once, RSS follows the live heap: how much of the
    // target figure is memory glibc keeps after it is freed. Only where the library is installed
    // (Debian: `libjemalloc2`).
    let fanout_rss_jemalloc_bytes_per_run = memory::jemalloc().map_or(f64::NAN, |library| {
        progress("memory: the fan-out again under jemalloc, purging at once");
        memory::in_child(
            "fanout",
            fanout_runs,
            &[
                ("LD_PRELOAD", library),
                ("MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0"),
            ],
        )
        .map_or(f64::NAN, |figures| figures.rss_bytes_per_run)
    });
    progress("memory and disk floor: sled alone, making a paused run's writes, in a process of its own");
    let (floor_rss_bytes_per_run, floor_disk_bytes_per_run) = memory::sled_floor("sled", fanout_runs);
    progress("memory and disk floor: the same writes in a run-document layout (two keys per paused run)");
    let (floor_rss_run_document_bytes_per_run, floor_disk_run_document_bytes_per_run) =
        memory::sled_floor("sled-run-document", fanout_runs);

    let pause_ms_n1000 = pause_flush.as_secs_f64() * 1e3;
    let durable_step_ratio = durable_step_us / floor_flush_us;
    let buffered_step_ratio = buffered_step_us / floor_insert_us;
    let replay_step_ratio = replay_step_us / floor_get_us;
    let report = json!({
        "filesystem": filesystem,
        "quick": options.quick,
        "floor_flush_us": round(floor_flush_us, 2),
        "floor_insert_us": round(floor_insert_us, 3),
        "floor_get_us": round(floor_get_us, 3),
        "floor_transaction_us": round(floor_transaction_us, 2),
        "pause_ms_n1000": round(pause_ms_n1000, 1),
        "durable_step_us": round(durable_step_us, 2),
        "durable_step_ratio": round(durable_step_ratio, 3),
        "buffered_step_us": round(buffered_step_us, 2),
        "buffered_step_ratio": round(buffered_step_ratio, 3),
        "replay_step_us": round(replay_step_us, 3),
        "replay_step_ratio": round(replay_step_ratio, 3),
        "resume_p50_us": round(resume_p50_us, 1),
        "resume_p99_us": round(resume_p99_us, 1),
        "fresh_resume_ms": round(fresh_resume_ms, 1),
        "fanout_runs": fanout_runs,
        "fanout_create_s": round(fanout_create_s, 3),
        "fanout_disk_bytes_per_run": round(fanout_disk_bytes_per_run, 1),
        "fanout_logical_bytes_per_run": round(fanout_logical_bytes_per_run, 1),
        "fanout_rss_bytes_per_run": round(fanout_rss_bytes_per_run, 1),
        "fanout_rss_in_process_bytes_per_run": round(fanout_rss_in_process_bytes_per_run, 1),
        "fanout_rss_one_arena_bytes_per_run": round(fanout_rss_one_arena_bytes_per_run, 1),
        "fanout_rss_jemalloc_bytes_per_run": round(fanout_rss_jemalloc_bytes_per_run, 1),
        "fanout_resume_all_s": round(fanout_resume_all_s, 3),
        "floor_rss_bytes_per_run": round(floor_rss_bytes_per_run, 1),
        "fanout_rss_floor_ratio": round(fanout_rss_bytes_per_run / floor_rss_bytes_per_run, 3),
        "floor_disk_bytes_per_run": round(floor_disk_bytes_per_run, 1),
        "floor_rss_run_document_bytes_per_run": round(floor_rss_run_document_bytes_per_run, 1),
        "floor_disk_run_document_bytes_per_run": round(floor_disk_run_document_bytes_per_run, 1),
    });

    let resume_all_target = if options.quick { 2.0 } else { 10.0 };
    let rows = [
        ("floor_flush_us", floor_flush_us, "sled insert + flush", None),
        ("floor_insert_us", floor_insert_us, "sled insert", None),
        ("floor_get_us", floor_get_us, "sled get, in-run", None),
        (
            "floor_transaction_us",
            floor_transaction_us,
            "sled 3-tree transaction + flush (format 3's answer)",
            None,
        ),
        (
            "pause_ms_n1000",
            pause_ms_n1000,
            "start → durably paused, N = 1000",
            None,
        ),
        (
            "durable_step_us",
            durable_step_us,
            "per step, Durability::Flush",
            None,
        ),
        (
            "durable_step_ratio",
            durable_step_ratio,
            "/ floor_flush_us",
            Some(("≤ 1.5", durable_step_ratio <= 1.5)),
        ),
        (
            "buffered_step_us",
            buffered_step_us,
            "per step, Durability::Buffered",
            None,
        ),
        (
            "buffered_step_ratio",
            buffered_step_ratio,
            "/ floor_insert_us",
            Some(("≤ 2.0", buffered_step_ratio <= 2.0)),
        ),
        (
            "replay_step_us",
            replay_step_us,
            "per journaled step on resume",
            Some(("≤ 2", replay_step_us <= 2.0)),
        ),
        (
            "replay_step_ratio",
            replay_step_ratio,
            "/ floor_get_us",
            Some(("≤ 2.0", replay_step_ratio <= 2.0)),
        ),
        (
            "resume_p50_us",
            resume_p50_us,
            "answer → next activity",
            Some(("≤ floor + 500", resume_p50_us <= floor_flush_us + 500.0)),
        ),
        ("resume_p99_us", resume_p99_us, "answer → next activity", None),
        (
            "fresh_resume_ms",
            fresh_resume_ms,
            "spawn → exit, new process",
            None,
        ),
        ("fanout_create_s", fanout_create_s, "create all paused runs", None),
        (
            "fanout_disk_bytes_per_run",
            fanout_disk_bytes_per_run,
            "sled size on disk / runs",
            Some(("≤ 2048", fanout_disk_bytes_per_run <= 2048.0)),
        ),
        (
            "fanout_logical_bytes_per_run",
            fanout_logical_bytes_per_run,
            "keys + values / runs",
            None,
        ),
        (
            "fanout_rss_bytes_per_run",
            fanout_rss_bytes_per_run,
            "RSS growth per paused run, in a process of its own",
            Some(("≤ 512", fanout_rss_bytes_per_run <= 512.0)),
        ),
        (
            "fanout_rss_in_process_bytes_per_run",
            fanout_rss_in_process_bytes_per_run,
            "the same, after the other measurements, in this process (diagnostic)",
            None,
        ),
        (
            "fanout_rss_one_arena_bytes_per_run",
            fanout_rss_one_arena_bytes_per_run,
            "the same with MALLOC_ARENA_MAX=1 (diagnostic)",
            None,
        ),
        (
            "fanout_rss_jemalloc_bytes_per_run",
            fanout_rss_jemalloc_bytes_per_run,
            "the same under jemalloc, purging at once (diagnostic)",
            None,
        ),
        (
            "fanout_resume_all_s",
            fanout_resume_all_s,
            "answer + resume all",
            Some((
                if options.quick { "≤ 2" } else { "≤ 10" },
                fanout_resume_all_s <= resume_all_target,
            )),
        ),
        (
            "floor_rss_bytes_per_run",
            floor_rss_bytes_per_run,
            "RSS growth, sled alone, a paused run's writes",
            None,
        ),
        (
            "fanout_rss_floor_ratio",
            fanout_rss_bytes_per_run / floor_rss_bytes_per_run,
            "fanout_rss_bytes_per_run / floor_rss_bytes_per_run (diagnostic)",
            None,
        ),
        (
            "floor_disk_bytes_per_run",
            floor_disk_bytes_per_run,
            "sled alone on disk, a paused run's writes",
            None,
        ),
        (
            "floor_rss_run_document_bytes_per_run",
            floor_rss_run_document_bytes_per_run,
            "RSS growth, sled alone, the same writes as a run document (two keys; diagnostic)",
            None,
        ),
        (
            "floor_disk_run_document_bytes_per_run",
            floor_disk_run_document_bytes_per_run,
            "sled alone on disk, the same writes as a run document (diagnostic)",
            None,
        ),
    ];
    println!();
    println!("| figure | value | meaning | target | met |");
    println!("|---|---:|---|---|---|");
    for (name, value, meaning, target) in rows {
        let (target, met) = match target {
            Some((target, met)) => (target, if met { "yes" } else { "no" }),
            None => ("", ""),
        };
        println!("| `{name}` | {value:.2} | {meaning} | {target} | {met} |");
    }
    println!("| `fanout_runs` | {fanout_runs} | paused runs in the fan-out | | |");
    if options.json {
        println!("{report}");
    }
}

/// `--store postgres --database-url URL [--quick] [--json]`: the PostgreSQL benchmark's
/// options; `None` for the sled benchmark. Exits with a message on a bad combination.
fn postgres_options(args: &[String]) -> Option<postgres::PgOptions> {
    let value_of = |flag: &str| {
        args.windows(2)
            .find(|pair| pair[0] == flag)
            .map(|pair| pair[1].clone())
    };
    let store = value_of("--store");
    let database_url = value_of("--database-url");
    match store.as_deref() {
        None if database_url.is_none() => return None,
        Some("sled") if database_url.is_none() => return None,
        Some("postgres") => {}
        None | Some("sled") => {
            eprintln!("`--database-url` is for `--store postgres`");
            std::process::exit(2);
        }
        Some(other) => {
            eprintln!("unknown store `{other}`; accepted: --store sled, --store postgres");
            std::process::exit(2);
        }
    }
    let Some(database_url) = database_url else {
        eprintln!("`--store postgres` needs `--database-url postgres://…` (`.ci/start-postgres` prints one)");
        std::process::exit(2);
    };
    let takes_value = |arg: &str| matches!(arg, "--store" | "--database-url");
    for (index, arg) in args.iter().enumerate() {
        let is_value = index > 0 && takes_value(&args[index - 1]);
        if !is_value && !takes_value(arg) && !matches!(arg.as_str(), "--quick" | "--json") {
            eprintln!(
                "unknown argument `{arg}` for `--store postgres`; accepted: --database-url URL, --quick, --json"
            );
            std::process::exit(2);
        }
    }
    Some(postgres::PgOptions {
        database_url,
        quick: args.iter().any(|a| a == "--quick"),
        json: args.iter().any(|a| a == "--json"),
    })
}

/// The child of `fresh_resume_ms`: opens the database, finds the stored answer, finishes.
async fn resume_child(path: &Path) {
    let engine = open(path, Durability::Flush).await;
    let runs = engine.runs(&hitl::RunFilter::default()).await.unwrap();
    for run in runs {
        assert!(matches!(
            engine.wait(&run.id).await.unwrap(),
            Outcome::Completed(_)
        ));
    }
    engine.close().await.unwrap();
}
