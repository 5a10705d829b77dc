//! The `hitl` binary on the database of a stopped application (`--db DIR`): an operator lists,
//! reads and answers requests while nothing runs, and the application finishes the runs when
//! it starts again. Every exit code is covered.

mod cli_support;

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use cli_support::{
    PATIENCE, application, deploy, hitl, paused, pick_checks, pick_region, refund, release_notes, stop,
};
use hitl::clock::ManualClock;
use hitl::prelude::*;
use serde_json::json;

fn db(dir: &Path) -> String {
    dir.to_str().expect("a UTF-8 temporary path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_approves_a_deploy_offline_and_the_application_finishes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let engine = application(&dir).await;
    let run = engine
        .start_with_id(deploy, "deploy-api", ("api".into(),))
        .await
        .unwrap();
    let request = paused(&run).await;
    drop(run);
    stop(engine, &dir).await;
    let db = db(&dir);

    hitl(["--db", &db, "pending"]).exits(0).prints(&[
        "ID",
        "PROMPT",
        &request.id,
        "deploy",
        "deploy-api",
        "approval",
        "Deploy api to production?",
    ]);
    let listed = hitl(["pending", "--db", &db, "--json"]).exits(0).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], json!(request.id));
    assert_eq!(listed[0]["kind"], json!("approval"));
    assert_eq!(listed[0]["status"], json!("pending"));
    assert_eq!(listed[0]["run_id"], json!("deploy-api"));

    hitl(["--db", &db, "show", &request.id]).exits(0).prints(&[
        "Deploy api to production?",
        "Canary error rate",
        "pending",
        "alice, bob",
        &format!(
            "hitl --db {db} --as NAME respond {} --approve | --reject",
            request.id
        ),
    ]);
    let shown = hitl(["--db", &db, "--json", "show", &request.id]).exits(0).json();
    assert_eq!(shown, listed[0]);

    hitl([
        "--db",
        &db,
        "respond",
        &request.id,
        "--as",
        "alice",
        "--approve",
        "--comment",
        "ship it",
    ])
    .exits(0)
    .prints(&[
        "approved",
        "\"ship it\"",
        "by alice",
        "the run resumes when the application next opens",
    ]);
    hitl(["--db", &db, "pending"])
        .exits(0)
        .prints(&["No pending requests."]);
    let answered = hitl(["--db", &db, "show", &request.id, "--json"]).exits(0).json();
    assert_eq!(answered["status"], json!("answered"));
    assert_eq!(answered["answer"]["responder"], json!("alice"));
    assert_eq!(answered["answer"]["approved"], json!(true));

    let engine = application(&dir).await;
    assert_eq!(
        engine.wait("deploy-api").await.unwrap(),
        Outcome::Completed(json!("approved by alice: ship it"))
    );
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_answer_given_offline_one_after_another_reaches_its_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let engine = application(&dir).await;
    let runs = [
        paused(
            &engine
                .start_with_id(deploy, "deploy", ("web".into(),))
                .await
                .unwrap(),
        )
        .await,
        paused(
            &engine
                .start_with_id(release_notes, "notes", ("1.2".into(),))
                .await
                .unwrap(),
        )
        .await,
        paused(&engine.start_with_id(pick_region, "region", ()).await.unwrap()).await,
        paused(&engine.start_with_id(pick_checks, "checks", ()).await.unwrap()).await,
        paused(
            &engine
                .start_with_id(refund, "refund", ("A-17".into(),))
                .await
                .unwrap(),
        )
        .await,
    ];
    stop(engine, &dir).await;
    let db = db(&dir);
    let [deploy_request, notes, region, checks, refund_request] = runs.map(|request| request.id);

    hitl(["--db", &db, "pending"]).exits(0).prints(&[
        &deploy_request,
        &notes,
        &region,
        &checks,
        &refund_request,
    ]);
    hitl(["--db", &db, "show", &region])
        .exits(0)
        .prints(&["- eu-west", "- ap-south", "--select eu-west"]);
    hitl(["--db", &db, "show", &notes])
        .exits(0)
        .prints(&["at least 10 characters", "--text TEXT"]);
    hitl(["--db", &db, "show", &refund_request]).exits(0).prints(&[
        "Input schema",
        "\"amount\"",
        "--value JSON",
    ]);

    // Each answer is a separate process; none may spend another's wake-up.
    hitl(["--db", &db, "respond", &deploy_request, "--as", "bob", "--reject"])
        .exits(0)
        .prints(&["rejected by bob"]);
    hitl([
        "--db",
        &db,
        "respond",
        &notes,
        "--as",
        "carol",
        "--text",
        "Faster replay, fewer bugs.",
    ])
    .exits(0)
    .prints(&["\"Faster replay, fewer bugs.\" by carol"]);
    hitl([
        "--db", &db, "respond", &region, "--as", "carol", "--select", "ap-south",
    ])
    .exits(0)
    .prints(&["ap-south by carol"]);
    // Repeated `--select`s answer a multi-selection; the answer keeps the order offered.
    hitl([
        "--db", &db, "respond", &checks, "--as", "carol", "--select", "e2e", "--select", "lint",
    ])
    .exits(0)
    .prints(&["lint, e2e by carol"]);
    let answered = hitl([
        "--db",
        &db,
        "--json",
        "respond",
        &refund_request,
        "--as",
        "dave",
        "--value",
        r#"{"amount": 120, "reason": "late delivery"}"#,
    ])
    .exits(0)
    .json();
    assert_eq!(answered["status"], json!("answered"));
    assert_eq!(
        answered["answer"]["value"],
        json!({"amount": 120, "reason": "late delivery"})
    );
    assert_eq!(
        hitl(["--db", &db, "pending", "--json"]).exits(0).json(),
        json!([])
    );

    let engine = application(&dir).await;
    let wait = |run_id: &'static str| {
        let engine = engine.clone();
        async move { tokio::time::timeout(PATIENCE, engine.wait(run_id)).await }
    };
    assert_eq!(
        wait("deploy").await.unwrap().unwrap(),
        Outcome::Completed(json!("rejected by bob: -"))
    );
    assert_eq!(
        wait("notes").await.unwrap().unwrap(),
        Outcome::Completed(json!("Faster replay, fewer bugs."))
    );
    assert_eq!(
        wait("region").await.unwrap().unwrap(),
        Outcome::Completed(json!("ap-south"))
    );
    assert_eq!(
        wait("checks").await.unwrap().unwrap(),
        Outcome::Completed(json!(["lint", "e2e"]))
    );
    assert_eq!(
        wait("refund").await.unwrap().unwrap(),
        Outcome::Completed(json!("A-17: 120 (late delivery)"))
    );
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_answer_exits_3_and_leaves_the_request_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let engine = application(&dir).await;
    let approval = paused(
        &engine
            .start_with_id(deploy, "deploy", ("db".into(),))
            .await
            .unwrap(),
    )
    .await;
    let text = paused(
        &engine
            .start_with_id(release_notes, "notes", ("2.0".into(),))
            .await
            .unwrap(),
    )
    .await;
    let region = paused(&engine.start_with_id(pick_region, "region", ()).await.unwrap()).await;
    let refund_request = paused(
        &engine
            .start_with_id(refund, "refund", ("B-2".into(),))
            .await
            .unwrap(),
    )
    .await;
    stop(engine, &dir).await;
    let db = db(&dir);
    let still_pending = |id: &str| {
        let shown = hitl(["--db", &db, "show", id, "--json"]).exits(0).json();
        assert_eq!(shown["status"], json!("pending"), "{id} should still be open");
    };

    // Validation by the engine: the message names the problem.
    hitl([
        "--db",
        &db,
        "respond",
        &text.id,
        "--as",
        "carol",
        "--text",
        "too short",
    ])
    .exits(3)
    .complains(&["at least 10 characters", "still open"]);
    hitl([
        "--db", &db, "respond", &region.id, "--as", "carol", "--select", "mars",
    ])
    .exits(3)
    .complains(&["`mars` is not one of the options offered"]);
    hitl([
        "--db",
        &db,
        "respond",
        &refund_request.id,
        "--as",
        "carol",
        "--value",
        r#"{"amount": "lots"}"#,
    ])
    .exits(3)
    .complains(&["invalid answer"]);
    // A flag that does not fit the kind is refused before anything is sent, with the right one.
    hitl(["--db", &db, "respond", &text.id, "--as", "carol", "--approve"])
        .exits(3)
        .complains(&["is a text request", "--text TEXT"]);
    hitl([
        "--db", &db, "respond", &region.id, "--as", "carol", "--select", "eu-west", "--select", "us-east",
    ])
    .exits(3)
    .complains(&["more than one `--select`", "--select eu-west"]);
    hitl([
        "--db",
        &db,
        "respond",
        &approval.id,
        "--as",
        "carol",
        "--text",
        "yes",
    ])
    .exits(3)
    .complains(&["is an approval request", "--approve | --reject"]);
    // Only the allowed responders may answer.
    hitl([
        "--db",
        &db,
        "respond",
        &approval.id,
        "--as",
        "mallory",
        "--approve",
    ])
    .exits(3)
    .complains(&["`mallory` may not answer", "`alice`, `bob`"]);
    for id in [&approval.id, &text.id, &region.id, &refund_request.id] {
        still_pending(id);
    }

    // The first valid answer wins; a second is refused.
    hitl(["--db", &db, "respond", &approval.id, "--as", "alice", "--approve"]).exits(0);
    hitl(["--db", &db, "respond", &approval.id, "--as", "bob", "--reject"])
        .exits(3)
        .complains(&["already been answered"]);
    // A cancelled run's request can no longer be answered, and a finished run not cancelled.
    hitl(["--db", &db, "cancel", "notes"]).exits(0);
    hitl([
        "--db",
        &db,
        "respond",
        &text.id,
        "--as",
        "carol",
        "--text",
        "long enough now",
    ])
    .exits(3)
    .complains(&["was cancelled"]);
    hitl(["--db", &db, "cancel", "notes"])
        .exits(3)
        .complains(&["has already cancelled"]);

    let engine = application(&dir).await;
    assert_eq!(
        engine.wait("deploy").await.unwrap(),
        Outcome::Completed(json!("approved by alice: -"))
    );
    refused_while_the_application_holds_the_database(&db);
    engine.close().await.unwrap();
}

