//! `examples/redeploy.rs`, run as a program: the story ends with the JSON line the README
//! quotes, and `redeploy check FILE` exits 0 for an export its build can resume and 1 for one
//! it would block.

use std::path::PathBuf;
use std::process::Command;

use hitl::feedback::Feedback;
use hitl::prelude::*;

/// The example's binary, built beside the tests (`cargo test` builds the examples).
fn example() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let binary = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("redeploy");
    assert!(binary.is_file(), "build the examples first: {}", binary.display());
    binary
}

#[task]
async fn build(service: String) -> String {
    format!("{service}-1.4.2")
}

#[task(inject_context)]
async fn approval(ctx: &TaskContext, artifact: String) -> hitl::Result<bool> {
    let answer = ctx
        .request_feedback(Feedback::approval(format!("Deploy {artifact}?")))
        .await?;
    Ok(answer.approved())
}

/// The example's version 1, as the running (old) build has it.
#[workflow(name = "release")]
async fn release(service: String) -> hitl::Result<String> {
    let artifact = build(service).await;
    Ok(if approval(artifact.clone()).await? {
        format!("deployed {artifact}")
    } else {
        "rejected".into()
    })
}

#[test]
fn the_story_ends_with_every_run_finished_on_its_own_code() {
    let output = Command::new(example()).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        last,
        serde_json::json!({"runs": 4, "completed_v1": 3, "completed_v2": 1, "patched": 1,
                           "blocked_then_resolved": 1, "failed": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_subcommand_exits_non_zero_when_a_run_would_block() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder()
        .path(dir.path().join("db"))
        .register(release)
        .open()
        .await
        .unwrap();
    let run = engine
        .start_with_id(release, "waiting", ("api".to_owned(),))
        .await
        .unwrap();
    assert!(matches!(run.settled().await.unwrap(), Outcome::Paused(_)));
    let export = serde_json::to_value(engine.export_runs(false).await.unwrap()).unwrap();
    let resumable = dir.path().join("runs.json");
    std::fs::write(&resumable, export.to_string()).unwrap();
    // The same run, as if it had started on a version 3 this build does not have.
    let mut stranded = export.clone();
    stranded["runs"][0]["run"]["version"] = serde_json::json!(3);
    let blocking = dir.path().join("stranded.json");
    std::fs::write(&blocking, stranded.to_string()).unwrap();

    let ok = Command::new(example())
        .arg("check")
        .arg(&resumable)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(
        text.contains("1 run(s) checked: 1 resumable, 0 would block"),
        "{text}"
    );
    let refused = Command::new(example())
        .arg("check")
        .arg(&blocking)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("version 3 of `release`"), "{text}");
}
