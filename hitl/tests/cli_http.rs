//! The `hitl` binary against a running application's server (`--url`, `--token`): the
//! application embeds `hitl::server` on a loopback port, an operator answers with the CLI,
//! and the run resumes at once. Every exit code the server's statuses map to is covered.

mod cli_support;

use std::path::Path;

use cli_support::{
    PATIENCE, Ran, application, deploy, paused, pick_checks, pick_region, refund, release_notes, stop,
};
use hitl::prelude::*;
use hitl::server::ServerConfig;
use serde_json::json;

/// A running application: its engine, and its server on a loopback port.
struct App {
    engine: Engine,
    url: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl App {
    /// Opens `dir` with every test workflow and serves it with three operators' tokens.
    async fn start(dir: &Path) -> App {
        let engine = application(dir).await;
        let config = ServerConfig::new()
            .token("alice", "token-of-alice")
            .token("bob", "token-of-bob")
            .token("mallory", "token-of-mallory");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(hitl::server::serve_with(listener, engine.clone(), config));
        App { engine, url, server }
    }

    /// `hitl --url URL --token token-of-<who> args…`, off the runtime that serves it.
    async fn hitl_as(&self, who: &str, args: &[&str]) -> Ran {
        let mut all = vec!["--url".to_owned(), self.url.clone()];
        if !who.is_empty() {
            all.extend(["--token".to_owned(), format!("token-of-{who}")]);
        }
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        tokio::task::spawn_blocking(move || cli_support::hitl(all))
            .await
            .unwrap()
    }

    /// `hitl args…` with the server and token taken from `HITL_URL` and `HITL_TOKEN`.
    async fn hitl_from_env(&self, token: &str, args: &[&str]) -> Ran {
        let env = [
            ("HITL_URL".to_owned(), self.url.clone()),
            ("HITL_TOKEN".to_owned(), token.to_owned()),
        ];
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            cli_support::hitl_with_env(args, &env)
        })
        .await
        .unwrap()
    }

    /// Stops the server and the engine, as a stopped process would.
    async fn stop(self, dir: &Path) {
        self.server.abort();
        let _ = self.server.await;
        stop(self.engine, dir).await;
    }
}