/// While the application runs, `--db` is refused with the way out.
fn refused_while_the_application_holds_the_database(db: &str) {
    hitl(["--db", db, "pending"])
        .exits(4)
        .complains(&["in use by a running application", "--url"]);
    hitl(["--db", db, "respond", "any", "--as", "alice", "--approve"])
        .exits(4)
        .complains(&["in use by a running application"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_a_request_past_its_deadline_offline_is_refused() {
    #[workflow(inject_context)]
    async fn expiring(ctx: &TaskContext) -> hitl::Result<bool> {
        let answer = ctx
            .request_feedback(
                Feedback::approval("Extend the trial?").expires_after(Duration::from_secs(3_600)),
            )
            .await?;
        Ok(answer.approved())
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    // The application ran in 1970: its request's deadline passed long ago.
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000_000));
    let engine = Engine::builder()
        .path(&dir)
        .clock(clock)
        .register(expiring)
        .open()
        .await
        .unwrap();
    let request = paused(&engine.start_with_id(expiring, "trial", ()).await.unwrap()).await;
    stop(engine, &dir).await;
    let db = db(&dir);

    hitl(["--db", &db, "pending"])
        .exits(0)
        .prints(&[&request.id, "overdue"]);
    // The engine's deadline rule, not a check of the CLI's: the late answer expires the
    // request by its policy (here `Reject`) and is refused.
    hitl(["--db", &db, "respond", &request.id, "--as", "alice", "--approve"])
        .exits(3)
        .complains(&["has expired"]);
    let shown = hitl(["--db", &db, "show", &request.id, "--json"]).exits(0).json();
    assert_eq!(shown["status"], json!("expired"));
    assert_eq!(shown["answer"], json!(null), "the late answer was not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_history_and_cancel_work_on_a_stopped_application() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let engine = application(&dir).await;
    let keep = paused(
        &engine
            .start_with_id(deploy, "keep", ("api".into(),))
            .await
            .unwrap(),
    )
    .await;
    let drop_request = paused(
        &engine
            .start_with_id(deploy, "drop", ("web".into(),))
            .await
            .unwrap(),
    )
    .await;
    let notes = paused(
        &engine
            .start_with_id(release_notes, "notes", ("0.9".into(),))
            .await
            .unwrap(),
    )
    .await;
    stop(engine, &dir).await;
    let db = db(&dir);

    let count = |args: &[&str]| {
        let mut all = vec!["--db", db.as_str(), "--json"];
        all.extend(args);
        hitl(all).exits(0).json().as_array().expect("a JSON array").len()
    };
    assert_eq!(count(&["pending"]), 3);
    assert_eq!(count(&["pending", "--workflow", "deploy"]), 2);
    assert_eq!(count(&["pending", "--run", "notes"]), 1);
    assert_eq!(count(&["pending", "--workflow", "deploy", "--run", "notes"]), 0);
    hitl(["--db", &db, "pending", "--run", "notes"])
        .exits(0)
        .prints(&[&notes.id]);

    hitl(["--db", &db, "runs"])
        .exits(0)
        .prints(&["WORKFLOW", "STATUS", "keep", "drop", "deploy", "paused"]);
    let paused_runs = hitl(["--db", &db, "runs", "--status", "paused", "--json"])
        .exits(0)
        .json();
    let mut ids: Vec<&str> = paused_runs
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["drop", "keep", "notes"]);
    assert_eq!(paused_runs[0]["workflow"], json!("deploy"));
    hitl(["--db", &db, "runs", "--status", "completed"])
        .exits(0)
        .prints(&["No runs."]);

    hitl(["--db", &db, "history", "keep"]).exits(0).prints(&[
        "Run keep of `deploy`: paused",
        "feedback",
        &keep.id,
        "pending",
    ]);
    let history = hitl(["--db", &db, "history", "keep", "--json"]).exits(0).json();
    let feedback = history
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["kind"] == json!("feedback"))
        .expect("the history shows the feedback step");
    assert_eq!(feedback["output"]["request"], json!(keep.id));

    hitl(["--db", &db, "cancel", "drop", "--reason", "wrong service"])
        .exits(0)
        .prints(&["Cancelled run drop (wrong service)"]);
    let cancelled = hitl(["--db", &db, "--json", "runs", "--status", "cancelled"])
        .exits(0)
        .json();
    assert_eq!(cancelled.as_array().unwrap().len(), 1);
    assert_eq!(cancelled[0]["cancel_reason"], json!("wrong service"));
    let shown = hitl(["--db", &db, "show", &drop_request.id, "--json"])
        .exits(0)
        .json();
    assert_eq!(shown["status"], json!("cancelled"));
    hitl(["--db", &db, "pending"])
        .exits(0)
        .prints(&[&keep.id, &notes.id]);

    let engine = application(&dir).await;
    assert_eq!(
        engine.wait("drop").await.unwrap(),
        Outcome::Cancelled {
            reason: "wrong service".into()
        }
    );
    assert_eq!(engine.run_info("keep").await.unwrap().status, RunStatus::Paused);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    stop(application(&dir).await, &dir).await;
    let db = db(&dir);

    hitl(["--db", &db, "show", "no-such-request"])
        .exits(1)
        .complains(&[
            "no request has an id that is, starts with or ends with `no-such-request`",
            "`hitl pending`",
        ]);
    hitl([
        "--db",
        &db,
        "respond",
        "no-such-request",
        "--as",
        "alice",
        "--approve",
    ])
    .exits(1);
    hitl(["--db", &db, "history", "no-such-run"])
        .exits(1)
        .complains(&[
            "no run has an id that is, starts with or ends with `no-such-run`",
            "`hitl runs`",
        ]);
    hitl(["--db", &db, "cancel", "no-such-run"]).exits(1);
    hitl(["--db", &db, "pending"])
        .exits(0)
        .prints(&["No pending requests."]);
    hitl(["--db", &db, "runs"]).exits(0).prints(&["No runs."]);
}

#[test]
fn usage_mistakes_exit_2_before_anything_is_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db(tmp.path());
    let url = "http://127.0.0.1:9";

    hitl(["pending"]).exits(2).complains(&["--url URL", "--db DIR"]);
    hitl(["--db", &db, "--url", url, "pending"])
        .exits(2)
        .complains(&["`--db` and `--url` are exclusive"]);
    hitl(["--db", &db, "--token", "t", "pending"])
        .exits(2)
        .complains(&["`--token` is for `--url`"]);
    hitl(["--db", &db, "respond", "r", "--approve"])
        .exits(2)
        .complains(&["needs `--as NAME`"]);
    hitl(["--url", url, "respond", "r", "--approve", "--as", "alice"])
        .exits(2)
        .complains(&["`--as` is only for `--db`"]);
    hitl(["--db", &db, "respond", "r", "--as", "alice"]).exits(2);
    hitl([
        "--db",
        &db,
        "respond",
        "r",
        "--as",
        "alice",
        "--approve",
        "--reject",
    ])
    .exits(2);
    hitl([
        "--db", &db, "respond", "r", "--as", "alice", "--text", "x", "--select", "y",
    ])
    .exits(2);
    hitl([
        "--db",
        &db,
        "respond",
        "r",
        "--as",
        "alice",
        "--text",
        "x",
        "--comment",
        "c",
    ])
    .exits(2);
    hitl([
        "--db",
        &db,
        "respond",
        "r",
        "--as",
        "alice",
        "--value",
        "{not json",
    ])
    .exits(2)
    .complains(&["not valid JSON"]);
    hitl(["--db", &db, "runs", "--status", "sleeping"]).exits(2);
    hitl(["--db", &db, "serve"]).exits(2);
    hitl(["--url", "not a url", "pending"])
        .exits(2)
        .complains(&["is not a server URL"]);
    // Nothing was created in the directory.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    // A URL from the environment gives way to `--db` on the command line.
    cli_support::hitl_with_env(["--db", &db, "pending"], &[("HITL_URL", url)])
        .exits(4)
        .complains(&["is not a hitl database"]);
    hitl(["--help"])
        .exits(0)
        .prints(&["pending", "respond", "Exit codes"]);
}

