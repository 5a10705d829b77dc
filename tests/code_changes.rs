//! Changing a workflow while runs of it wait: the check before a resume, blocked runs,
//! patches, versions side by side, operator decisions and the pre-deploy check.
//!
//! Each fn below registered as `release` version 1 stands for the code of one deploy: a run
//! starts on `release_v1` and pauses at the human's approval, the engine closes, and the
//! next "deploy" opens the same database with another fn under the same name and version.

use std::collections::BTreeMap;
use std::sync::Mutex;

use hitl::feedback::Feedback;
use hitl::prelude::*;
use hitl::run::{DecisionAction, IncompatibilityKind};
use hitl::{Blocked, OnExpiry, Responder, Response};
use hitl_workspace::{eventually, pending_request};

/// How often each task body ran, by task and service: stories run concurrently, so each
/// uses its own service name.
static RAN: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

fn ran(task: &str, service: &str) {
    *RAN.lock()
        .unwrap()
        .entry(format!("{task} {service}"))
        .or_default() += 1;
}

fn runs_of(task: &str, service: &str) -> usize {
    RAN.lock()
        .unwrap()
        .get(&format!("{task} {service}"))
        .copied()
        .unwrap_or(0)
}

#[task]
async fn build(service: String) -> String {
    ran("build", &service);
    format!("{service}-artifact")
}

#[task]
async fn scan(artifact: String) -> bool {
    ran("scan", artifact.trim_end_matches("-artifact"));
    true
}

#[task]
async fn deploy(artifact: String) -> String {
    ran("deploy", artifact.trim_end_matches("-artifact"));
    format!("deployed {artifact}")
}

#[task]
async fn announce(service: String) -> String {
    ran("announce", &service);
    format!("announced {service}")
}

/// The same task as `build`, under a new fn name, keeping its identity.
#[task(name = "build")]
async fn compile(service: String) -> String {
    ran("build", &service);
    format!("{service}-artifact")
}

/// A new fn name without `name = "build"`: a different task.
#[task]
async fn assemble(service: String) -> String {
    ran("assemble", &service);
    format!("{service}-artifact")
}

/// `build` with another argument type.
#[task(name = "build")]
async fn build_numbered(service: String, number: u32) -> String {
    ran("build", &service);
    format!("{service}-artifact-{number}")
}

/// The human's approval, in a nested orchestration of its own.
#[task(inject_context)]
async fn ask_approval(ctx: &TaskContext, artifact: String) -> hitl::Result<bool> {
    let answer = ctx
        .request_feedback(Feedback::approval(format!("Deploy {artifact}?")))
        .await?;
    Ok(answer.approved())
}