async fn wait(engine: &Engine, run_id: &str) -> Outcome<serde_json::Value> {
    tokio::time::timeout(PATIENCE, engine.wait(run_id))
        .await
        .expect("the run finishes")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_approves_over_http_and_the_run_resumes_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let app = App::start(&dir).await;
    let request = paused(
        &app.engine
            .start_with_id(deploy, "deploy-api", ("api".into(),))
            .await
            .unwrap(),
    )
    .await;

    app.hitl_as("alice", &["pending"]).await.exits(0).prints(&[
        &request.id,
        "deploy-api",
        "approval",
        "Deploy api to production?",
    ]);
    let listed = app.hitl_as("alice", &["pending", "--json"]).await.exits(0).json();
    assert_eq!(
        listed,
        json!([serde_json::to_value(app.engine.request(&request.id).await.unwrap()).unwrap()])
    );
    app.hitl_from_env("token-of-bob", &["show", &request.id])
        .await
        .exits(0)
        .prints(&["Deploy api to production?", "Canary error rate", "alice, bob"]);

    // The responder is the one the token names.
    app.hitl_as(
        "alice",
        &["respond", &request.id, "--approve", "--comment", "ship it"],
    )
    .await
    .exits(0)
    .prints(&["approved (\"ship it\") by alice"]);
    assert_eq!(
        wait(&app.engine, "deploy-api").await,
        Outcome::Completed(json!("approved by alice: ship it"))
    );
    app.hitl_as("bob", &["pending"])
        .await
        .exits(0)
        .prints(&["No pending requests."]);
    let over_http = app
        .hitl_as("bob", &["show", &request.id, "--json"])
        .await
        .exits(0)
        .json();
    assert_eq!(over_http["answer"]["responder"], json!("alice"));

    // Both modes print the same objects.
    app.stop(&dir).await;
    let db = dir.to_str().unwrap();
    let offline = cli_support::hitl(["--db", db, "show", &request.id, "--json"])
        .exits(0)
        .json();
    assert_eq!(offline, over_http);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_answer_over_http_resumes_its_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let app = App::start(&dir).await;
    let engine = &app.engine;
    let notes = paused(
        &engine
            .start_with_id(release_notes, "notes", ("3.0".into(),))
            .await
            .unwrap(),
    )
    .await;
    let region = paused(&engine.start_with_id(pick_region, "region", ()).await.unwrap()).await;
    let checks = paused(&engine.start_with_id(pick_checks, "checks", ()).await.unwrap()).await;
    let refund_request = paused(
        &engine
            .start_with_id(refund, "refund", ("C-9".into(),))
            .await
            .unwrap(),
    )
    .await;

    app.hitl_as("bob", &["respond", &notes.id, "--text", "A calmer release."])
        .await
        .exits(0);
    app.hitl_as("bob", &["respond", &region.id, "--select", "us-east"])
        .await
        .exits(0);
    // One `--select` on a multi-selection is a one-element list.
    app.hitl_as("bob", &["respond", &checks.id, "--select", "unit"])
        .await
        .exits(0)
        .prints(&["unit by bob"]);
    let answered = app
        .hitl_as(
            "bob",
            &[
                "respond",
                &refund_request.id,
                "--json",
                "--value",
                r#"{"amount": 5, "reason": "dent"}"#,
            ],
        )
        .await
        .exits(0)
        .json();
    assert_eq!(
        answered["answer"]["value"],
        json!({"amount": 5, "reason": "dent"})
    );
    assert_eq!(answered["answer"]["responder"], json!("bob"));

    assert_eq!(
        wait(engine, "notes").await,
        Outcome::Completed(json!("A calmer release."))
    );
    assert_eq!(wait(engine, "region").await, Outcome::Completed(json!("us-east")));
    assert_eq!(wait(engine, "checks").await, Outcome::Completed(json!(["unit"])));
    assert_eq!(
        wait(engine, "refund").await,
        Outcome::Completed(json!("C-9: 5 (dent)"))
    );
    app.stop(&dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_the_server_refuses_exit_3_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let app = App::start(&dir).await;
    let engine = &app.engine;
    let approval = paused(
        &engine
            .start_with_id(deploy, "deploy", ("db".into(),))
            .await
            .unwrap(),
    )
    .await;
    let text = paused(
        &engine
            .start_with_id(release_notes, "notes", ("4.0".into(),))
            .await
            .unwrap(),
    )
    .await;
    let region = paused(&engine.start_with_id(pick_region, "region", ()).await.unwrap()).await;

    // 422: the answer fails validation.
    app.hitl_as("alice", &["respond", &text.id, "--text", "short"])
        .await
        .exits(3)
        .complains(&["at least 10 characters", "422"]);
    app.hitl_as("alice", &["respond", &region.id, "--select", "moon"])
        .await
        .exits(3)
        .complains(&["`moon` is not one of the options offered", "422"]);
    // 403: a responder the request does not allow.
    app.hitl_as("mallory", &["respond", &approval.id, "--approve"])
        .await
        .exits(3)
        .complains(&["`mallory` may not answer", "403"]);
    // Refused before sending: the flag does not fit the kind.
    app.hitl_as("alice", &["respond", &approval.id, "--select", "yes"])
        .await
        .exits(3)
        .complains(&["is an approval request", "--approve | --reject"]);
    for request in [&approval, &text, &region] {
        assert_eq!(
            engine.request(&request.id).await.unwrap().status,
            hitl::RequestStatus::Pending
        );
    }

    // 409: the first answer won.
    app.hitl_as(
        "bob",
        &["respond", &approval.id, "--reject", "--comment", "not today"],
    )
    .await
    .exits(0);
    app.hitl_as("alice", &["respond", &approval.id, "--approve"])
        .await
        .exits(3)
        .complains(&["already been answered", "409"]);
    assert_eq!(
        wait(engine, "deploy").await,
        Outcome::Completed(json!("rejected by bob: not today"))
    );
    // 410: the request was cancelled with its run; 409: the run has finished.
    app.hitl_as("alice", &["cancel", "notes", "--reason", "release postponed"])
        .await
        .exits(0)
        .prints(&["Cancelled run notes (release postponed (cancelled by alice))"]);
    app.hitl_as("alice", &["respond", &text.id, "--text", "long enough by now"])
        .await
        .exits(3)
        .complains(&["was cancelled", "410"]);
    app.hitl_as("alice", &["cancel", "deploy"])
        .await
        .exits(3)
        .complains(&["409"]);
    app.stop(&dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_history_and_cancel_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let app = App::start(&dir).await;
    let engine = &app.engine;
    let keep = paused(
        &engine
            .start_with_id(deploy, "keep", ("api".into(),))
            .await
            .unwrap(),
    )
    .await;
    paused(
        &engine
            .start_with_id(deploy, "drop", ("web".into(),))
            .await
            .unwrap(),
    )
    .await;

    let pending = app
        .hitl_as("alice", &["pending", "--run", "keep", "--json"])
        .await
        .exits(0)
        .json();
    assert_eq!(pending.as_array().unwrap().len(), 1);
    assert_eq!(pending[0]["id"], json!(keep.id));
    let pending = app
        .hitl_as("alice", &["pending", "--workflow", "deploy", "--json"])
        .await
        .exits(0)
        .json();
    assert_eq!(pending.as_array().unwrap().len(), 2);
    app.hitl_as("alice", &["runs"])
        .await
        .exits(0)
        .prints(&["keep", "drop", "deploy", "paused"]);
    let runs = app
        .hitl_as("alice", &["runs", "--status", "paused", "--json"])
        .await
        .exits(0)
        .json();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    app.hitl_as("alice", &["runs", "--status", "failed"])
        .await
        .exits(0)
        .prints(&["No runs."]);
    app.hitl_as("alice", &["history", "keep"])
        .await
        .exits(0)
        .prints(&["Run keep of `deploy`: paused", "feedback", &keep.id]);
    let history = app
        .hitl_as("alice", &["history", "keep", "--json"])
        .await
        .exits(0)
        .json();
    assert_eq!(
        history,
        serde_json::to_value(engine.history("keep").await.unwrap()).unwrap()
    );

    let cancelled = app
        .hitl_as("bob", &["cancel", "drop", "--json"])
        .await
        .exits(0)
        .json();
    assert_eq!(cancelled["status"], json!("cancelled"));
    assert_eq!(
        wait(engine, "drop").await,
        Outcome::Cancelled {
            reason: "cancelled by bob".into()
        }
    );
    assert_eq!(engine.run_info("keep").await.unwrap().status, RunStatus::Paused);
    app.stop(&dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_unknown_ids_exit_1_and_a_stopped_server_exits_4() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let app = App::start(&dir).await;
    let request = paused(
        &app.engine
            .start_with_id(deploy, "deploy", ("api".into(),))
            .await
            .unwrap(),
    )
    .await;

    // 401: no token, or a wrong one; the message says how to pass it.
    app.hitl_as("", &["pending"])
        .await
        .exits(1)
        .complains(&["401", "--token"]);
    app.hitl_as("eve", &["respond", &request.id, "--approve"])
        .await
        .exits(1)
        .complains(&["401", "HITL_TOKEN"]);
    // 404: said in the CLI's words (the server's names a Rust call).
    app.hitl_as("alice", &["show", "no-such-request"])
        .await
        .exits(1)
        .complains(&["no request has an id that is, starts with or ends with `no-such-request`"]);
    app.hitl_as("alice", &["history", "no-such-run"])
        .await
        .exits(1)
        .complains(&["no run has an id that is, starts with or ends with `no-such-run`"]);
    app.hitl_as("alice", &["cancel", "no-such-run"]).await.exits(1);
    assert_eq!(
        app.engine.request(&request.id).await.unwrap().status,
        hitl::RequestStatus::Pending
    );

    // While the application runs, its database is refused with the way out; once it has
    // stopped, its server is unreachable and the database opens.
    let db = dir.to_str().unwrap().to_owned();
    cli_support::hitl(["--db", &db, "pending"])
        .exits(4)
        .complains(&["in use by a running application", "--url"]);
    let url = app.url.clone();
    app.stop(&dir).await;
    cli_support::hitl(["--url", &url, "--token", "token-of-alice", "pending"])
        .exits(4)
        .complains(&["cannot reach the hitl server", "--db DIR"]);
    cli_support::hitl(["--db", &db, "pending"])
        .exits(0)
        .prints(&[&request.id]);
}

/// Retitles the terminal, clears it, moves the cursor up and overwrites the line, with a C1
/// CSI for terminals that take one.
const HOSTILE: &str = "fine\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[3A\r\u{9b}1mall green";

/// No byte a terminal acts on: ESC, BEL, CR, or a C1 control.
#[track_caller]
fn assert_inert(ran: &Ran) {
    for (name, text) in [("stdout", &ran.stdout), ("stderr", &ran.stderr)] {
        let raw: Vec<char> = text
            .chars()
            .filter(|&c| c.is_control() && c != '\n' && c != '\t')
            .collect();
        assert!(
            raw.is_empty(),
            "`hitl {}` wrote {raw:?} raw to {name}:\n{text}",
            ran.args.join(" ")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_escapes_in_answers_and_prompts_show_inert_and_json_keeps_them_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let app = App::start(&dir).await;
    let run = app
        .engine
        .start_with_id(deploy, "deploy-hostile", (HOSTILE.to_owned(),))
        .await
        .unwrap();
    let request = paused(&run).await;
    let escaped = r"fine\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[3A\u{d}\u{9b}1mall green";
    // Quoted answers are put on one line first: there the CR became a space.
    let quoted = r#"approved ("fine\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[3A \u{9b}1mall green") by alice"#;

    // The prompt (from the workflow's argument) in `pending` and `show`.
    let pending = app.hitl_as("alice", &["pending"]).await;
    assert_inert(pending.exits(0));
    let show = app.hitl_as("alice", &["show", &request.id]).await;
    assert_inert(
        show.exits(0)
            .prints(&[&format!("Deploy {escaped} to production?")]),
    );

    // A responder's comment, in what `respond` prints and in `show` and `history` after.
    let respond = app
        .hitl_as(
            "alice",
            &["respond", &request.id, "--approve", "--comment", HOSTILE],
        )
        .await;
    assert_inert(respond.exits(0).prints(&[quoted]));
    assert_eq!(
        wait(&app.engine, "deploy-hostile").await,
        Outcome::Completed(json!(format!("approved by alice: {HOSTILE}")))
    );
    let show = app.hitl_as("bob", &["show", &request.id]).await;
    assert_inert(show.exits(0).prints(&[quoted]));
    let history = app.hitl_as("bob", &["history", "deploy-hostile"]).await;
    assert_inert(
        history
            .exits(0)
            .prints(&["deploy-hostile", "approved", "by alice"]),
    );
    assert_inert(app.hitl_as("bob", &["runs"]).await.exits(0));

    // A cancel reason, in `cancel` and `runs`.
    let other = app
        .engine
        .start_with_id(deploy, "deploy-other", ("web".to_owned(),))
        .await
        .unwrap();
    paused(&other).await;
    let cancel = app
        .hitl_as("bob", &["cancel", "deploy-other", "--reason", HOSTILE])
        .await;
    assert_inert(cancel.exits(0).prints(&[escaped]));
    assert_inert(
        app.hitl_as("bob", &["runs"])
            .await
            .exits(0)
            .prints(&[&escaped[..30]]),
    );

    // An error quoting hostile text (here an id) goes to stderr escaped too.
    let unknown = app.hitl_as("bob", &["show", HOSTILE]).await;
    assert_inert(unknown.exits(1).complains(&[r"\u{1b}]0;owned\u{7}"]));

    // `--json` prints the stored values exactly (serde_json writes ESC as `\u001b`).
    let shown = app.hitl_as("bob", &["show", &request.id, "--json"]).await;
    assert_inert(shown.exits(0));
    let shown = shown.json();
    assert_eq!(shown["answer"]["comment"], json!(HOSTILE));
    assert_eq!(shown["prompt"], json!(format!("Deploy {HOSTILE} to production?")));
    assert_eq!(
        shown,
        serde_json::to_value(app.engine.request(&request.id).await.unwrap()).unwrap()
    );
    let runs = app.hitl_as("bob", &["runs", "--json"]).await;
    assert_inert(runs.exits(0));
    let cancelled = runs.json();
    let reason = cancelled
        .as_array()
        .unwrap()
        .iter()
        .find(|run| run["id"] == "deploy-other")
        .map(|run| run["cancel_reason"].clone());
    assert_eq!(reason, Some(json!(format!("{HOSTILE} (cancelled by bob)"))));
    drop((run, other)); // a run handle keeps the engine open
    app.stop(&dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_can_be_shortened_to_a_unique_prefix_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app.db");
    let app = App::start(&dir).await;
    let engine = &app.engine;
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
    // hitl's ids start with the time (UUID v7): the end of one tells it apart.
    let short = &api.id[api.id.len() - 6..];

    app.hitl_as("alice", &["show", short]).await.exits(0).prints(&[
        &format!("Request   {}", api.id),
        &format!("hitl respond {} --approve", api.id),
    ]);
    app.hitl_as("alice", &["history", "deploy-a"])
        .await
        .exits(0)
        .prints(&["Run deploy-api of `deploy`: paused"]);
    let ambiguous = app.hitl_as("alice", &["history", "deploy"]).await;
    ambiguous
        .exits(1)
        .complains(&["`deploy` is the start of 2 run ids", "deploy-api, deploy-web"]);
    let unknown = app
        .hitl_as("alice", &["respond", "zzzz-nothing", "--approve"])
        .await;
    unknown.exits(1).complains(&[
        "no request has an id that is, starts with or ends with `zzzz-nothing`",
        "`hitl pending`",
    ]);
    for ran in [&ambiguous, &unknown] {
        assert!(
            !ran.stderr.contains("engine.") && !ran.stderr.contains("Engine::"),
            "{}",
            ran.stderr
        );
    }

    app.hitl_as("alice", &["respond", short, "--approve"])
        .await
        .exits(0)
        .prints(&[&api.id, "approved by alice"]);
    assert_eq!(
        wait(engine, "deploy-api").await,
        Outcome::Completed(json!("approved by alice: -"))
    );
    app.stop(&dir).await;
}
