//! The fan-out's memory figures, each measured in a process of its own.
//!
//! RSS counts the pages a process has touched, and glibc's malloc keeps the memory a process
//! frees for reuse. A figure measured after other parts of the benchmark would count growth
//! that landed in memory those parts freed as no growth at all, so each figure below comes
//! from a child process (this binary again, told what to measure by [`CHILD`]) that does only
//! that one thing:
//!
//! - `fanout`: the engine's fan-out of paused runs (`fanout_rss_bytes_per_run`, the target
//!   figure; again with `MALLOC_ARENA_MAX=1` for `fanout_rss_one_arena_bytes_per_run`, and
//!   under jemalloc purging freed pages at once for `fanout_rss_jemalloc_bytes_per_run`);
//! - `sled`: sled alone, making the writes a paused run makes (`floor_rss_bytes_per_run`,
//!   `floor_disk_bytes_per_run`);
//! - `sled-run-document`: sled alone, making the same steps' writes in the layout a format 3
//!   could have, two keys per paused run (`floor_rss_run_document_bytes_per_run`,
//!   `floor_disk_run_document_bytes_per_run`): see [`sled_run_document`].
//!
//! Two diagnostics help find where a `fanout` child's growth went: [`MAPPINGS`] and
//! [`EXIT_OPEN`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use hitl::prelude::*;
use serde_json::json;

use super::{paused, progress, w1};

/// The fan-out's sled cache: fixed and small enough to be full before the first RSS reading,
/// so that RSS growth measures what paused runs hold, not a cache still filling up.
pub(crate) const FANOUT_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// Runs started at once in a fan-out (the benchmark's concurrency), on sled and on each
/// PostgreSQL worker.
pub(crate) const FANOUT_BATCH: u32 = 500;

/// Names the measurement a child process makes (`fanout` or `sled`).
const CHILD: &str = "HITL_BENCH_MEMORY_CHILD";
/// How many runs the child's fan-out makes.
const CHILD_RUNS: &str = "HITL_BENCH_MEMORY_RUNS";
/// Diagnostic: set, a `fanout` child prints on stderr which memory mappings its growth
/// landed in (arena heaps, sled's log buffers, thread stacks).
const MAPPINGS: &str = "HITL_BENCH_MAPPINGS";
/// Diagnostic: set, a `fanout` child exits right after its readings, the engine still open,
/// so that under `heaptrack` what is allocated at exit is the live heap at that many paused
/// runs (compare `HITL_BENCH_MEMORY_RUNS=5000` with `10000`).
const EXIT_OPEN: &str = "HITL_BENCH_EXIT_OPEN";

/// The system's jemalloc, if it is installed where Debian and Ubuntu put it (`libjemalloc2`).
pub(crate) fn jemalloc() -> Option<&'static str> {
    [
        "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
        "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    ]
    .into_iter()
    .find(|library| Path::new(library).exists())
}

/// RSS is read when half the runs are paused, which must be the end of a batch.
fn check_halves(runs: u32) {
    assert!(
        runs > 0 && runs.is_multiple_of(2 * FANOUT_BATCH),
        "a fan-out measuring memory makes a multiple of {} runs, not {runs}",
        2 * FANOUT_BATCH
    );
}

pub(crate) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// RSS once the runs just paused have let go: the median of 9 readings 20 ms apart (a
/// reading taken while the last batch's tasks are still being dropped counts them). It
/// blocks: the fan-out calls it between batches, when no run is in flight.
fn settled_rss() -> u64 {
    let mut readings = Vec::new();
    for _ in 0..9 {
        std::thread::sleep(Duration::from_millis(20));
        readings.push(rss_bytes());
    }
    readings.sort_unstable();
    readings[readings.len() / 2]
}

/// One memory mapping of this process, from `/proc/self/smaps`.
struct Mapping {
    /// Permissions and path (empty for an anonymous mapping: an arena heap, a thread stack,
    /// one large allocation such as a sled log buffer of 536,576 bytes).
    label: String,
    size: u64,
    rss: u64,
}

/// This process's mappings by start address. Diagnostic ([`MAPPINGS`]): which mappings a
/// fan-out's growth landed in.
fn mappings() -> BTreeMap<u64, Mapping> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut mappings = BTreeMap::new();
    let mut current = None;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A mapping's header line starts with its address range, `start-end`.
        if let Some((start, end)) = fields.first().and_then(|range| range.split_once('-'))
            && let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        {
            let label = format!(
                "{} {}",
                fields.get(1).unwrap_or(&""),
                fields.get(5).unwrap_or(&"")
            );
            current = Some((start, label, end - start));
        } else if let (Some(&"Rss:"), Some(kib)) = (fields.first(), fields.get(1))
            && let Ok(kib) = kib.parse::<u64>()
            && let Some((start, label, size)) = current.take()
        {
            let rss = kib * 1024;
            mappings.insert(start, Mapping { label, size, rss });
        }
    }
    mappings
}

