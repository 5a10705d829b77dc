//! The deploy-then-ask story: Graflow's "bad example" — deploy first, then ask a human — is
//! safe here. A release deploys once and then asks five times whether to keep the
//! deployment; the process running it is killed (SIGKILL) while the run is paused on every
//! question, and once more while the run is executing the step after an answer. Every answer
//! is given while no process runs the workflow, by an operator opening the database
//! directory itself. The deployment, a line appended to a file, happens exactly once, and the
//! run completes.
//!
//! Each process that runs the workflow is this test binary re-executed as a child
//! (`--exact child_process`), told what to do by [`CHILD_ENV`]; the test itself is the
//! parent, which kills it with `Child::kill()` (SIGKILL on Unix).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hitl::prelude::*;
use hitl::{PendingFilter, RequestStatus, StepKind};
use hitl_workspace::PATIENCE;
use serde::{Deserialize, Serialize};

/// The run every process works on.
const RUN_ID: &str = "release-api";
/// How many times the release asks to keep its deployment.
const ASKS: u32 = 5;

/// Set (to a JSON [`ChildPlan`]) only in the child process.
const CHILD_ENV: &str = "DEPLOY_THEN_ASK_CHILD";
/// What the child prints, followed by the request id, once its run paused on a question.
const PAUSED_MARKER: &str = "DEPLOY-THEN-ASK: paused on ";
/// What the child prints, followed by the check number, when it hangs inside `confirm`.
const HANGING_MARKER: &str = "DEPLOY-THEN-ASK: hanging in check ";

// --- the workflow -------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    service: String,
    replicas: u32,
}

#[derive(Debug, thiserror::Error)]
enum ReleaseError {
    #[error(transparent)]
    Hitl(#[from] hitl::Error),
}

fn append(log: &str, line: &str) {
    let mut file = OpenOptions::new().create(true).append(true).open(log).unwrap();
    file.write_all(format!("{line}\n").as_bytes()).unwrap(); // one write: no torn lines
}

#[task]
async fn build_plan(service: String) -> Plan {
    Plan { service, replicas: 3 }
}

/// The side effect that must never run twice.
#[task]
async fn deploy(plan: Plan, log: String) -> String {
    append(&log, &format!("deploy {} x{}", plan.service, plan.replicas));
    format!("deployment-of-{}", plan.service)
}

/// The step after each answer: records the check. In a child told to hang in check `n`, the
/// `n`-th check hangs before its side effect, so that the parent kills the process there.
#[task]
async fn confirm(check: u32, log: String) -> u32 {
    if child_plan().is_some_and(|plan| plan.hang_in_check == Some(check)) {
        println!("{HANGING_MARKER}{check}");
        std::io::stdout().flush().unwrap();
        tokio::time::sleep(PATIENCE).await;
        panic!("the child was meant to be killed inside check {check}");
    }
    append(&log, &format!("check {check}"));
    check
}

/// Deploys, then asks `ASKS` times whether to keep the deployment.
#[workflow(inject_context)]
async fn release(ctx: &TaskContext, service: String, log: String) -> Result<String, ReleaseError> {
    let plan = build_plan(service).await;
    let deployment = deploy(plan, log.clone()).await;
    for check in 1..=ASKS {
        let answer = ctx
            .request_feedback(
                Feedback::approval(format!("Keep {deployment}? (check {check} of {ASKS})"))
                    .details(format!("Check {check}: error rates, latency, saturation.")),
            )
            .await?;
        if !answer.approved() {
            ctx.cancel_workflow(format!("rejected by {}", answer.responder()))
                .await?;
        }
        confirm(check, log.clone()).await;
    }
    Ok(deployment)
}

// --- the child process --------------------------------------------------------------------------

/// What a child process does, passed as JSON in [`CHILD_ENV`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChildPlan {
    db: PathBuf,
    log: PathBuf,
    /// Hang inside this check instead of running it.
    hang_in_check: Option<u32>,
}

fn child_plan() -> Option<ChildPlan> {
    let plan = std::env::var(CHILD_ENV).ok()?;
    Some(serde_json::from_str(&plan).unwrap())
}

