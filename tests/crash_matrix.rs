//! The crash matrix: a process that dies mid-run repeats no side effect it had journaled.
//!
//! Each story re-executes this test binary as a child process (`--exact child_process`)
//! that runs a 50-step workflow on a real database directory. Every step is a plain
//! `#[task]` that appends `step <i>` to a side-effect log. The child dies at a chosen point —
//! `std::process::abort()` inside a step, a `HITL_FAILPOINT`, or `Child::kill()` (SIGKILL)
//! from the parent — and the parent reopens the directory in-process, which recovers the run
//! and drives it to completion. The log then tells which steps ran twice.
//!
//! The promise under test (`Durability` in `hitl/src/engine.rs`): with `Durability::Flush`
//! a crash repeats at most the one activity that was executing; with `Durability::Buffered`
//! it may repeat the steps completed within the last flush window.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hitl::clock::ManualClock;
use hitl::prelude::*;
use hitl_workspace::PATIENCE;
use serde::{Deserialize, Serialize};

/// Steps in every run.
const STEPS: u32 = 50;
/// The run id the child starts and the parent recovers.
const RUN_ID: &str = "crash-matrix";
/// What every completed run returns: the sum of the steps' outputs (`i * i`).
const TOTAL: u64 = 40_425;

/// Set (to a JSON [`ChildPlan`]) only in the child process.
const CHILD_ENV: &str = "CRASH_MATRIX_CHILD";
/// `before:<i>` or `after:<i>`: step `i` aborts the process before or after its side effect.
const ABORT_ENV: &str = "CRASH_MATRIX_ABORT";
/// What the child prints once its run waits on the durable timer.
const WAITING_MARKER: &str = "CRASH-MATRIX: waiting on the timer";

// --- the workflows --------------------------------------------------------------------------

/// One unit of work with a side effect: appends `step <i>` to the log. `work_ms` is how
/// long it works, half before and half after the side effect.
#[task]
async fn step(i: u32, log: String, work_ms: u64) -> u64 {
    let half = Duration::from_micros(work_ms * 500);
    if work_ms > 0 {
        tokio::time::sleep(half).await;
    }
    abort_if_planned("before", i);
    let mut file = OpenOptions::new().create(true).append(true).open(&log).unwrap();
    file.write_all(format!("step {i}\n").as_bytes()).unwrap(); // one write: no torn lines
    abort_if_planned("after", i);
    if work_ms > 0 {
        tokio::time::sleep(half).await;
    }
    u64::from(i) * u64::from(i)
}

/// Aborts the process in step `i` when the child's environment plans it at `moment`.
fn abort_if_planned(moment: &str, i: u32) {
    if std::env::var(ABORT_ENV).is_ok_and(|plan| plan == format!("{moment}:{i}")) {
        eprintln!("child: aborting in step {i}, {moment} its side effect");
        std::process::abort();
    }
}

/// Fifty steps in a row, each working `work_ms`.
#[workflow]
async fn fifty_steps(log: String, work_ms: u64) -> u64 {
    let mut total = 0;
    for i in 0..STEPS {
        total += step(i, log.clone(), work_ms).await;
    }
    total
}

/// Fifty steps with a short durable timer after step `timer_after`.
#[workflow(inject_context)]
async fn fifty_steps_with_a_timer(ctx: &TaskContext, log: String, timer_after: u32) -> u64 {
    let mut total = 0;
    for i in 0..STEPS {
        total += step(i, log.clone(), 0).await;
        if i == timer_after {
            ctx.sleep(Duration::from_millis(50)).await;
        }
    }
    total
}

// --- the child process ------------------------------------------------------------------------

/// What the child process does, passed as JSON in [`CHILD_ENV`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChildPlan {
    db: PathBuf,
    log: PathBuf,
    buffered: bool,
    /// Run [`fifty_steps_with_a_timer`] with this `timer_after`, on a clock that stands still
    /// (the timer never fires in the child), instead of [`fifty_steps`].
    timer_after: Option<u32>,
    work_ms: u64,
}

impl ChildPlan {
    fn new(dir: &Path) -> Self {
        ChildPlan {
            db: dir.join("db"),
            log: dir.join("side-effects.log"),
            buffered: false,
            timer_after: None,
            work_ms: 0,
        }
    }

    fn log(&self) -> String {
        self.log.to_str().unwrap().to_owned()
    }