/// Prints, on stderr, every mapping whose RSS changed from `half` to `all` (a mapping that
/// changed size counts as gone and new), and the total.
fn print_mapping_growth(half: &BTreeMap<u64, Mapping>, all: &BTreeMap<u64, Mapping>) {
    let same = |mappings: &BTreeMap<u64, Mapping>, start: &u64, size: u64| {
        mappings
            .get(start)
            .filter(|mapping| mapping.size == size)
            .map(|mapping| mapping.rss)
    };
    let mut total = 0i64;
    let mut lines = Vec::new();
    for (start, mapping) in all {
        let before = same(half, start, mapping.size).unwrap_or(0);
        if mapping.rss != before {
            total += mapping.rss as i64 - before as i64;
            lines.push(format!(
                "  {start:x} {} size {}: RSS {before} -> {}",
                mapping.label, mapping.size, mapping.rss
            ));
        }
    }
    for (start, mapping) in half {
        if same(all, start, mapping.size).is_none() && mapping.rss > 0 {
            total -= mapping.rss as i64;
            lines.push(format!(
                "  {start:x} {} size {}: gone, RSS {}",
                mapping.label, mapping.size, mapping.rss
            ));
        }
    }
    eprintln!("RSS growth by mapping, half the runs to all: {total:+} bytes");
    for line in lines {
        eprintln!("{line}");
    }
}

/// RSS growth per run from the middle of a fan-out to its end, and how long it took.
pub(crate) struct Growth {
    pub(crate) rss_start: u64,
    pub(crate) rss_half: u64,
    pub(crate) rss_all: u64,
    pub(crate) create_s: f64,
}

impl Growth {
    pub(crate) fn bytes_per_run(&self, runs: u32) -> f64 {
        self.rss_all.saturating_sub(self.rss_half) as f64 / f64::from(runs - runs / 2)
    }
}

/// Starts `runs` W1 runs, [`FANOUT_BATCH`] at a time, each until it pauses for its approval,
/// reading RSS when half of them are paused and when all are.
pub(crate) async fn fan_out(engine: &Engine, runs: u32) -> Growth {
    check_halves(runs);
    let rss_start = rss_bytes();
    let start = Instant::now();
    let mut rss_half = 0;
    let by_mapping = std::env::var_os(MAPPINGS).is_some();
    let mut mappings_half = BTreeMap::new();
    // Only a count: the runs' ids are not kept, so the growth is what the engine and sled hold.
    let mut paused_runs = 0u32;
    for batch_start in (0..runs).step_by(FANOUT_BATCH as usize) {
        let batch: Vec<_> = (batch_start..(batch_start + FANOUT_BATCH).min(runs))
            .map(|_| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    let run = engine.start(w1, (10,)).await.unwrap();
                    paused(&run).await;
                })
            })
            .collect();
        for task in batch {
            task.await.unwrap();
            paused_runs += 1;
        }
        if paused_runs == runs / 2 {
            rss_half = settled_rss();
            if by_mapping {
                mappings_half = mappings();
            }
        }
    }
    let create_s = start.elapsed().as_secs_f64();
    let rss_all = settled_rss();
    if by_mapping {
        print_mapping_growth(&mappings_half, &mappings());
    }
    Growth {
        rss_start,
        rss_half,
        rss_all,
        create_s,
    }
}

/// The figures of one child process: RSS growth per paused run, and for `sled`, its size on
/// disk per run.
pub(crate) struct ChildFigures {
    pub(crate) rss_bytes_per_run: f64,
    pub(crate) disk_bytes_per_run: Option<f64>,
}

/// Runs this binary again as a `child` (`fanout` or `sled`) with `env` added, and reads the
/// JSON line it prints. `None` (with a message) when the child fails.
pub(crate) fn in_child(child: &str, runs: u32, env: &[(&str, &str)]) -> Option<ChildFigures> {
    let mut command = std::process::Command::new(std::env::current_exe().ok()?);
    command
        .env(CHILD, child)
        .env(CHILD_RUNS, runs.to_string())
        // The default figure is glibc's default, whatever the benchmark was started with.
        .env_remove("MALLOC_ARENA_MAX")
        .env_remove("MALLOC_CONF")
        .env_remove("LD_PRELOAD")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::inherit());
    let output = command.output().ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let figures: Option<serde_json::Value> = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok());
    let Some(figures) = figures.filter(|_| output.status.success()) else {
        progress(format!(
            "the `{child}` child failed ({}): {stdout}",
            output.status
        ));
        return None;
    };
    let Some(rss_bytes_per_run) = figures["rss_bytes_per_run"].as_f64() else {
        progress(format!(
            "the `{child}` child printed no `rss_bytes_per_run`: {figures}"
        ));
        return None;
    };
    Some(ChildFigures {
        rss_bytes_per_run,
        disk_bytes_per_run: figures["disk_bytes_per_run"].as_f64(),
    })
}