#[test]
fn a_database_that_cannot_be_opened_or_a_server_that_cannot_be_reached_exits_4() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = db(&tmp.path().join("missing"));
    hitl(["--db", &missing, "pending"])
        .exits(4)
        .complains(&["does not exist"]);
    assert!(
        !tmp.path().join("missing").exists(),
        "the CLI never creates a database"
    );

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    hitl(["--db", &db(&empty), "runs"])
        .exits(4)
        .complains(&["is not a hitl database"]);
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "nothing written to it"
    );

    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("hitl.json"), r#"{"format": "postgres", "version": 1}"#).unwrap();
    hitl(["--db", &db(&other), "pending"])
        .exits(4)
        .complains(&["is not a hitl database"]);

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    hitl(["--url", &url, "pending"])
        .exits(4)
        .complains(&["cannot reach the hitl server", "--db DIR"]);
    cli_support::hitl_with_env(["respond", "r", "--approve"], &[("HITL_URL", &url)]).exits(4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_collects_one_vote_per_responder_offline() {
    #[workflow(inject_context)]
    async fn two_keys(ctx: &TaskContext) -> hitl::Result<String> {
        let answer = ctx
            .request_feedback(
                Feedback::approval("Rotate the root key?")
                    .responders(["alice", "bob", "carol"])
                    .quorum(2),
            )
            .await?;
        Ok(format!(
            "{} after {} votes",
            answer.approved(),
            answer.votes().len()
        ))
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let engine = Engine::builder()
        .path(&dir)
        .register(two_keys)
        .open()
        .await
        .unwrap();
    let request = paused(&engine.start_with_id(two_keys, "rotate", ()).await.unwrap()).await;
    stop(engine, &dir).await;
    let db = db(&dir);

    hitl(["--db", &db, "respond", &request.id, "--as", "alice", "--approve"])
        .exits(0)
        .prints(&["Vote recorded", "1 of 2 approvals", "stays open"]);
    hitl(["--db", &db, "show", &request.id])
        .exits(0)
        .prints(&["Quorum    2 approvals (alice approved)", "pending"]);
    hitl(["--db", &db, "respond", &request.id, "--as", "alice", "--approve"])
        .exits(3)
        .complains(&["`alice` already voted", "(1 of 2 approvals)"]);
    hitl(["--db", &db, "respond", &request.id, "--as", "bob", "--approve"])
        .exits(0)
        .prints(&["approved by bob"]);

    let engine = Engine::builder()
        .path(&dir)
        .register(two_keys)
        .open()
        .await
        .unwrap();
    assert_eq!(
        engine.wait("rotate").await.unwrap(),
        Outcome::Completed(json!("true after 2 votes"))
    );
    engine.close().await.unwrap();
}

/// Asserts that nothing the binary printed points at a Rust API call.
#[track_caller]
fn speaks_cli(ran: &cli_support::Ran) {
    for rust in ["engine.", "Engine::", ".register(", "builder()"] {
        assert!(
            !ran.stderr.contains(rust) && !ran.stdout.contains(rust),
            "`hitl {}` points a CLI user at `{rust}`:\n{}{}",
            ran.args.join(" "),
            ran.stdout,
            ran.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_can_be_shortened_to_a_unique_prefix_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let engine = application(&dir).await;
    let api = paused(
        &engine
            .start_with_id(deploy, "deploy-api", ("api".into(),))
            .await
            .unwrap(),
    )
    .await;
    paused(
        &engine
            .start_with_id(deploy, "deploy-web", ("web".into(),))
            .await
            .unwrap(),
    )
    .await;
    stop(engine, &dir).await;
    let db = db(&dir);
    // hitl's ids start with the time (UUID v7): the two requests' first characters are the
    // same, and their last ones tell them apart.
    let short = &api.id[api.id.len() - 8..];

    hitl(["--db", &db, "show", short]).exits(0).prints(&[
        &format!("Request   {}", api.id),
        "Deploy api to production?",
        &format!("hitl --db {db} --as NAME respond {} --approve", api.id),
    ]);
    hitl(["--db", &db, "history", "deploy-a"])
        .exits(0)
        .prints(&["Run deploy-api of `deploy`: paused"]);
    hitl(["--db", &db, "pending", "--run", "deploy-w"])
        .exits(0)
        .prints(&["deploy-web"]);

    let ambiguous = hitl(["--db", &db, "cancel", "depl"]);
    ambiguous
        .exits(1)
        .complains(&["`depl` is the start of 2 run ids", "deploy-api, deploy-web"]);
    speaks_cli(&ambiguous);
    hitl(["--db", &db, "history", "dep"])
        .exits(1)
        .complains(&["at least its first or last 4 characters"]);
    let unknown = hitl(["--db", &db, "show", "zzzz-nothing"]);
    unknown.exits(1).complains(&["`hitl pending`"]);
    speaks_cli(&unknown);
    let not_a_db = hitl(["--db", tmp.path().to_str().unwrap(), "pending"]);
    not_a_db.exits(4).complains(&["holds `hitl.json`"]);
    speaks_cli(&not_a_db);

    hitl(["--db", &db, "respond", short, "--as", "alice", "--approve"])
        .exits(0)
        .prints(&[&api.id, "approved by alice"]);
    let engine = application(&dir).await;
    assert_eq!(
        engine.wait("deploy-api").await.unwrap(),
        Outcome::Completed(json!("approved by alice: -"))
    );
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_a_timer_deadline_as_a_time() {
    #[workflow(inject_context)]
    async fn nap(ctx: &TaskContext) -> hitl::Result<()> {
        ctx.sleep(Duration::from_secs(3_600)).await;
        Ok(())
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let engine = Engine::builder()
        .path(&dir)
        .clock(ManualClock::new(start))
        .register(nap)
        .open()
        .await
        .unwrap();
    engine.start_with_id(nap, "nap", ()).await.unwrap();
    // The run is asleep once its timer step is journaled (the manual clock never moves).
    let patience = tokio::time::Instant::now() + PATIENCE;
    while !engine
        .history("nap")
        .await
        .unwrap()
        .iter()
        .any(|step| step.kind == hitl::StepKind::Sleep)
    {
        assert!(
            tokio::time::Instant::now() < patience,
            "the run never went to sleep"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop(engine, &dir).await;

    let deadline = humantime::format_rfc3339_seconds(start + Duration::from_secs(3_600)).to_string();
    let ran = hitl(["--db", &db(&dir), "history", "nap"]);
    ran.exits(0).prints(&["sleep", &format!("until {deadline}")]);
    let epoch_ms = (1_800_000_000u64 + 3_600) * 1_000;
    assert!(!ran.stdout.contains(&epoch_ms.to_string()), "{}", ran.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_shows_every_stored_record_as_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let engine = application(&dir).await;
    let run = engine
        .start_with_id(deploy, "deploy-api", ("api".into(),))
        .await
        .unwrap();
    let request = paused(&run).await;
    drop(run);
    stop(engine, &dir).await;
    let db = db(&dir);

    let ran = hitl(["--db", &db, "dump"]);
    ran.exits(0);
    let lines = ran.json_lines();
    assert_eq!(lines[0], json!({ "format": "hitl", "version": 4 }));
    let of = |tree: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|line| line["tree"] == json!(tree)).collect()
    };
    let runs = of("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["record"]["id"], json!("deploy-api"));
    assert_eq!(runs[0]["record"]["status"], json!("paused"));
    assert_eq!(runs[0]["record"]["input"], json!({ "service": "api" }));
    let requests = of("requests");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["record"]["id"], json!(request.id));
    assert_eq!(
        requests[0]["record"]["prompt"],
        json!("Deploy api to production?")
    );
    assert_eq!(
        of("pending"),
        [&json!({ "tree": "pending", "run_id": "deploy-api", "request_id": request.id })]
    );
    let journal = of("journal");
    assert!(
        journal
            .iter()
            .any(|line| line["record"]["k"] == json!("feedback") && line["run_id"] == json!("deploy-api")),
        "the waiting feedback step is in the journal: {journal:?}"
    );
    assert!(lines.iter().all(|line| line.get("error").is_none()), "{lines:?}");

    hitl(["--url", "http://127.0.0.1:9", "dump"])
        .exits(2)
        .complains(&["hitl --db DIR dump"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_runs_prints_the_unfinished_runs_and_decide_refuses_a_run_that_is_not_blocked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let engine = application(&dir).await;
    let run = engine
        .start_with_id(deploy, "deploy-export", ("api".into(),))
        .await
        .unwrap();
    paused(&run).await;
    drop(run);
    stop(engine, &dir).await;
    let db = db(&dir);

    let export = hitl(["--db", &db, "export-runs", "--redact"]).exits(0).json();
    assert_eq!(export["format"], json!("hitl.runs"));
    assert_eq!(export["version"], json!(1));
    assert_eq!(export["redacted"], json!(true));
    assert_eq!(export["runs"][0]["run"]["id"], json!("deploy-export"));
    assert!(
        export["runs"][0]["journal"]
            .as_array()
            .is_some_and(|steps| !steps.is_empty())
    );
    hitl::engine::RunExport::from_json(&export.to_string()).expect("the export reads back");

    hitl([
        "--db",
        &db,
        "decide",
        "deploy-export",
        "--cancel",
        "--reason",
        "x",
    ])
    .exits(2)
    .complains(&["needs `--as NAME`"]);
    hitl([
        "--db",
        &db,
        "decide",
        "deploy-export",
        "--cancel",
        "--reason",
        "x",
        "--as",
        "ops",
    ])
    .exits(3)
    .complains(&["is paused, not blocked"]);
    hitl(["--db", &db, "runs", "--status", "blocked"]).exits(0);
}