/// The runtime every process of the main story runs its engine on: a multi-threaded one, as
/// `#[tokio::main]` gives an application.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The runtime `#[tokio::main]` gives an application, for the stories of the two bugs.
fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The child side of the story; does nothing unless [`CHILD_ENV`] is set.
///
/// Opens the database (which recovers an interrupted run and applies an answer stored while
/// no process ran), starts the release if it does not exist yet, and waits until the run
/// pauses on a new question — or until it is killed inside a hanging check.
#[test]
fn child_process() {
    let Some(plan) = child_plan() else {
        return;
    };
    runtime().block_on(async move {
        let engine = Engine::builder()
            .path(&plan.db)
            .register(release)
            .open()
            .await
            .unwrap();
        let log = plan.log.to_str().unwrap().to_owned();
        // Idempotent: an existing run with this id and input is returned, not started again.
        engine
            .start_with_id(release, RUN_ID, ("api".to_owned(), log))
            .await
            .unwrap();
        let filter = PendingFilter {
            run_id: Some(RUN_ID.to_owned()),
            ..PendingFilter::default()
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            // A pending request exists only once the run resumed and asked again, so a `Paused`
            // status read after it is the pause on that request.
            let pending = engine.pending(&filter).await.unwrap();
            let status = engine.run_info(RUN_ID).await.unwrap().status;
            if let (Some(request), RunStatus::Paused) = (pending.first(), status) {
                // The pause is on disk before the parent hears of it and kills this process:
                // seen in memory, it may still be unflushed (then the next open finds the run
                // `Running`, rightly, and the operator's check of `Paused` fails).
                engine.flush().await.unwrap();
                println!("{PAUSED_MARKER}{}", request.id);
                std::io::stdout().flush().unwrap();
                break;
            }
            assert!(!status.is_terminal(), "the run ended in the child: {status}");
            assert!(
                Instant::now() < deadline,
                "the run never paused on a new question"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(PATIENCE).await;
        panic!("the child was meant to be killed while its run was paused");
    });
}

// --- the parent ---------------------------------------------------------------------------------

/// A database directory, a deployment log and the children that worked on them.
struct Story {
    dir: tempfile::TempDir,
    children: usize,
}

impl Story {
    fn new() -> Self {
        Story {
            dir: tempfile::tempdir().unwrap(),
            children: 0,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("deployments.log")
    }

    fn output(&self, child: usize) -> PathBuf {
        self.dir.path().join(format!("child-{child}.out"))
    }

    fn child_output(&self, child: usize) -> String {
        let read = |name: &str| {
            let path = self.output(child).with_extension(name);
            std::fs::read_to_string(path).unwrap_or_default()
        };
        format!(
            "--- child {child} stdout ---\n{}--- child {child} stderr ---\n{}",
            read("stdout"),
            read("stderr")
        )
    }

    /// Starts a child process on the database.
    fn spawn(&mut self, hang_in_check: Option<u32>) -> (Child, usize) {
        self.children += 1;
        let number = self.children;
        let plan = ChildPlan {
            db: self.db(),
            log: self.log(),
            hang_in_check,
        };
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_process", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, serde_json::to_string(&plan).unwrap())
            .stdin(Stdio::null())
            .stdout(File::create(self.output(number).with_extension("stdout")).unwrap())
            .stderr(File::create(self.output(number).with_extension("stderr")).unwrap())
            .spawn()
            .unwrap();
        (child, number)
    }

    /// Waits until the child prints `marker`; returns the rest of its line.
    fn wait_for_marker(&self, child: &mut Child, number: usize, marker: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stdout = std::fs::read_to_string(self.output(number).with_extension("stdout")).unwrap();
            // Whole lines only; the test harness prints `test child_process ... ` before it.
            let complete = &stdout[..stdout.rfind('\n').map_or(0, |end| end + 1)];
            if let Some(rest) = complete
                .lines()
                .find_map(|line| line.split_once(marker).map(|(_, rest)| rest))
            {
                return rest.trim().to_owned();
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "child {number} exited ({status}) before printing {marker:?}\n{}",
                    self.child_output(number)
                );
            }
            assert!(
                Instant::now() < deadline,
                "child {number} did not print {marker:?} within {PATIENCE:?}\n{}",
                self.child_output(number)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, then reap.
    fn kill(child: &mut Child) {
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The deployment log's lines.
    fn logged(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    }

    /// An operator answers `request_id` while no process runs the workflow: it opens the
    /// directory without registering any workflow, answers, and closes it again.
    fn answer_offline(&self, request_id: &str, check: u32) {
        runtime().block_on(async {
            let operator = Engine::builder().path(self.db()).open().await.unwrap();
            let request = operator.request(request_id).await.unwrap();
            assert_eq!(request.status, RequestStatus::Pending, "{request:#?}");
            assert_eq!(
                request.prompt,
                format!("Keep deployment-of-api? (check {check} of {ASKS})"),
                "the child paused on check {check}"
            );
            let answered = operator
                .respond(
                    request_id,
                    Response::approve().comment(format!("check {check} ok")),
                    Responder::new("alice"),
                )
                .await
                .unwrap();
            assert_eq!(answered.status, RequestStatus::Answered);
            assert_eq!(
                operator.run_info(RUN_ID).await.unwrap().status,
                RunStatus::Paused,
                "nothing runs the workflow in the operator's process"
            );
            operator.close().await.unwrap();
        });
    }
}

fn expected_log(checks: u32) -> Vec<String> {
    let mut lines = vec!["deploy api x3".to_owned()];
    lines.extend((1..=checks).map(|check| format!("check {check}")));
    lines
}

#[test]
fn a_deploy_before_five_questions_runs_once_through_kills_and_offline_answers() {
    let started = Instant::now();
    let mut story = Story::new();
    let mut requests = Vec::new();

    // Check `KILLED_IN`'s step runs in a child that is killed inside it, before its side
    // effect: the run is `Running`, not paused, and is recovered by the next open.
    const KILLED_IN: u32 = 2;
    for check in 1..=ASKS {
        if check == KILLED_IN + 1 {
            let (mut child, number) = story.spawn(Some(KILLED_IN));
            let hanging = story.wait_for_marker(&mut child, number, HANGING_MARKER);
            assert_eq!(hanging, KILLED_IN.to_string());
            Story::kill(&mut child);
            assert_eq!(
                story.logged(),
                expected_log(KILLED_IN - 1),
                "killed before check {KILLED_IN} ran"
            );
        }

        // A child opens the database, resumes the run with the answer stored while no process
        // ran, runs the step after it, and pauses on the next question; it is killed there.
        let (mut child, number) = story.spawn(None);
        let request_id = story.wait_for_marker(&mut child, number, PAUSED_MARKER);
        Story::kill(&mut child);
        assert_eq!(
            story.logged(),
            expected_log(check - 1),
            "after child {number}, paused on check {check}\n{}",
            story.child_output(number)
        );
        assert!(
            !requests.contains(&request_id),
            "check {check} reused request {request_id}"
        );
        requests.push(request_id.clone());

        story.answer_offline(&request_id, check);
    }

    // The last answer is applied when the application opens the database again.
    runtime().block_on(async {
        let engine = Engine::builder()
            .path(story.db())
            .register(release)
            .open()
            .await
            .unwrap();
        let outcome = tokio::time::timeout(PATIENCE, engine.wait(RUN_ID))
            .await
            .expect("the run did not finish after the last answer")
            .unwrap();
        assert_eq!(
            outcome,
            Outcome::Completed(serde_json::json!("deployment-of-api"))
        );

        let history = engine.history(RUN_ID).await.unwrap();
        let asked: Vec<&str> = history
            .iter()
            .filter(|entry| entry.kind == StepKind::Feedback)
            .map(|entry| entry.output["request"].as_str().unwrap())
            .collect();
        assert_eq!(asked, requests, "one request per question, in order");
        for request_id in &requests {
            let request = engine.request(request_id).await.unwrap();
            assert_eq!(request.status, RequestStatus::Answered);
            assert_eq!(request.answer.unwrap().responder, "alice");
        }
        let deploys = history.iter().filter(|entry| entry.name == "deploy").count();
        assert_eq!(deploys, 1, "one journaled deploy step");
        engine.close().await.unwrap();
    });

    assert_eq!(
        story.logged(),
        expected_log(ASKS),
        "the deployment ran exactly once and every check once, in order"
    );
    eprintln!(
        "{} child processes, {ASKS} offline answers: done in {:?}",
        story.children,
        started.elapsed()
    );
}

// --- two races of a multi-threaded runtime, once library bugs, now fixed ------------------------

/// Starts the release in this process and closes the engine once it paused on check 1;
/// returns that request's id.
fn paused_on_the_first_check(story: &Story) -> String {
    let log = story.log().to_str().unwrap().to_owned();
    runtime().block_on(async {
        let engine = Engine::builder()
            .path(story.db())
            .register(release)
            .open()
            .await
            .unwrap();
        let run = engine
            .start_with_id(release, RUN_ID, ("api".to_owned(), log))
            .await
            .unwrap();
        let outcome = tokio::time::timeout(PATIENCE, run.settled())
            .await
            .unwrap()
            .unwrap();
        let Outcome::Paused(requests) = outcome else {
            panic!("expected a pause, got {outcome:?}")
        };
        drop(run);
        engine.close().await.unwrap();
        requests[0].id.clone()
    })
}

/// Opens the application's engine on `runtime` and waits until the run settled (it paused on
/// its next question, or — the bug — stayed paused with its only request answered); returns
/// the pending requests (empty if it never asked again).
fn reopen_until_paused_again(story: &Story, runtime: &tokio::runtime::Runtime) -> Vec<hitl::Request> {
    runtime.block_on(async {
        let engine = Engine::builder()
            .path(story.db())
            .register(release)
            .open()
            .await
            .unwrap();
        // `open` resumed the run if its answer's wake-up was due, so `settled` waits for the
        // pause on the next question rather than reporting the old pause.
        let run = engine.run(release, RUN_ID).await.unwrap();
        let outcome = hitl_workspace::patiently("the reopened run settles", run.settled())
            .await
            .unwrap();
        assert!(
            matches!(outcome, Outcome::Paused(_)),
            "the reopened run did not pause: {outcome:?}"
        );
        let filter = PendingFilter {
            run_id: Some(RUN_ID.to_owned()),
            ..PendingFilter::default()
        };
        let pending = engine.pending(&filter).await.unwrap();
        drop(run);
        engine.close().await.unwrap();
        pending
    })
}

/// `Shared::fire` (hitl/src/engine.rs) removes a `Wake` timer from the store after
/// `resume_if_paused` returned `Ok` without resuming anything — because the engine does not
/// register the run's workflow (an operator tool, the CLI on `--db`) or is closing. The
/// answer's stored wake-up is gone, nothing resumes the run at the next open, and it stays
/// paused with its only request answered.
#[test]
fn an_answer_from_an_operator_on_a_multi_threaded_runtime_is_applied_at_the_next_open() {
    let story = Story::new();
    let first = paused_on_the_first_check(&story);
    multi_thread_runtime().block_on(async {
        let operator = Engine::builder().path(story.db()).open().await.unwrap();
        operator
            .respond(&first, Response::approve(), Responder::new("alice"))
            .await
            .unwrap();
        // Gives the operator's timer task a chance to fire the answer's wake-up (the bug
        // removed it then). There is no event for "a timer task that must not resume anything
        // has looked at its timers"; a slow machine can only make this test miss the bug, never
        // fail spuriously: the assertions below hold whether or not the task ran.
        tokio::time::sleep(Duration::from_millis(200)).await;
        operator.close().await.unwrap();
    });

    let pending = reopen_until_paused_again(&story, &runtime());
    assert_eq!(
        pending.len(),
        1,
        "the answer stored by the operator was not applied at the next open: the run is still \
         paused on check 1, answered"
    );
    assert_eq!(story.logged(), expected_log(1));
}

/// `EngineBuilder::open` (hitl/src/engine.rs) spawns the timer task before it calls
/// `recover()`. A due `Wake` timer — an answer stored while no process ran — resumes the
/// paused run on another worker thread (status `Running`, driver launched); `recover()` then
/// lists the runs, finds this one `Running`, and launches a second driver without checking the
/// live table. Both drivers replay the journal and execute the step after the answer.
#[test]
fn an_answer_applied_at_open_on_a_multi_threaded_runtime_runs_the_next_step_once() {
    let runtime = multi_thread_runtime();
    for attempt in 1..=20 {
        let story = Story::new();
        let first = paused_on_the_first_check(&story);
        story.answer_offline(&first, 1);
        let pending = reopen_until_paused_again(&story, &runtime);
        assert_eq!(
            story.logged(),
            expected_log(1),
            "attempt {attempt}: the step after the answer ran more than once"
        );
        assert_eq!(
            pending.len(),
            1,
            "attempt {attempt}: one question pending: {pending:#?}"
        );
    }
}