/// A sled-alone child's (`sled`, `sled-run-document`) RSS growth and disk per run; NaN for a
/// child that failed.
pub(crate) fn sled_floor(child: &str, runs: u32) -> (f64, f64) {
    in_child(child, runs, &[]).map_or((f64::NAN, f64::NAN), |figures| {
        (
            figures.rss_bytes_per_run,
            figures.disk_bytes_per_run.unwrap_or(f64::NAN),
        )
    })
}

/// In a child process: makes the measurement [`CHILD`] names, prints it as one JSON line,
/// and returns `true`. `false` in the benchmark's own process.
pub(crate) async fn child_main(dir: &Path) -> bool {
    let Ok(child) = std::env::var(CHILD) else {
        return false;
    };
    let runs: u32 = std::env::var(CHILD_RUNS)
        .ok()
        .and_then(|runs| runs.parse().ok())
        .expect(CHILD_RUNS);
    // A panic on any thread ends the child (a thread that never reaches the half-way barrier
    // would leave the others waiting), and the parent reports the failure.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::exit(101);
    }));
    let figures = match child.as_str() {
        "fanout" => {
            let engine = Engine::builder()
                .path(dir.join("fanout"))
                .cache_capacity(FANOUT_CACHE_BYTES)
                .register(w1)
                .open()
                .await
                .unwrap();
            let growth = fan_out(&engine, runs).await;
            let figures = json!({ "rss_bytes_per_run": growth.bytes_per_run(runs) });
            if std::env::var_os(EXIT_OPEN).is_some() {
                println!("{figures}");
                std::process::exit(0);
            }
            engine.close().await.unwrap();
            figures
        }
        "sled" => {
            let (rss, disk) = sled_alone(&dir.join("sled-alone"), runs, Layout::Format2);
            json!({ "rss_bytes_per_run": rss, "disk_bytes_per_run": disk })
        }
        "sled-run-document" => {
            let (rss, disk) = sled_alone(&dir.join("sled-run-document"), runs, Layout::RunDocument);
            json!({ "rss_bytes_per_run": rss, "disk_bytes_per_run": disk })
        }
        other => panic!("unknown memory child `{other}`"),
    };
    println!("{figures}");
    true
}

/// What a paused W1 run (N = 10) stores in format 2, read from a fan-out's database: the
/// run record (36-byte key, 54-byte value), written when the run starts and when it pauses;
/// its journal chunk (21-byte key), written once per step, 11 times, growing by about 26 bytes
/// a step to 289; its request (17 + 93 bytes) and its pending-index entry (34 + 0 bytes).
const RUN_KEY: usize = 36;
const RUN_VALUE: usize = 54;
const CHUNK_KEY: usize = 21;
const CHUNK_STEPS: usize = 11;
const CHUNK_FIRST: usize = 29;
const CHUNK_STEP: usize = 26;
const REQUEST: (usize, usize) = (17, 93);
const PENDING_KEY: usize = 34;

/// How [`sled_alone`] lays a paused run out.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// Format 2, as the engine writes it: four keys in four trees (run record, journal chunk,
    /// request, pending-index entry).
    Format2,
    /// [`sled_run_document`]: two keys in two trees.
    RunDocument,
}

/// [`Layout::RunDocument`]: a layout the engine does not write (yet), measured beside format 2 because it is the lever
/// this benchmark found on RSS per paused run: a run's record, its first journal chunk and its
/// open requests in one value (the run document, 17-byte key, rewritten at every step as the
/// chunk is today), and one entry per request in a request index (17-byte key, the run's
/// 17-byte key as value) that also serves as the pending index. The same bytes are written,
/// at the same steps, from the same threads; only the number of keys per paused run
/// differs (two, not four).
const RUN_DOCUMENT_KEY: usize = 17;
const REQUEST_INDEX: (usize, usize) = (17, 17);