    fn builder(&self) -> hitl::EngineBuilder {
        let builder = Engine::builder()
            .path(&self.db)
            .register(fifty_steps)
            .register(fifty_steps_with_a_timer);
        if self.buffered {
            builder
                .durability(Durability::Buffered)
                .flush_every(Some(BUFFERED_FLUSH_EVERY))
        } else {
            builder.durability(Durability::Flush)
        }
    }
}

/// The child side of every story; does nothing unless [`CHILD_ENV`] is set.
#[test]
fn child_process() {
    let Ok(plan) = std::env::var(CHILD_ENV) else {
        return;
    };
    let plan: ChildPlan = serde_json::from_str(&plan).unwrap();
    runtime().block_on(async move {
        match plan.timer_after {
            None => {
                let engine = plan.builder().open().await.unwrap();
                let run = engine
                    .start_with_id(fifty_steps, RUN_ID, (plan.log(), plan.work_ms))
                    .await
                    .unwrap();
                let outcome = tokio::time::timeout(PATIENCE, run.wait()).await;
                panic!("the child was meant to die, but its run ended: {outcome:?}");
            }
            Some(timer_after) => {
                let engine = plan
                    .builder()
                    .clock(ManualClock::starting_now())
                    .open()
                    .await
                    .unwrap();
                engine
                    .start_with_id(fifty_steps_with_a_timer, RUN_ID, (plan.log(), timer_after))
                    .await
                    .unwrap();
                // The timer step begins only once the step before it returned, which in
                // `Durability::Flush` means once that step's output was flushed.
                let deadline = Instant::now() + PATIENCE;
                while !engine
                    .history(RUN_ID)
                    .await
                    .unwrap()
                    .iter()
                    .any(|entry| entry.kind == hitl::StepKind::Sleep)
                {
                    assert!(Instant::now() < deadline, "the run never reached its timer");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                println!("{WAITING_MARKER}");
                std::io::stdout().flush().unwrap();
                tokio::time::sleep(PATIENCE).await; // the clock stands still: killed in here
                panic!("the child was meant to be killed while waiting on the timer");
            }
        }
    });
}

// --- the parent's tools -----------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One crash: a temporary directory with the database, the log and the child's output.
struct Crash {
    dir: tempfile::TempDir,
    plan: ChildPlan,
}

impl Crash {
    fn new(configure: impl FnOnce(&mut ChildPlan)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = ChildPlan::new(dir.path());
        configure(&mut plan);
        Crash { dir, plan }
    }

    /// Starts the child with extra environment variables (its crash plan).
    fn spawn(&self, env: &[(&str, String)]) -> Child {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "child_process", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, serde_json::to_string(&self.plan).unwrap())
            .env_remove(ABORT_ENV)
            .env_remove("HITL_FAILPOINT")
            .stdin(Stdio::null())
            .stdout(File::create(self.output("stdout")).unwrap())
            .stderr(File::create(self.output("stderr")).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        command.spawn().unwrap()
    }

    fn output(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("child.{name}"))
    }

    fn child_output(&self) -> String {
        let read = |name| std::fs::read_to_string(self.output(name)).unwrap_or_default();
        format!(
            "--- child stdout ---\n{}--- child stderr ---\n{}",
            read("stdout"),
            read("stderr")
        )
    }

    /// The steps in the side-effect log, in order; a line still being written is left out.
    fn logged(&self) -> Vec<u32> {
        let text = std::fs::read_to_string(&self.plan.log).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        complete
            .lines()
            .map(|line| line.strip_prefix("step ").and_then(|i| i.parse().ok()))
            .map(|i| i.unwrap_or_else(|| panic!("unexpected line in the side-effect log: {text:?}")))
            .collect()
    }

    /// Polls `done` every millisecond; panics with `what` and the child's output after
    /// [`PATIENCE`].
    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}\n{}",
                self.child_output()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the child to die by itself; it must not exit successfully.
    fn expect_death(&self, child: &mut Child) -> ExitStatus {
        let mut status = None;
        self.wait_until("the child process died", || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        let status = status.unwrap();
        assert!(
            !status.success(),
            "the child did not crash ({status})\n{}",
            self.child_output()
        );
        status
    }

    /// Kills the child with SIGKILL and reaps it.
    fn kill(&self, child: &mut Child) {
        child.kill().unwrap(); // SIGKILL; also fine if it already exited
        child.wait().unwrap();
    }

    /// Reopens the database in this process, which recovers the run; waits for it to
    /// complete and checks its result.
    fn recover(&self) {
        let plan = self.plan.clone();
        runtime().block_on(async move {
            let engine = plan.builder().open().await.unwrap();
            let run_id = match plan.timer_after {
                None => engine.run(fifty_steps, RUN_ID).await.unwrap().id().to_owned(),
                Some(_) => engine
                    .run(fifty_steps_with_a_timer, RUN_ID)
                    .await
                    .unwrap()
                    .id()
                    .to_owned(),
            };
            let outcome = tokio::time::timeout(PATIENCE, engine.wait(&run_id))
                .await
                .unwrap_or_else(|_| panic!("the recovered run did not finish within {PATIENCE:?}"))
                .unwrap();
            assert_eq!(
                outcome,
                Outcome::Completed(serde_json::json!(TOTAL)),
                "the recovered run's result"
            );
            engine.close().await.unwrap();
        });
    }

    /// Checks that every step ran, and that a step ran twice only if it is in `may_repeat`;
    /// returns the steps that ran twice. `before_crash` is the log as the child left it.
    fn repeated_steps(&self, before_crash: &[u32], may_repeat: &[u32], why: &str) -> Vec<u32> {
        let log = self.logged();
        let mut counts = BTreeMap::<u32, usize>::new();
        for &i in &log {
            *counts.entry(i).or_default() += 1;
        }
        let missing: Vec<u32> = (0..STEPS).filter(|i| !counts.contains_key(i)).collect();
        assert!(
            missing.is_empty(),
            "steps {missing:?} never ran; the log: {log:?}"
        );
        assert_eq!(
            counts.len(),
            STEPS as usize,
            "steps outside 0..{STEPS} in the log: {log:?}"
        );
        let repeated: Vec<u32> = counts.iter().filter(|(_, n)| **n > 1).map(|(i, _)| *i).collect();
        for &i in &repeated {
            assert!(
                may_repeat.contains(&i) && counts[&i] == 2,
                "step {i} ran {} times, but only {may_repeat:?} may run twice ({why}); \
                 the child logged {before_crash:?}, the whole log is {log:?}",
                counts[&i],
            );
        }
        // The run after recovery picks up where the journal ends: no step ran out of order.
        let after: Vec<u32> = log[before_crash.len()..].to_vec();
        let resumed_at = after.first().copied().unwrap_or(STEPS);
        assert_eq!(
            after,
            (resumed_at..STEPS).collect::<Vec<_>>(),
            "the recovered run's steps"
        );
        repeated
    }
}