#[workflow(name = "release")]
async fn release_v1(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    if !ask_approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

/// A step added after the run's position: compatible.
#[workflow(name = "release")]
async fn release_announces(service: String) -> hitl::Result<String> {
    let artifact = build(service.clone()).await;
    if !ask_approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    let deployed = deploy(artifact).await;
    let announced = announce(service).await;
    Ok(format!("{deployed}, {announced}"))
}

/// A step added before the approval the run waits at: incompatible.
#[workflow(name = "release")]
async fn release_scans(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    let clean = scan(artifact.clone()).await;
    if !clean || !ask_approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

/// The same step, inside a patch: runs that passed this point skip it.
#[workflow(name = "release", inject_context)]
async fn release_patched(ctx: &TaskContext, service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    if ctx.patched("scan-before-approval") && !scan(artifact.clone()).await {
        return Ok("rejected".into());
    }
    if !ask_approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

/// The journaled `build` step removed.
#[workflow(name = "release")]
async fn release_without_build(service: String) -> hitl::Result<String> {
    let artifact = format!("{service}-artifact");
    if !ask_approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

/// `build` renamed to `assemble`, identity lost.
#[workflow(name = "release")]
async fn release_renamed(service: String) -> hitl::Result<String> {
    let artifact = assemble(service).await;
    if !ask_approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

/// `build` renamed to `compile`, identity kept with `#[task(name = "build")]`.
#[workflow(name = "release")]
async fn release_renamed_kept(service: String) -> hitl::Result<String> {
    let artifact = compile(service).await;
    if !ask_approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

/// `build` takes another argument.
#[workflow(name = "release")]
async fn release_retyped(service: String) -> hitl::Result<String> {
    let artifact = build_numbered(service, 7).await;
    if !ask_approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

/// Version 2, registered beside version 1.
#[workflow(name = "release", version = 2)]
async fn release_v2(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    let clean = scan(artifact.clone()).await;
    if !clean || !ask_approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(format!("{} (v2)", deploy(artifact).await))
}

/// A database on disk, and a run of `release_v1` paused at its approval, engine closed.
async fn paused_on_v1(service: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = Engine::builder()
        .path(&path)
        .register(release_v1)
        .open()
        .await
        .unwrap();
    let run = engine
        .start_with_id(release_v1, service, (service.to_owned(),))
        .await
        .unwrap();
    assert!(matches!(run.settled().await.unwrap(), Outcome::Paused(_)));
    engine.close().await.unwrap();
    (dir, path)
}

/// Answers the run's open approval.
async fn approve(engine: &Engine, run_id: &str) {
    let request = pending_request(engine, run_id, None).await;
    engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
}

/// The run's block, once it is blocked.
async fn blocked(engine: &Engine, run_id: &str) -> Blocked {
    eventually(format!("run {run_id} is blocked"), async || {
        let info = engine.run_info(run_id).await.unwrap();
        match info.status {
            RunStatus::Blocked => info.blocked,
            RunStatus::Paused | RunStatus::Running => None,
            other => panic!("run {run_id} should be blocked, is {other}"),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_added_after_the_runs_position_is_compatible_and_runs() {
    let (_dir, path) = paused_on_v1("after").await;
    let engine = Engine::builder()
        .path(&path)
        .register(release_announces)
        .open()
        .await
        .unwrap();
    approve(&engine, "after").await;
    let outcome = engine.wait("after").await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Completed(serde_json::json!("deployed after-artifact, announced after"))
    );
    assert_eq!(runs_of("build", "after"), 1, "build ran again");
    assert_eq!(runs_of("announce", "after"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_added_before_the_runs_position_blocks_it_and_resume_anyway_runs_it() {
    let (_dir, path) = paused_on_v1("before").await;
    let engine = Engine::builder()
        .path(&path)
        .register(release_scans)
        .open()
        .await
        .unwrap();
    approve(&engine, "before").await;
    let blocked = blocked(&engine, "before").await;
    assert_eq!(blocked.problems[0].kind, IncompatibilityKind::NewStepBefore);
    let reason = &blocked.reason;
    assert!(reason.contains("`scan#0` (line "), "{reason}");
    assert!(
        reason.contains("before journaled step `ask_approval#0/approval#0` (line "),
        "{reason}"
    );
    assert_eq!(runs_of("scan", "before"), 0, "nothing of a blocked run executes");
    assert_eq!(runs_of("deploy", "before"), 0);
    let info = engine.run_info("before").await.unwrap();
    assert_eq!(info.status, RunStatus::Blocked);
    assert_eq!(info.blocked.as_ref().map(|b| &b.reason), Some(reason));

    // Across a restart it stays blocked, with the answer kept; the operator accepts it.
    engine.close().await.unwrap();
    let engine = Engine::builder()
        .path(&path)
        .register(release_scans)
        .open()
        .await
        .unwrap();
    assert_eq!(
        engine.run_info("before").await.unwrap().status,
        RunStatus::Blocked
    );
    engine
        .resume_anyway("before", "ops@example.com", "scan is read-only")
        .await
        .unwrap();
    let outcome = engine.wait("before").await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Completed(serde_json::json!("deployed before-artifact"))
    );
    assert_eq!(runs_of("scan", "before"), 1, "the accepted new step ran");
    assert_eq!(runs_of("build", "before"), 1);
    let decisions = engine.run_info("before").await.unwrap().decisions;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].action, DecisionAction::ResumeAnyway);
    assert_eq!(decisions[0].by, "ops@example.com");
    assert_eq!(decisions[0].reason, "scan is read-only");
    assert_eq!(&decisions[0].blocked, reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_added_inside_a_patch_is_skipped_by_runs_past_it_and_run_by_new_ones() {
    let (_dir, path) = paused_on_v1("patched").await;
    let engine = Engine::builder()
        .path(&path)
        .register(release_patched)
        .open()
        .await
        .unwrap();
    approve(&engine, "patched").await;
    let outcome = engine.wait("patched").await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Completed(serde_json::json!("deployed patched-artifact"))
    );
    assert_eq!(
        runs_of("scan", "patched"),
        0,
        "the old run skips the patched step"
    );
    let patch = engine
        .history("patched")
        .await
        .unwrap()
        .into_iter()
        .find(|step| step.step_id == "patch(scan-before-approval)#0")
        .expect("the patch decision is journaled");
    assert_eq!(patch.output, serde_json::json!(false));

    let run = engine
        .start_with_id(release_patched, "patched-new", ("patched-new".to_owned(),))
        .await
        .unwrap();
    assert!(matches!(run.settled().await.unwrap(), Outcome::Paused(_)));
    assert_eq!(runs_of("scan", "patched-new"), 1, "a new run takes the patch");
    approve(&engine, "patched-new").await;
    assert!(matches!(run.wait().await.unwrap(), Outcome::Completed(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_journaled_step_blocks_the_run() {
    let (_dir, path) = paused_on_v1("removed").await;
    let engine = Engine::builder()
        .path(&path)
        .register(release_without_build)
        .open()
        .await
        .unwrap();
    approve(&engine, "removed").await;
    let blocked = blocked(&engine, "removed").await;
    assert_eq!(blocked.problems[0].kind, IncompatibilityKind::NotReached);
    assert_eq!(blocked.problems[0].step, "build#0");
    assert!(
        blocked.reason.contains("journaled step `build#0` (line "),
        "{}",
        blocked.reason
    );
    assert_eq!(runs_of("deploy", "removed"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_task_blocks_unless_its_name_keeps_the_identity() {
    let (_dir, path) = paused_on_v1("renamed").await;
    let engine = Engine::builder()
        .path(&path)
        .register(release_renamed)
        .open()
        .await
        .unwrap();
    approve(&engine, "renamed").await;
    let blocked = blocked(&engine, "renamed").await;
    let messages: Vec<&str> = blocked.problems.iter().map(|p| p.detail.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`assemble#0`") && m.contains("before journaled step `build#0`")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("keep its identity with `#[task(name = \"build\")]`")),
        "{messages:?}"
    );
    assert_eq!(runs_of("assemble", "renamed"), 0);
    engine.close().await.unwrap();

    // The next deploy keeps the identity: the blocked run is checked again at open, resumes
    // with the answer it was given while blocked, and does not build again.
    let engine = Engine::builder()
        .path(&path)
        .register(release_renamed_kept)
        .open()
        .await
        .unwrap();
    let outcome = engine.wait("renamed").await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Completed(serde_json::json!("deployed renamed-artifact"))
    );
    assert_eq!(runs_of("build", "renamed"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_argument_type_blocks_the_run() {
    let (_dir, path) = paused_on_v1("retyped").await;
    let engine = Engine::builder()
        .path(&path)
        .register(release_retyped)
        .open()
        .await
        .unwrap();
    approve(&engine, "retyped").await;
    let blocked = blocked(&engine, "retyped").await;
    assert_eq!(blocked.problems[0].kind, IncompatibilityKind::ChangedTypes);
    assert_eq!(blocked.problems[0].step, "build#0");
    assert!(
        blocked.reason.contains("argument or output types changed"),
        "{}",
        blocked.reason
    );
    assert!(
        blocked.reason.contains("journaled at line "),
        "{}",
        blocked.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_run_side_by_side_each_run_on_its_own_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = Engine::builder()
        .path(&path)
        .register(release_v1)
        .register(release_v2)
        .open()
        .await
        .unwrap();
    // By name: the newest version. By fn: that fn's version.
    let newest = engine
        .start_json_with_id("release", "side-v2", serde_json::json!({ "service": "side-v2" }))
        .await
        .unwrap();
    let older = engine
        .start_with_id(release_v1, "side-v1", ("side-v1".to_owned(),))
        .await
        .unwrap();
    assert!(matches!(newest.settled().await.unwrap(), Outcome::Paused(_)));
    assert!(matches!(older.settled().await.unwrap(), Outcome::Paused(_)));
    assert_eq!(engine.run_info("side-v2").await.unwrap().version, 2);
    assert_eq!(engine.run_info("side-v1").await.unwrap().version, 1);
    drop((newest, older));
    engine.close().await.unwrap();

    let engine = Engine::builder()
        .path(&path)
        .register(release_v2)
        .register(release_v1)
        .open()
        .await
        .unwrap();
    approve(&engine, "side-v1").await;
    approve(&engine, "side-v2").await;
    assert_eq!(
        engine.wait("side-v1").await.unwrap(),
        Outcome::Completed(serde_json::json!("deployed side-v1-artifact"))
    );
    assert_eq!(
        engine.wait("side-v2").await.unwrap(),
        Outcome::Completed(serde_json::json!("deployed side-v2-artifact (v2)"))
    );
    assert_eq!(runs_of("scan", "side-v1"), 0, "v1 has no scan");
    assert_eq!(runs_of("scan", "side-v2"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_version_was_removed_is_blocked_and_never_replayed_on_other_code() {
    let (_dir, path) = paused_on_v1("gone").await;
    let engine = Engine::builder()
        .path(&path)
        .register(release_v2)
        .open()
        .await
        .unwrap();
    approve(&engine, "gone").await;
    let blocked = blocked(&engine, "gone").await;
    assert_eq!(
        blocked.problems[0].kind,
        IncompatibilityKind::VersionNotRegistered
    );
    assert!(
        blocked.reason.contains("version 1 of `release`"),
        "{}",
        blocked.reason
    );
    assert!(blocked.reason.contains("registered: 2"), "{}", blocked.reason);
    assert_eq!(runs_of("scan", "gone"), 0);
    let refused = engine.resume_anyway("gone", "ops", "try").await.unwrap_err();
    assert!(matches!(refused, hitl::Error::InvalidRequest { .. }), "{refused}");
    engine
        .decide("gone", DecisionAction::Cancel, "ops", "v1 is retired")
        .await
        .unwrap();
    let info = engine.run_info("gone").await.unwrap();
    assert_eq!(info.status, RunStatus::Cancelled);
    assert_eq!(info.decisions[0].action, DecisionAction::Cancel);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registrations_of_one_name_and_version_are_refused_at_open() {
    let error = Engine::temporary()
        .register(release_v1)
        .register(release_scans)
        .open()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, hitl::Error::DuplicateWorkflow { name, version: 1 } if name == "release"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pre_deploy_check_reads_an_export_and_names_what_would_block() {
    let (_dir, path) = paused_on_v1("export").await;
    let engine = Engine::builder()
        .path(&path)
        .register(release_v1)
        .open()
        .await
        .unwrap();
    let export = engine.export_runs(true).await.unwrap();
    engine.close().await.unwrap();
    let text = serde_json::to_string(&export).unwrap();
    let export = hitl::engine::RunExport::from_json(&text).unwrap();
    assert_eq!(export.runs.len(), 1);
    assert_eq!(export.runs[0].run.id, "export");

    let ok = Engine::builder()
        .register(release_patched)
        .check_export(&export)
        .await
        .unwrap();
    assert!(ok.all_resumable(), "{ok}");
    let report = Engine::builder()
        .register(release_scans)
        .check_export(&export)
        .await
        .unwrap();
    assert!(!report.all_resumable());
    let text = report.to_string();
    assert!(
        text.contains("1 run(s) checked: 0 resumable, 1 would block"),
        "{text}"
    );
    assert!(text.contains("`scan#0` (line "), "{text}");
    let missing = Engine::builder()
        .register(release_v2)
        .check_export(&export)
        .await
        .unwrap();
    assert_eq!(
        missing.runs[0].problems[0].kind,
        IncompatibilityKind::VersionNotRegistered
    );
    // Nothing ran for the checks.
    assert_eq!(runs_of("scan", "export"), 0);

    let foreign = hitl::engine::RunExport::from_json(r#"{"format":"other","version":1}"#).unwrap_err();
    assert!(foreign.to_string().contains("not a run export"), "{foreign}");
    let newer = hitl::engine::RunExport::from_json(r#"{"format":"hitl.runs","version":9}"#).unwrap_err();
    assert!(newer.to_string().contains("version 9"), "{newer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_of_an_unchanged_workflow_finds_nothing_and_eventually_sees_its_answer() {
    let (_dir, path) = paused_on_v1("same").await;
    let engine = Engine::builder()
        .path(&path)
        .register(release_v1)
        .open()
        .await
        .unwrap();
    let report = engine.check_runs().await.unwrap();
    assert!(report.all_resumable(), "{report}");
    approve(&engine, "same").await;
    let outcome = eventually("the run completes", async || match engine.wait("same").await {
        Ok(outcome @ Outcome::Completed(_)) => Some(outcome),
        _ => None,
    })
    .await;
    assert_eq!(
        outcome,
        Outcome::Completed(serde_json::json!("deployed same-artifact"))
    );
}

// --- patches in a loop and in a `join!` branch ----------------------------------------------

#[task]
async fn counted(round: u32) -> u32 {
    ran("counted", &round.to_string());
    round
}

/// One approval, keyed by `key`, in a scope of its own.
#[task(inject_context)]
async fn ask_keyed(ctx: &TaskContext, key: String) -> hitl::Result<bool> {
    let answer = ctx
        .request_feedback(Feedback::approval(format!("{key}?")).key(key))
        .await?;
    Ok(answer.approved())
}

#[workflow(name = "rounds")]
async fn rounds_v1(rounds: u32) -> hitl::Result<u32> {
    let mut approved = 0;
    for round in 0..rounds {
        if ask_keyed(format!("round-{round}")).await? {
            approved += 1;
        }
    }
    Ok(approved)
}

#[workflow(name = "rounds", inject_context)]
async fn rounds_patched(ctx: &TaskContext, rounds: u32) -> hitl::Result<u32> {
    let mut approved = 0;
    for round in 0..rounds {
        if ctx.patched("count-rounds") {
            counted(round).await;
        }
        if ask_keyed(format!("round-{round}")).await? {
            approved += 1;
        }
    }
    Ok(approved)
}

async fn answer_keyed(engine: &Engine, run_id: &str, key: &str) {
    let prompt = format!("{key}?");
    let request = pending_request(engine, run_id, Some(&prompt)).await;
    engine
        .respond(&request.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_in_a_loop_is_decided_by_each_occurrence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = Engine::builder()
        .path(&path)
        .register(rounds_v1)
        .open()
        .await
        .unwrap();
    engine.start_with_id(rounds_v1, "rounds", (3,)).await.unwrap();
    answer_keyed(&engine, "rounds", "round-0").await;
    pending_request(&engine, "rounds", Some("round-1?")).await;
    engine.close().await.unwrap();

    let engine = Engine::builder()
        .path(&path)
        .register(rounds_patched)
        .open()
        .await
        .unwrap();
    answer_keyed(&engine, "rounds", "round-1").await;
    answer_keyed(&engine, "rounds", "round-2").await;
    assert_eq!(
        engine.wait("rounds").await.unwrap(),
        Outcome::Completed(serde_json::json!(3))
    );
    // Rounds 0 and 1 had been reached on the old code; only round 2 takes the patch.
    let counted_rounds: Vec<usize> = (0..3)
        .map(|round| runs_of("counted", &round.to_string()))
        .collect();
    assert_eq!(counted_rounds, [0, 0, 1]);
    let decisions: Vec<(String, serde_json::Value)> = engine
        .history("rounds")
        .await
        .unwrap()
        .into_iter()
        .filter(|step| step.kind == hitl::StepKind::Patch)
        .map(|step| (step.step_id, step.output))
        .collect();
    assert_eq!(
        decisions,
        [
            ("patch(count-rounds)#0".to_owned(), serde_json::json!(false)),
            ("patch(count-rounds)#1".to_owned(), serde_json::json!(false)),
            ("patch(count-rounds)#2".to_owned(), serde_json::json!(true)),
        ]
    );
}

#[task]
async fn warm_up(who: String) -> String {
    ran("warm_up", &who);
    who
}

#[workflow(name = "pair")]
async fn pair_v1(who: String) -> hitl::Result<bool> {
    let (left, right) = tokio::try_join!(async { ask_keyed(format!("{who}-left")).await }, async {
        ask_keyed(format!("{who}-right")).await
    },)?;
    Ok(left && right)
}

#[workflow(name = "pair", inject_context)]
async fn pair_patched(ctx: &TaskContext, who: String) -> hitl::Result<bool> {
    let (left, right) = tokio::try_join!(async { ask_keyed(format!("{who}-left")).await }, async {
        // This branch's own scope decides: the old run had not passed this point here.
        if ctx.patched("warm-up-right") {
            warm_up(who.clone()).await;
        }
        ask_keyed(format!("{who}-right")).await
    },)?;
    Ok(left && right)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_in_a_join_branch_is_decided_by_that_branch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = Engine::builder()
        .path(&path)
        .register(pair_v1)
        .open()
        .await
        .unwrap();
    engine
        .start_with_id(pair_v1, "pair", ("pair".to_owned(),))
        .await
        .unwrap();
    answer_keyed(&engine, "pair", "pair-left").await;
    pending_request(&engine, "pair", Some("pair-right?")).await;
    engine.close().await.unwrap();

    let engine = Engine::builder()
        .path(&path)
        .register(pair_patched)
        .open()
        .await
        .unwrap();
    answer_keyed(&engine, "pair", "pair-right").await;
    assert_eq!(
        engine.wait("pair").await.unwrap(),
        Outcome::Completed(serde_json::json!(true))
    );
    assert_eq!(
        runs_of("warm_up", "pair"),
        0,
        "the right branch had already asked"
    );

    let fresh = engine
        .start_with_id(pair_patched, "pair-new", ("pair-new".to_owned(),))
        .await
        .unwrap();
    answer_keyed(&engine, "pair-new", "pair-new-left").await;
    answer_keyed(&engine, "pair-new", "pair-new-right").await;
    assert_eq!(fresh.wait().await.unwrap(), Outcome::Completed(true));
    assert_eq!(runs_of("warm_up", "pair-new"), 1, "a new run takes the patch");
}

// --- expiries while blocked -----------------------------------------------------------------

#[task(inject_context)]
async fn ask_or_fail(ctx: &TaskContext, artifact: String) -> hitl::Result<bool> {
    let feedback = Feedback::approval(format!("Deploy {artifact}?"))
        .expires_after(std::time::Duration::from_secs(3_600))
        .on_expiry(OnExpiry::FailRun);
    Ok(ctx.request_feedback(feedback).await?.approved())
}

#[workflow(name = "expiring")]
async fn expiring_v1(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    if !ask_or_fail(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

#[workflow(name = "expiring")]
async fn expiring_scans(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    scan(artifact.clone()).await;
    if !ask_or_fail(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_while_blocked_applies_its_policy_and_fail_run_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock =
        hitl::clock::ManualClock::new(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000));
    let engine = Engine::builder()
        .path(&path)
        .clock(clock.clone())
        .register(expiring_v1)
        .open()
        .await
        .unwrap();
    let run = engine
        .start_with_id(expiring_v1, "expiring", ("expiring".to_owned(),))
        .await
        .unwrap();
    assert!(matches!(run.settled().await.unwrap(), Outcome::Paused(_)));
    drop(run);
    engine.close().await.unwrap();

    let engine = Engine::builder()
        .path(&path)
        .clock(clock.clone())
        .register(expiring_scans)
        .open()
        .await
        .unwrap();
    // Blocked by a wake-up: an operator's resume attempt is the quickest one to give.
    assert!(engine.check_runs().await.unwrap().blocked().count() == 1);
    clock.advance(std::time::Duration::from_secs(3_601));
    let Outcome::Failed(failure) = engine.wait("expiring").await.unwrap() else {
        panic!("the expiry policy fails the run");
    };
    assert!(failure.message.contains("expired"), "{failure}");
    assert_eq!(
        runs_of("scan", "expiring"),
        0,
        "nothing of the blocked run executed"
    );
    assert_eq!(runs_of("deploy", "expiring"), 0);
}

// --- retiring a patch ---------------------------------------------------------------------

/// The patch retired: the scan is unconditional, and runs that journaled the patch replay.
#[workflow(name = "release", inject_context)]
async fn release_patch_deprecated(ctx: &TaskContext, service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    ctx.deprecate_patch("scan-before-approval");
    if !scan(artifact.clone()).await || !ask_approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

/// The patch line removed too early: a run that journaled the patch cannot resume.
#[workflow(name = "release")]
async fn release_patch_removed(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    if !scan(artifact.clone()).await || !ask_approval(artifact.clone()).await? {
        return Ok("rejected".into());
    }
    Ok(deploy(artifact).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deprecated_patch_replays_for_runs_that_journaled_it_and_removing_it_early_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = Engine::builder()
        .path(&path)
        .register(release_patched)
        .open()
        .await
        .unwrap();
    for id in ["retire-a", "retire-b"] {
        let run = engine
            .start_with_id(release_patched, id, (id.to_owned(),))
            .await
            .unwrap();
        assert!(matches!(run.settled().await.unwrap(), Outcome::Paused(_)));
    }
    engine.close().await.unwrap();

    let report = Engine::builder()
        .path(&path)
        .register(release_patch_removed)
        .check()
        .await
        .unwrap();
    assert_eq!(report.blocked().count(), 2, "{report}");
    assert!(
        report
            .to_string()
            .contains("journaled step `patch(scan-before-approval)#0` (line "),
        "{report}"
    );

    let engine = Engine::builder()
        .path(&path)
        .register(release_patch_deprecated)
        .open()
        .await
        .unwrap();
    assert!(engine.check_runs().await.unwrap().all_resumable());
    approve(&engine, "retire-a").await;
    assert_eq!(
        engine.wait("retire-a").await.unwrap(),
        Outcome::Completed(serde_json::json!("deployed retire-a-artifact"))
    );
    assert_eq!(
        runs_of("scan", "retire-a"),
        1,
        "the scan ran once, before the approval"
    );
}

// --- rewinding a blocked run ----------------------------------------------------------------

#[task]
async fn draft(plan: String) -> String {
    ran("draft", &plan);
    format!("draft of {plan}")
}

#[task]
async fn lint(draft: String) -> bool {
    ran("lint", &draft);
    true
}

/// An approval whose notification goes to a webhook nobody listens on: it stays pending.
#[task(inject_context)]
async fn ask_notified(ctx: &TaskContext, draft: String) -> hitl::Result<bool> {
    let feedback = Feedback::approval(format!("Publish {draft}?"))
        .notify(hitl::Notify::webhook("http://127.0.0.1:9/hook"));
    Ok(ctx.request_feedback(feedback).await?.approved())
}

#[workflow(name = "publish", inject_context)]
async fn publish_v1(ctx: &TaskContext, plan: String) -> hitl::Result<String> {
    let plan = build(plan).await;
    let before: Option<String> = ctx.channel().get("stage").await?;
    ctx.channel().set("stage", "drafted").await?;
    let draft = draft(plan.clone()).await;
    let (approved, seconded) = tokio::try_join!(async { ask_notified(draft.clone()).await }, async {
        ask_keyed(format!("{plan}-second")).await
    },)?;
    Ok(format!("{before:?} {draft} {}", approved && seconded))
}

/// A lint added before the approval: the waiting run blocks, and is rewound.
#[workflow(name = "publish", inject_context)]
async fn publish_lints(ctx: &TaskContext, plan: String) -> hitl::Result<String> {
    let plan = build(plan).await;
    let before: Option<String> = ctx.channel().get("stage").await?;
    ctx.channel().set("stage", "drafted").await?;
    let draft = draft(plan.clone()).await;
    let clean = lint(draft.clone()).await;
    let (approved, seconded) = tokio::try_join!(async { ask_notified(draft.clone()).await }, async {
        ask_keyed(format!("{plan}-second")).await
    },)?;
    Ok(format!("{before:?} {draft} {}", clean && approved && seconded))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewind_runs_the_later_steps_again_restores_channels_and_cancels_the_open_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = Engine::builder()
        .path(&path)
        .register(publish_v1)
        .open()
        .await
        .unwrap();
    let run = engine
        .start_with_id(publish_v1, "rewind", ("rewind".to_owned(),))
        .await
        .unwrap();
    assert!(matches!(run.settled().await.unwrap(), Outcome::Paused(_)));
    let notified = pending_request(&engine, "rewind", Some("Publish draft of rewind-artifact?")).await;
    drop(run);
    engine.close().await.unwrap();

    let engine = Engine::builder()
        .path(&path)
        .register(publish_lints)
        .open()
        .await
        .unwrap();
    let not_blocked = engine.resume_anyway("rewind", "ops", "probe").await.unwrap_err();
    assert!(
        matches!(not_blocked, hitl::Error::RunNotBlocked { .. }),
        "{not_blocked}"
    );
    // The second approval wakes the run, which blocks; the first stays open.
    answer_keyed(&engine, "rewind", "rewind-artifact-second").await;
    blocked(&engine, "rewind").await;
    assert_eq!(runs_of("draft", "rewind-artifact"), 1);

    let refused = engine
        .decide(
            "rewind",
            DecisionAction::Rewind { to: "nope#0".into() },
            "ops",
            "x",
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("no completed step `nope#0`"),
        "{refused}"
    );
    engine
        .decide(
            "rewind",
            DecisionAction::Rewind { to: "build#0".into() },
            "ops",
            "lint the draft first",
        )
        .await
        .unwrap();
    // The open request is cancelled; the steps after `build#0` run again, the channel read
    // finds the value from before them, and both approvals are asked again.
    let old = engine.request(&notified.id).await.unwrap();
    assert_eq!(old.status, hitl::RequestStatus::Cancelled);
    let again = eventually("the approval is asked again", async || {
        let request = pending_request(&engine, "rewind", Some("Publish draft of rewind-artifact?")).await;
        (request.id != notified.id).then_some(request)
    })
    .await;
    assert_eq!(runs_of("draft", "rewind-artifact"), 2, "draft ran again");
    assert_eq!(runs_of("lint", "draft of rewind-artifact"), 1);
    engine
        .respond(&again.id, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    answer_keyed(&engine, "rewind", "rewind-artifact-second").await;
    assert_eq!(
        engine.wait("rewind").await.unwrap(),
        Outcome::Completed(serde_json::json!("None draft of rewind-artifact true"))
    );
    let decisions = engine.run_info("rewind").await.unwrap().decisions;
    assert_eq!(
        decisions[0].action,
        DecisionAction::Rewind { to: "build#0".into() }
    );
    // The cancelled request's notification is withdrawn (shown as skipped), not failed.
    engine.close().await.unwrap();
    let mut dump = Vec::new();
    hitl::store::dump_sled(&path, &mut dump).unwrap();
    let outbox: Vec<serde_json::Value> = String::from_utf8(dump)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter_map(|line| {
            line.as_object()?
                .values()
                .find(|field| field.get("notify").is_some())
                .cloned()
        })
        .filter(|outbox| outbox["request_id"] == notified.id.as_str())
        .collect();
    assert_eq!(outbox.len(), 1, "{outbox:#?}");
    assert_eq!(outbox[0]["gave_up"], true, "{outbox:#?}");
    assert_eq!(outbox[0]["withdrawn"], true, "{outbox:#?}");
}

// --- shapes a check must not mistake for a code change -------------------------------------

#[task]
async fn flaky(service: String) -> Result<String, String> {
    ran("flaky", &service);
    Err(format!("{service} is down"))
}

/// The escalation pattern: a failed step asks a human whether to go on.
#[workflow(name = "escalate")]
async fn escalate_v1(service: String) -> hitl::Result<String> {
    if let Err(error) = flaky(service.clone()).await {
        let go_on = ask_keyed(format!("{service}: {error}; continue")).await?;
        return Ok(format!("escalated: {go_on}"));
    }
    Ok("fine".into())
}

/// The same, with a step added at the end: a compatible change, so the check runs.
#[workflow(name = "escalate")]
async fn escalate_v2(service: String) -> hitl::Result<String> {
    if let Err(error) = flaky(service.clone()).await {
        let go_on = ask_keyed(format!("{service}: {error}; continue")).await?;
        let announced = announce(service).await;
        return Ok(format!("escalated: {go_on}, {announced}"));
    }
    Ok("fine".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_returned_err_before_the_runs_position_does_not_block_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = Engine::builder()
        .path(&path)
        .register(escalate_v1)
        .open()
        .await
        .unwrap();
    let run = engine
        .start_with_id(escalate_v1, "escalate", ("esc".to_owned(),))
        .await
        .unwrap();
    assert!(matches!(run.settled().await.unwrap(), Outcome::Paused(_)));
    drop(run);
    engine.close().await.unwrap();

    let engine = Engine::builder()
        .path(&path)
        .register(escalate_v2)
        .open()
        .await
        .unwrap();
    assert!(engine.check_runs().await.unwrap().all_resumable());
    answer_keyed(&engine, "escalate", "esc: esc is down; continue").await;
    assert_eq!(
        engine.wait("escalate").await.unwrap(),
        Outcome::Completed(serde_json::json!("escalated: true, announced esc"))
    );
}

#[workflow(name = "race", inject_context)]
async fn race_v1(ctx: &TaskContext, who: String) -> hitl::Result<String> {
    let first = tokio::select! {
        answer = ask_keyed(format!("{who}-first")) => answer?,
        () = ctx.sleep(std::time::Duration::from_secs(86_400)) => false,
    };
    let second = ask_keyed(format!("{who}-second")).await?;
    Ok(format!("{first} {second}"))
}

/// The same, with a step added at the end.
#[workflow(name = "race", inject_context)]
async fn race_v2(ctx: &TaskContext, who: String) -> hitl::Result<String> {
    let first = tokio::select! {
        answer = ask_keyed(format!("{who}-first")) => answer?,
        () = ctx.sleep(std::time::Duration::from_secs(86_400)) => false,
    };
    let second = ask_keyed(format!("{who}-second")).await?;
    let announced = announce(who).await;
    Ok(format!("{first} {second} {announced}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_losing_timer_of_a_select_does_not_block_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = Engine::builder()
        .path(&path)
        .register(race_v1)
        .open()
        .await
        .unwrap();
    engine
        .start_with_id(race_v1, "race", ("race".to_owned(),))
        .await
        .unwrap();
    answer_keyed(&engine, "race", "race-first").await;
    pending_request(&engine, "race", Some("race-second?")).await;
    engine.close().await.unwrap();

    let engine = Engine::builder()
        .path(&path)
        .register(race_v2)
        .open()
        .await
        .unwrap();
    for _ in 0..8 {
        // `select!` polls its branches in a random order: check more than once.
        let report = engine.check_runs().await.unwrap();
        assert!(report.all_resumable(), "{report}");
    }
    answer_keyed(&engine, "race", "race-second").await;
    assert_eq!(
        engine.wait("race").await.unwrap(),
        Outcome::Completed(serde_json::json!("true true announced race"))
    );
}
