//! What it costs that a failed open leaves the database untouched.
//!
//! ```sh
//! cargo run --release --example bench_open            # a ~100 MB database
//! cargo run --release --example bench_open -- --mb 20 # a smaller one
//! ```
//!
//! Builds a hitl database of about the given size on disk, then times opens of it, each in a
//! fresh child process, alternating so that all see the same page cache:
//!
//! * sled's own open of the directory (the storage floor);
//! * hitl's open without its open guard (`HITL_UNGUARDED_OPEN=1`, honoured only in builds
//!   with the test-only `failpoints` feature): the plain open, as it was before the guard;
//! * hitl's open after a clean close: sled's files are checksummed against the record the
//!   close left;
//! * hitl's open after a crash (no such record): sled's files are copied aside first, so that
//!   a failed open can put them back.
//!
//! Prints each median and its ratio to the plain open, and a JSON line last.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hitl::prelude::*;

#[workflow]
async fn filler(n: u32, payload: String) -> String {
    format!("{n}: {}", payload.len())
}

fn dir_bytes(path: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Runs one open in a child process and returns the milliseconds it reports.
fn child_open(mode: &str, path: &Path, unguarded: bool) -> f64 {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--child", mode]).arg(path);
    if unguarded {
        command.env("HITL_UNGUARDED_OPEN", "1");
    }
    let output = command.output().expect("the child runs");
    assert!(
        output.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .expect("the child prints milliseconds")
}

/// The child: opens `path` one way, prints the time the open took, closes.
async fn child(mode: &str, path: &Path) {
    let started = Instant::now();
    let elapsed: Duration = match mode {
        "sled" => {
            let db = sled::Config::new()
                .path(path)
                .open()
                .expect("sled opens the directory");
            for tree in [
                "runs",
                "journal",
                "channels",
                "definitions",
                "requests",
                "pending",
                "outbox",
                "timers",
                "meta",
            ] {
                db.open_tree(tree).expect("a tree opens");
            }
            started.elapsed()
        }
        _ => {
            let engine = Engine::builder()
                .path(path)
                .open()
                .await
                .expect("hitl opens the directory");
            let elapsed = started.elapsed();
            engine.close().await.expect("closes");
            elapsed
        }
    };
    println!("{}", elapsed.as_secs_f64() * 1e3);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let megabytes: u64 = match args.as_slice() {
        [flag, mode, path] if flag == "--child" => return child(mode, Path::new(path)).await,
        [] => 100,
        [flag, mb] if flag == "--mb" => mb.parse().expect("--mb takes a number"),
        _ => {
            eprintln!("usage: bench_open [--mb N]");
            std::process::exit(2);
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hitl.db");
    let engine = Engine::builder()
        .path(&path)
        .register(filler)
        .open()
        .await
        .unwrap();
    let payload = "x".repeat(4_000);
    let mut runs = 0u32;
    while dir_bytes(&path) < megabytes * 1_000_000 {
        for _ in 0..500 {
            engine
                .start(filler, (runs, payload.clone()))
                .await
                .unwrap()
                .wait()
                .await
                .unwrap();
            runs += 1;
        }
        engine.flush().await.unwrap();
    }
    engine.close().await.unwrap();
    let size = dir_bytes(&path);
    println!("database: {runs} runs, {:.1} MB on disk", size as f64 / 1e6);

    let (mut floor, mut plain, mut clean, mut crashed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..7 {
        floor.push(child_open("sled", &path, false));
        // Each hitl open below ends with a clean close, which leaves its record.
        plain.push(child_open("hitl", &path, true));
        clean.push(child_open("hitl", &path, false));
        std::fs::remove_file(path.join("hitl.clean")).expect("a clean close left its record");
        crashed.push(child_open("hitl", &path, false));
    }
    let (floor, plain, clean, crashed) = (median(floor), median(plain), median(clean), median(crashed));
    println!();
    println!(
        "| open of a {:.0} MB database | median ms | ratio to the plain open | target |",
        size as f64 / 1e6
    );
    println!("|---|---:|---:|---|");
    println!(
        "| sled alone (storage floor) | {floor:.1} | {:.2} | |",
        floor / plain
    );
    println!("| hitl, plain (no open guard) | {plain:.1} | 1.00 | |");
    println!(
        "| hitl after a clean close (files checksummed) | {clean:.1} | {:.2} | ≤ 2 |",
        clean / plain
    );
    println!(
        "| hitl after a crash (files copied aside) | {crashed:.1} | {:.2} | ≤ 2 |",
        crashed / plain
    );
    println!(
        "{{\"mb\":{:.1},\"sled_open_ms\":{floor:.1},\"plain_open_ms\":{plain:.1},\"clean_open_ms\":{clean:.1},\"clean_ratio\":{:.2},\"crash_open_ms\":{crashed:.1},\"crash_ratio\":{:.2}}}",
        size as f64 / 1e6,
        clean / plain,
        crashed / plain
    );
}
