//! The JSON API against a real server on a loopback port: every endpoint, every status code,
//! the wire format scripts and the CLI rely on, and who is recorded as the responder.

mod server_common;

use hitl::RequestStatus;
use hitl::prelude::*;
use serde_json::{Value, json};
use server_common::*;

fn is_rfc3339_utc(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| text.ends_with('Z') && humantime::parse_rfc3339(text).is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_credentials_and_everything_else_does() {
    let server = start().await;
    let health = get(&format!("{}/health", server.url), None).await;
    assert_eq!((health.status, health.json()), (200, json!({"status": "ok"})));

    for path in [
        "/api/requests",
        "/api/requests/x",
        "/api/runs",
        "/api/runs/x",
        "/api/runs/x/history",
        "/api/openapi.json",
    ] {
        let missing = get(&format!("{}{path}", server.url), None).await;
        assert_eq!(missing.status, 401, "{path}: {}", missing.text);
        assert_eq!(missing.code(), "unauthorized");
        assert_eq!(missing.headers["www-authenticate"], "Bearer");
        let wrong = get(&format!("{}{path}", server.url), Some("not-a-token")).await;
        assert_eq!(
            (wrong.status, wrong.code().as_str()),
            (401, "unauthorized"),
            "{path}"
        );
    }
    let wrong_method = send(
        client()
            .put(format!("{}/api/requests", server.url))
            .bearer_auth(ALICE),
    )
    .await;
    assert_eq!(
        (wrong_method.status, wrong_method.code().as_str()),
        (405, "method_not_allowed")
    );
    for path in ["/api/requests/x/respond", "/api/runs/x/cancel"] {
        let reply = post(&format!("{}{path}", server.url), None, "{}").await;
        assert_eq!(reply.status, 401, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_endpoint_and_the_wire_types() {
    let server = start().await;
    let reply = get(&format!("{}/api/openapi.json", server.url), Some(ALICE)).await;
    assert_eq!(reply.status, 200);
    let document = reply.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/health", "get"),
        ("/api/openapi.json", "get"),
        ("/api/requests", "get"),
        ("/api/requests/{id}", "get"),
        ("/api/requests/{id}/respond", "post"),
        ("/api/runs", "get"),
        ("/api/runs/{id}", "get"),
        ("/api/runs/{id}/history", "get"),
        ("/api/runs/{id}/cancel", "post"),
    ] {
        assert!(document["paths"][path][method].is_object(), "{path} {method}");
    }
    let schemas = &document["components"]["schemas"];
    for name in [
        "Request",
        "Response",
        "RequestStatus",
        "FeedbackKind",
        "RunInfo",
        "RunStatus",
        "HistoryEntry",
        "ErrorBody",
    ] {
        assert!(schemas[name].is_object(), "schema {name}");
    }
    assert_eq!(
        schemas["RequestStatus"]["enum"],
        json!(["pending", "answered", "expired", "cancelled"])
    );
    assert_eq!(
        document["paths"]["/api/requests/{id}/respond"]["post"]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        [
            "200", "400", "401", "403", "404", "409", "410", "413", "422", "500", "503"
        ]
    );
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_listed_and_shown_in_the_wire_format() {
    let server = start().await;
    let (selection_run, selection) = server.ask("selection").await;
    let (_, approval) = server.ask("approval").await;

    let all = get(&format!("{}/api/requests", server.url), Some(BOB)).await;
    assert_eq!(all.status, 200);
    let listed = all.json();
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let one = get(
        &format!("{}/api/requests/{}", server.url, selection.id),
        Some(BOB),
    )
    .await;
    assert_eq!(one.status, 200);
    let wire = one.json();
    assert_eq!(wire["id"], selection.id.as_str());
    assert_eq!(wire["run_id"], selection_run.id());
    assert_eq!(wire["workflow"], "ask");
    assert_eq!(wire["kind"], "selection");
    assert_eq!(wire["prompt"], "Which region first?");
    assert_eq!(wire["status"], "pending");
    assert_eq!(wire["options"], json!(["eu-west", "us-east", "ap-south"]));
    assert!(is_rfc3339_utc(&wire["created_at"]), "{wire}");
    assert!(wire.get("answer").is_none());

    let by_run = get(
        &format!(
            "{}/api/requests?status=pending&run={}",
            server.url,
            selection_run.id()
        ),
        Some(BOB),
    )
    .await;
    let ids: Vec<String> = by_run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|request| request["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, std::slice::from_ref(&selection.id));

    let empty_filters = get(
        &format!("{}/api/requests?status=&workflow=&run=", server.url),
        Some(BOB),
    )
    .await;
    assert_eq!(
        empty_filters.json().as_array().unwrap().len(),
        2,
        "empty values filter nothing"
    );
    let other_workflow = get(&format!("{}/api/requests?workflow=nope", server.url), Some(BOB)).await;
    assert_eq!(other_workflow.json(), json!([]));

    // Answered requests leave `pending` and show up under `answered`, with the answer.
    let answered = post(
        &format!("{}/api/requests/{}/respond", server.url, approval.id),
        Some(BOB),
        r#"{"approved": true, "comment": "ship it"}"#,
    )
    .await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    let pending = get(&format!("{}/api/requests?status=pending", server.url), Some(BOB)).await;
    assert_eq!(pending.json().as_array().unwrap().len(), 1);
    let done = get(&format!("{}/api/requests?status=answered", server.url), Some(BOB)).await;
    let done = done.json();
    assert_eq!(done[0]["id"], approval.id.as_str());
    assert_eq!(done[0]["answer"]["approved"], true);
    assert_eq!(done[0]["answer"]["comment"], "ship it");
    assert_eq!(done[0]["answer"]["responder"], "bob");
    assert!(is_rfc3339_utc(&done[0]["answer"]["answered_at"]));

    let unknown = get(&format!("{}/api/requests/no-such-request", server.url), Some(BOB)).await;
    assert_eq!((unknown.status, unknown.code().as_str()), (404, "not_found"));
    let bad_status = get(&format!("{}/api/requests?status=open", server.url), Some(BOB)).await;
    assert_eq!(bad_status.status, 400);
    assert!(
        bad_status.message().contains("pending"),
        "{}",
        bad_status.message()
    );
    let bad_param = get(&format!("{}/api/requests?state=pending", server.url), Some(BOB)).await;
    assert_eq!(
        (bad_param.status, bad_param.code().as_str()),
        (400, "bad_request")
    );
    let unknown_endpoint = get(&format!("{}/api/nothing", server.url), Some(BOB)).await;
    assert_eq!(unknown_endpoint.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_answered_through_the_api_as_the_token_s_responder() {
    let server = start().await;
    let cases = [
        (
            "approval",
            json!({"approved": false, "comment": "not today"}),
            "approved=false comment=Some(\"not today\") by alice",
        ),
        (
            "text",
            json!({"text": "Faster builds"}),
            "text=\"Faster builds\" by alice",
        ),
        (
            "selection",
            json!({"selected": "us-east"}),
            "selected=us-east by alice",
        ),
        (
            "multi",
            json!({"selected": ["chat", "email"]}),
            "selected=[\"email\", \"chat\"] by alice",
        ),
        (
            "input",
            json!({"value": {"amount": 990, "reason": "broken", "currency": "USD", "urgent": true}}),
            "value=Refund { amount: 990, reason: \"broken\", currency: Usd, urgent: true } by alice",
        ),
    ];
    for (kind, body, outcome) in cases {
        let (run, request) = server.ask(kind).await;
        let reply = post(
            &format!("{}/api/requests/{}/respond", server.url, request.id),
            Some(ALICE),
            body.to_string(),
        )
        .await;
        assert_eq!(reply.status, 200, "{kind}: {}", reply.text);
        let wire = reply.json();
        assert_eq!(wire["status"], "answered", "{kind}");
        assert_eq!(wire["answer"]["responder"], "alice", "{kind}");
        assert_eq!(server.completes(&run).await, outcome, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_answers_get_their_status_code_and_change_nothing() {
    let server = start().await;
    let (_, text) = server.ask("text").await;
    let (_, only_alice) = server.ask("alice_only").await;
    let respond = |id: &str| format!("{}/api/requests/{id}/respond", server.url);

    // 422: fails validation, and the message names the problem.
    let before = server.snapshot(&text.id).await;
    let short = post(&respond(&text.id), Some(ALICE), r#"{"text": "Hi"}"#).await;
    assert_eq!((short.status, short.code().as_str()), (422, "invalid_answer"));
    assert!(
        short.message().contains("at least 5 characters"),
        "{}",
        short.message()
    );
    assert_eq!(server.snapshot(&text.id).await, before);

    // 403: a responder the request does not allow.
    let before = server.snapshot(&only_alice.id).await;
    let bob = post(&respond(&only_alice.id), Some(BOB), r#"{"approved": true}"#).await;
    assert_eq!((bob.status, bob.code().as_str()), (403, "forbidden"));
    assert!(
        bob.message().contains("`bob` may not answer"),
        "{}",
        bob.message()
    );
    assert_eq!(server.snapshot(&only_alice.id).await, before);

    // 413: a body over the limit.
    let huge = format!(r#"{{"text": "{}"}}"#, "A".repeat(BODY_LIMIT * 2));
    let too_large = post(&respond(&text.id), Some(ALICE), huge).await;
    assert_eq!(
        (too_large.status, too_large.code().as_str()),
        (413, "payload_too_large")
    );
    assert_eq!(
        server.engine.request(&text.id).await.unwrap().status,
        RequestStatus::Pending
    );

    // 404: an unknown request.
    let unknown = post(&respond("nope"), Some(ALICE), r#"{"approved": true}"#).await;
    assert_eq!((unknown.status, unknown.code().as_str()), (404, "not_found"));

    // 200, then 409 for the second answer.
    let first = post(&respond(&only_alice.id), Some(ALICE), r#"{"approved": true}"#).await;
    assert_eq!(first.status, 200);
    let after = server.snapshot(&only_alice.id).await;
    let second = post(&respond(&only_alice.id), Some(ALICE), r#"{"approved": false}"#).await;
    assert_eq!((second.status, second.code().as_str()), (409, "already_answered"));
    assert_eq!(server.snapshot(&only_alice.id).await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_and_expired_requests_are_gone() {
    let server = start().await;
    let (run, cancelled) = server.ask("free_text").await;
    let cancel = post(
        &format!("{}/api/runs/{}/cancel", server.url, run.id()),
        Some(CAROL),
        r#"{"reason": "superseded"}"#,
    )
    .await;
    assert_eq!(cancel.status, 200, "{}", cancel.text);
    assert_eq!(cancel.json()["status"], "cancelled");
    assert_eq!(cancel.json()["cancel_reason"], "superseded (cancelled by carol)");
    let gone = post(
        &format!("{}/api/requests/{}/respond", server.url, cancelled.id),
        Some(ALICE),
        r#"{"text": "too late"}"#,
    )
    .await;
    assert_eq!((gone.status, gone.code().as_str()), (410, "request_cancelled"));
    assert_eq!(
        server.engine.request(&cancelled.id).await.unwrap().status,
        RequestStatus::Cancelled
    );

    let (expiring_run, expiring) = server.ask("expiring").await;
    // The run ends only once its request expired (the expiry resumes it).
    hitl_workspace::patiently("the expiring request's run ends", expiring_run.wait())
        .await
        .unwrap();
    assert_eq!(
        server.engine.request(&expiring.id).await.unwrap().status,
        RequestStatus::Expired
    );
    let expired = post(
        &format!("{}/api/requests/{}/respond", server.url, expiring.id),
        Some(ALICE),
        r#"{"approved": true}"#,
    )
    .await;
    assert_eq!(
        (expired.status, expired.code().as_str()),
        (410, "request_expired")
    );
    let listed = get(
        &format!("{}/api/requests?status=expired", server.url),
        Some(ALICE),
    )
    .await;
    assert_eq!(listed.json()[0]["id"], expiring.id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_their_history_and_cancelling_them() {
    let server = start().await;
    let (paused_run, _) = server.ask("selection").await;
    let (answered_run, request) = server.ask("free_text").await;
    server
        .engine
        .respond(&request.id, Response::text("done"), Responder::new("alice"))
        .await
        .unwrap();
    server.completes(&answered_run).await;

    let runs = get(&format!("{}/api/runs", server.url), Some(ALICE)).await;
    assert_eq!(runs.status, 200);
    assert_eq!(runs.json().as_array().unwrap().len(), 2);
    let completed = get(&format!("{}/api/runs?status=completed", server.url), Some(ALICE)).await;
    let completed = completed.json();
    assert_eq!(completed.as_array().unwrap().len(), 1);
    assert_eq!(completed[0]["id"], answered_run.id());
    assert_eq!(completed[0]["workflow"], "ask");
    assert_eq!(completed[0]["status"], "completed");
    let paused = get(
        &format!("{}/api/runs?status=paused&workflow=ask", server.url),
        Some(ALICE),
    )
    .await;
    assert_eq!(paused.json()[0]["id"], paused_run.id());
    let bad = get(&format!("{}/api/runs?status=sleeping", server.url), Some(ALICE)).await;
    assert_eq!(bad.status, 400);

    let one = get(
        &format!("{}/api/runs/{}", server.url, answered_run.id()),
        Some(ALICE),
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["output"], "text=\"done\" by alice");
    let missing = get(&format!("{}/api/runs/nope", server.url), Some(ALICE)).await;
    assert_eq!((missing.status, missing.code().as_str()), (404, "not_found"));

    let history = get(
        &format!("{}/api/runs/{}/history", server.url, answered_run.id()),
        Some(ALICE),
    )
    .await;
    assert_eq!(history.status, 200);
    let history = history.json();
    let feedback = history
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["kind"] == "feedback")
        .expect("the feedback step is in the history");
    assert_eq!(feedback["status"], "completed");
    assert_eq!(feedback["output"]["resolution"]["responder"], "alice");
    let missing = get(&format!("{}/api/runs/nope/history", server.url), Some(ALICE)).await;
    assert_eq!(missing.status, 404);

    // Cancel: 200 with the cancelled run (no body needed), 409 once finished, 404 unknown,
    // 400 for a malformed body, which cancels nothing.
    let malformed = post(
        &format!("{}/api/runs/{}/cancel", server.url, paused_run.id()),
        Some(ALICE),
        r#"{"why": "x"}"#,
    )
    .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(
        server.engine.run_info(paused_run.id()).await.unwrap().status,
        RunStatus::Paused
    );
    let cancelled = post(
        &format!("{}/api/runs/{}/cancel", server.url, paused_run.id()),
        Some(ALICE),
        "",
    )
    .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.json()["status"], "cancelled");
    assert_eq!(cancelled.json()["cancel_reason"], "cancelled by alice");
    let again = post(
        &format!("{}/api/runs/{}/cancel", server.url, paused_run.id()),
        Some(ALICE),
        "",
    )
    .await;
    assert_eq!((again.status, again.code().as_str()), (409, "run_finished"));
    let finished = post(
        &format!("{}/api/runs/{}/cancel", server.url, answered_run.id()),
        Some(ALICE),
        "",
    )
    .await;
    assert_eq!(finished.status, 409);
    let unknown = post(&format!("{}/api/runs/nope/cancel", server.url), Some(ALICE), "").await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_takes_one_vote_per_responder_through_the_api() {
    let server = start().await;
    let (run, request) = server.ask("quorum").await;
    let respond = format!("{}/api/requests/{}/respond", server.url, request.id);
    let first = post(&respond, Some(ALICE), r#"{"approved": true}"#).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["status"], "pending", "one approval of two");
    let twice = post(&respond, Some(ALICE), r#"{"approved": true}"#).await;
    assert_eq!(twice.status, 409);
    let second = post(&respond, Some(CAROL), r#"{"approved": true}"#).await;
    assert_eq!(second.json()["status"], "answered");
    assert_eq!(server.completes(&run).await, "approved=true votes=2");
}