/// Steps that complete within one flush window; see the Buffered story.
const BUFFERED_FLUSH_EVERY: Duration = Duration::from_millis(50);

// --- the stories ------------------------------------------------------------------------------

#[test]
fn a_crash_inside_a_step_before_its_side_effect_repeats_nothing() {
    let crash = Crash::new(|_| {});
    let mut child = crash.spawn(&[(ABORT_ENV, "before:17".into())]);
    crash.expect_death(&mut child);
    let output = crash.child_output();
    assert!(
        output.contains("aborting in step 17, before its side effect"),
        "{output}"
    );
    let before = crash.logged();
    assert_eq!(before, (0..17).collect::<Vec<_>>(), "the child's log\n{output}");

    crash.recover();
    let repeated = crash.repeated_steps(&before, &[], "steps 0-16 were flushed before step 17 began");
    assert_eq!(
        repeated,
        Vec::<u32>::new(),
        "no step may repeat: step 17 died before its side effect"
    );
}

#[test]
fn a_crash_inside_a_step_after_its_side_effect_repeats_exactly_that_step() {
    let crash = Crash::new(|_| {});
    let mut child = crash.spawn(&[(ABORT_ENV, "after:23".into())]);
    crash.expect_death(&mut child);
    let output = crash.child_output();
    assert!(
        output.contains("aborting in step 23, after its side effect"),
        "{output}"
    );
    let before = crash.logged();
    assert_eq!(before, (0..=23).collect::<Vec<_>>(), "the child's log\n{output}");

    crash.recover();
    let repeated = crash.repeated_steps(&before, &[23], "step 23 was in flight");
    assert_eq!(
        repeated,
        vec![23],
        "step 23 did its side effect but never returned, so it (at-least-once) and only it runs again"
    );
}

