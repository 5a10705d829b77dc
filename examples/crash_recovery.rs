//! Crash recovery: a billing run whose process dies half-way charges nobody twice.
//!
//! ```text
//! cargo run --example crash_recovery
//! ```
//!
//! The program re-executes itself as a child process (`crash_recovery child <db> <ledger>`)
//! that starts a workflow charging ten customers, one `#[task]` per charge, each appending a
//! line to a ledger file. Inside the fifth charge, before it touches the ledger, the child
//! calls `std::process::abort()`: a power cut for the process, with no destructors and no
//! flush. The parent then reopens the same database directory; opening it recovers the
//! interrupted run, which replays the four journaled charges from the journal and executes
//! the other six. The parent prints how many times each customer was charged and exits
//! non-zero if anyone was charged more than once (or not at all).
//!
//! A charge interrupted *after* its side effect would run again on recovery: a plain task
//! is at-least-once, like any activity. Pass `hitl::idempotency_key()` to the payment API
//! to make even that one safe.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hitl::prelude::*;

const CUSTOMERS: u32 = 10;
const RUN_ID: &str = "billing-2024-06";

/// In the child, the charge during which the process dies; `u32::MAX` means never.
static POWER_CUT_AT: AtomicU32 = AtomicU32::new(u32::MAX);

/// Charges one customer: the side effect is a line in the ledger.
#[task]
async fn charge(customer: u32, ledger: String) -> String {
    if POWER_CUT_AT.load(Ordering::SeqCst) == customer {
        eprintln!("  [child] power cut while charging customer-{customer}, before the charge");
        std::process::abort();
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&ledger)
        .unwrap();
    writeln!(file, "customer-{customer}").unwrap();
    println!("  [step] charged customer-{customer}");
    format!("receipt-{customer}")
}

/// Charges every customer in turn; returns the receipts.
#[workflow]
async fn monthly_billing(ledger: String) -> Vec<String> {
    let mut receipts = Vec::new();
    for customer in 0..CUSTOMERS {
        receipts.push(charge(customer, ledger.clone()).await);
    }
    receipts
}

async fn open(db: &Path) -> hitl::Result<Engine> {
    Engine::builder().path(db).register(monthly_billing).open().await
}

/// The child: starts the run and dies inside the fifth charge.
async fn child(db: PathBuf, ledger: String) -> Result<(), Box<dyn std::error::Error>> {
    POWER_CUT_AT.store(4, Ordering::SeqCst);
    let engine = open(&db).await?;
    let run = engine.start_with_id(monthly_billing, RUN_ID, (ledger,)).await?;
    run.wait().await?;
    Err("the child was meant to die before the run completed".into())
}

/// The parent: runs the child, recovers the run, and counts the charges.
async fn parent() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("billing.db");
    let ledger = dir.path().join("ledger.txt");

    println!("child process: starting the billing run");
    let status = Command::new(std::env::current_exe()?)
        .arg("child")
        .arg(&db)
        .arg(&ledger)
        .status()?;
    if status.success() {
        return Err("the child process was meant to crash, but it exited normally".into());
    }
    println!("child process died ({status}); the ledger holds:");
    let before = std::fs::read_to_string(&ledger).unwrap_or_default();
    for line in before.lines() {
        println!("  {line}");
    }

    println!("parent process: reopening the database, which recovers the run");
    let engine = open(&db).await?;
    let run = engine.run(monthly_billing, RUN_ID).await?;
    let outcome = tokio::time::timeout(Duration::from_secs(30), run.wait())
        .await
        .map_err(|_| "the recovered run did not finish within 30 s")??;
    let Outcome::Completed(receipts) = outcome else {
        return Err(format!("the recovered run did not complete: {outcome:?}").into());
    };
    println!("run {RUN_ID} completed with {} receipts", receipts.len());
    engine.close().await?;

    let mut charges: BTreeMap<String, u32> = (0..CUSTOMERS).map(|c| (format!("customer-{c}"), 0)).collect();
    for line in std::fs::read_to_string(&ledger)?.lines() {
        *charges.entry(line.to_owned()).or_default() += 1;
    }
    println!("charges per customer:");
    for (customer, count) in &charges {
        let verdict = if *count == 1 { "" } else { "  <-- wrong" };
        println!("  {customer:<12} {count}{verdict}");
    }
    if charges.values().all(|count| *count == 1) {
        println!("every customer was charged exactly once");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("some customer was not charged exactly once");
        Ok(ExitCode::FAILURE)
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.as_slice() {
        [_, mode, db, ledger] if mode == "child" => {
            child(PathBuf::from(db), ledger.clone()).await?;
            Ok(ExitCode::SUCCESS)
        }
        [_] => parent().await,
        _ => Err("usage: crash_recovery (the `child <db> <ledger>` form is internal)".into()),
    }
}