/// sled alone, making the writes of [`RUN_KEY`]…[`PENDING_KEY`] for `runs` runs the way the
/// fan-out makes them: one thread per core (the runtime's workers), sharing each batch's runs
/// a step at a time, one flush per step (group commit), with the fan-out's cache. Returns
/// RSS growth per run from half the runs to all of them, and bytes on disk per run: the floor
/// of `fanout_rss_bytes_per_run` and `fanout_disk_bytes_per_run` in format 2, and the same
/// in another `layout`.
fn sled_alone(dir: &Path, runs: u32, layout: Layout) -> (f64, f64) {
    check_halves(runs);
    let threads = std::thread::available_parallelism().map_or(2, |cores| cores.get() as u32);
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(FANOUT_CACHE_BYTES)
        .flush_every_ms(Some(500))
        .open()
        .unwrap();
    let tree = |name: &str| db.open_tree(name).unwrap();
    let (runs_tree, journal, requests, pending) = (
        tree("runs.2"),
        tree("journal.2"),
        tree("requests.2"),
        tree("pending.2"),
    );
    // Keys that grow with the run number, as time-ordered ids do.
    let key = |run: u32, len: usize, tag: u8| {
        let mut key = vec![tag; len];
        key[..4].copy_from_slice(&run.to_be_bytes());
        key
    };
    let batches = runs / FANOUT_BATCH;
    let half_batch = batches / 2;
    // Both threads and the measuring one meet after the batch that completes half the runs.
    let at_half = Barrier::new(threads as usize + 1);
    let measured = Barrier::new(threads as usize + 1);
    let rss_half = std::thread::scope(|scope| {
        for thread in 0..threads {
            let (runs_tree, journal, requests, pending, db) =
                (&runs_tree, &journal, &requests, &pending, &db);
            let (at_half, measured) = (&at_half, &measured);
            scope.spawn(move || {
                for batch in 0..batches {
                    let batch_first = batch * FANOUT_BATCH;
                    let first = batch_first + thread * FANOUT_BATCH / threads;
                    let last = batch_first + (thread + 1) * FANOUT_BATCH / threads;
                    match layout {
                        Layout::Format2 => {
                            for run in first..last {
                                runs_tree
                                    .insert(key(run, RUN_KEY, b'r'), vec![0; RUN_VALUE])
                                    .unwrap();
                            }
                            for step in 0..CHUNK_STEPS {
                                for run in first..last {
                                    let chunk = vec![0; CHUNK_FIRST + step * CHUNK_STEP];
                                    journal.insert(key(run, CHUNK_KEY, b'j'), chunk).unwrap();
                                }
                                db.flush().unwrap();
                            }
                            for run in first..last {
                                requests
                                    .insert(key(run, REQUEST.0, b'q'), vec![0; REQUEST.1])
                                    .unwrap();
                                pending.insert(key(run, PENDING_KEY, b'p'), vec![]).unwrap();
                                runs_tree
                                    .insert(key(run, RUN_KEY, b'r'), vec![1; RUN_VALUE])
                                    .unwrap();
                            }
                        }
                        Layout::RunDocument => {
                            let document = |run| key(run, RUN_DOCUMENT_KEY, b'r');
                            for run in first..last {
                                runs_tree.insert(document(run), vec![0; RUN_VALUE]).unwrap();
                            }
                            for step in 0..CHUNK_STEPS {
                                for run in first..last {
                                    let value = vec![0; RUN_VALUE + CHUNK_FIRST + step * CHUNK_STEP];
                                    runs_tree.insert(document(run), value).unwrap();
                                }
                                db.flush().unwrap();
                            }
                            let last_chunk = CHUNK_FIRST + (CHUNK_STEPS - 1) * CHUNK_STEP;
                            for run in first..last {
                                // The request's id is younger than its run's: its index key
                                // sorts among the runs started a little later.
                                let request = key(run + FANOUT_BATCH / 2, REQUEST_INDEX.0, b'q');
                                requests.insert(request, vec![0; REQUEST_INDEX.1]).unwrap();
                                let value = vec![1; RUN_VALUE + last_chunk + REQUEST.1];
                                runs_tree.insert(document(run), value).unwrap();
                            }
                        }
                    }
                    db.flush().unwrap();
                    if batch + 1 == half_batch {
                        at_half.wait();
                        measured.wait();
                    }
                }
            });
        }
        at_half.wait();
        let rss_half = settled_rss();
        measured.wait();
        rss_half
    });
    let rss_all = settled_rss();
    let rss = rss_all.saturating_sub(rss_half) as f64 / f64::from(runs - runs / 2);
    db.flush().unwrap();
    let disk = db.size_on_disk().unwrap() as f64 / f64::from(runs);
    (rss, disk)
}