#[test]
fn a_crash_after_the_journal_insert_but_before_the_flush_repeats_at_most_that_step() {
    // Step i makes the (i + 1)-th journal write: the failpoint fires on step 31's output.
    let crash = Crash::new(|_| {});
    let mut child = crash.spawn(&[("HITL_FAILPOINT", "after_journal_write:32".into())]);
    crash.expect_death(&mut child);
    let output = crash.child_output();
    assert!(output.contains("failpoint `after_journal_write` hit"), "{output}");
    let before = crash.logged();
    assert_eq!(before, (0..=31).collect::<Vec<_>>(), "the child's log\n{output}");

    crash.recover();
    let repeated = crash.repeated_steps(&before, &[31], "step 31's output was not yet flushed");
    eprintln!("failpoint after step 31's journal insert: steps repeated {repeated:?}");
    assert!(
        repeated.is_empty() || repeated == [31],
        "only step 31, whose output was inserted but not flushed, may repeat; repeated {repeated:?}"
    );
}

#[test]
fn a_run_killed_while_waiting_on_a_timer_repeats_nothing() {
    // The child's clock stands still, so after step 19 its run waits on the timer for good;
    // the parent's system clock finds the timer due at once.
    let crash = Crash::new(|plan| plan.timer_after = Some(19));
    let mut child = crash.spawn(&[]);
    crash.wait_until("the child's run waits on its timer", || {
        std::fs::read_to_string(crash.output("stdout")).is_ok_and(|out| out.contains(WAITING_MARKER))
    });
    crash.kill(&mut child);
    let before = crash.logged();
    assert_eq!(
        before,
        (0..20).collect::<Vec<_>>(),
        "the child's log\n{}",
        crash.child_output()
    );

    crash.recover();
    let repeated = crash.repeated_steps(&before, &[], "no step was executing when the child was killed");
    assert_eq!(
        repeated,
        Vec::<u32>::new(),
        "no step may repeat: steps 0-19 were flushed before the run began waiting on its timer"
    );
}

#[test]
fn sigkill_at_seeded_random_moments_repeats_at_most_the_step_in_flight() {
    for seed in [1_u64, 2, 3, 4, 5] {
        // SplitMix64, a tiny generator: a kill point and a delay per seed.
        let mut state = seed;
        let mut next = |bound: u64| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % bound
        };
        let lines = 1 + next(45) as usize;
        let delay = Duration::from_micros(next(4_000));

        let crash = Crash::new(|plan| plan.work_ms = 2);
        let mut child = crash.spawn(&[]);
        crash.wait_until(&format!("the log holds {lines} lines"), || {
            crash.logged().len() >= lines
        });
        std::thread::sleep(delay);
        crash.kill(&mut child);
        let before = crash.logged();
        let in_flight = *before.last().unwrap();

        crash.recover();
        let repeated = crash.repeated_steps(&before, &[in_flight], "the last step the child logged");
        eprintln!(
            "seed {seed}: killed {delay:?} after {lines} lines, the child logged steps 0-{in_flight}, \
             repeated {repeated:?}"
        );
        assert!(
            repeated.is_empty() || repeated == [in_flight],
            "seed {seed}: only step {in_flight}, the one in flight, may repeat; repeated {repeated:?}"
        );
    }
}

#[test]
fn buffered_durability_repeats_at_most_the_last_flush_window() {
    // `Durability::Buffered` makes steps durable only when sled flushes, every 50 ms here, so
    // a crash can lose the journal of the steps completed since the last flush, and they run
    // again. Each step takes at least 5 ms, so one window holds at most 50 / 5 = 10
    // completed steps, plus the one in flight: 11.
    //
    // Slack: sled's flusher starts its next flush 50 ms after the *start* of the previous one,
    // or 1 ms after its end when a flush (write + fsync) takes longer; the flusher thread
    // and the child's steps also compete for the CPU with the other tests. Allowing the
    // window to stretch to 100 ms gives 100 / 5 + 1 = 21 steps.
    const DOCUMENTED_BOUND: usize = 11;
    const BOUND_WITH_SLACK: usize = 21;
    let crash = Crash::new(|plan| {
        plan.buffered = true;
        plan.work_ms = 5;
    });
    let mut child = crash.spawn(&[]);
    crash.wait_until("the log holds 30 lines", || crash.logged().len() >= 30);
    crash.kill(&mut child);
    let before = crash.logged();
    let last = *before.last().unwrap();

    crash.recover();
    let window: Vec<u32> = before.iter().rev().take(BOUND_WITH_SLACK).copied().collect();
    let repeated = crash.repeated_steps(&before, &window, "the steps of the last flush window");
    eprintln!(
        "buffered: the child logged steps 0-{last}, {} repeated {repeated:?} (documented bound \
         {DOCUMENTED_BOUND})",
        repeated.len()
    );
    assert!(
        repeated.len() <= BOUND_WITH_SLACK,
        "{} steps repeated ({repeated:?}); at most the last flush window's may",
        repeated.len()
    );
}
