//! The OpenAPI document is exact: it is a well-formed OpenAPI 3.1 document, and a real
//! server on a loopback port answers every route with a status the document declares for it
//! and a body that validates against the declared schema — the errors included. Every status
//! the document declares is produced here, or listed in `NOT_REACHABLE` with the reason; the
//! request-body schemas accept exactly the bodies the server accepts, and the `status`
//! enums exactly the values it takes.

mod server_common;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use server_common::*;

/// Declared statuses no test can produce, with the reason.
const NOT_REACHABLE: &[(&str, &str)] = &[
    (
        "500",
        "a storage failure under a live server: sled offers no way to inject one, and the \
         failpoints feature kills the process instead",
    ),
    (
        "503",
        "`Error::Closed` comes from waiting on or starting runs, which no API call does, or from \
         a group-commit flush racing the engine's shutdown; after `Engine::close` the API's \
         reads and writes are still served, so no request can be made to meet it",
    ),
];

/// The document with validators for its schemas, and the statuses seen per operation.
struct Document {
    document: Value,
    validators: BTreeMap<String, jsonschema::Validator>,
    seen: BTreeSet<(String, String, String)>,
}

impl Document {
    fn new(document: Value) -> Self {
        Document {
            document,
            validators: BTreeMap::new(),
            seen: BTreeSet::new(),
        }
    }

    fn operation(&self, method: &str, path: &str) -> &Value {
        let operation = &self.document["paths"][path][method.to_lowercase()];
        assert!(operation.is_object(), "the document has no {method} {path}");
        operation
    }

    /// Whether `instance` validates against `schema`, whose `$ref`s point into
    /// `#/components/schemas`; the errors if not.
    fn validate(&mut self, schema: &Value, instance: &Value) -> Result<(), Vec<String>> {
        let key = schema.to_string();
        if !self.validators.contains_key(&key) {
            let root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": self.document["components"],
                "allOf": [schema],
            });
            let validator = jsonschema::draft202012::new(&root)
                .unwrap_or_else(|error| panic!("schema {schema} does not compile: {error}"));
            self.validators.insert(key.clone(), validator);
        }
        let errors: Vec<String> = self.validators[&key]
            .iter_errors(instance)
            .map(|error| format!("{error} at {}", error.instance_path()))
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// Asserts that `reply` to `method path` has a status the document declares there, is
    /// JSON, and validates against the declared schema; records the status as seen.
    #[track_caller]
    fn check(&mut self, method: &str, path: &str, reply: &Reply) {
        let status = reply.status.to_string();
        let declared = self.operation(method, path)["responses"][&status].clone();
        assert!(
            declared.is_object(),
            "{method} {path} answered {status}, which the document does not declare: {}",
            reply.text
        );
        let content_type = reply.headers["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path} {status}: {content_type}"
        );
        let content = &declared["content"]["application/json"];
        assert!(
            content.is_object(),
            "{method} {path} {status} declares no JSON body"
        );
        let body = reply.json();
        if let Some(schema) = content.get("schema")
            && let Err(errors) = self.validate(schema, &body)
        {
            panic!("{method} {path} {status}: the body does not fit the document: {errors:#?}\n{body:#}");
        }
        self.seen.insert((method.to_owned(), path.to_owned(), status));
    }

    /// The request body's schema of `method path`.
    fn request_schema(&self, method: &str, path: &str) -> Value {
        self.operation(method, path)["requestBody"]["content"]["application/json"]["schema"].clone()
    }

    /// The enum of the `status` query parameter of `GET path`.
    fn status_values(&self, path: &str) -> Vec<String> {
        let parameters = self.operation("GET", path)["parameters"].as_array().unwrap();
        let status = parameters
            .iter()
            .find(|parameter| parameter["name"] == "status")
            .expect("a status parameter");
        assert_eq!(status["in"], "query");
        assert_eq!(status["schema"]["type"], "string");
        status["schema"]["enum"]
            .as_array()
            .expect("`status` is an enum")
            .iter()
            .map(|value| value.as_str().unwrap().to_owned())
            .collect()
    }

    /// Every (method, path, status) the document declares.
    fn declared(&self) -> BTreeSet<(String, String, String)> {
        let mut declared = BTreeSet::new();
        for (path, item) in self.document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for status in operation["responses"].as_object().unwrap().keys() {
                    declared.insert((method.to_uppercase(), path.clone(), status.clone()));
                }
            }
        }
        declared
    }
}

/// Every `$ref` in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push(target.clone());
            }
            map.values().for_each(|value| refs(value, out));
        }
        Value::Array(items) => items.iter().for_each(|value| refs(value, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_well_formed_openapi_3_1() {
    let document: Value = serde_json::from_str(&hitl::server::openapi_json()).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));
    assert!(document["info"]["title"].is_string() && document["info"]["version"].is_string());
    let schemas = document["components"]["schemas"].as_object().unwrap();

    // Each component is a valid JSON Schema 2020-12 (the dialect of OpenAPI 3.1)…
    for (name, schema) in schemas {
        if let Err(error) = jsonschema::draft202012::meta::validate(schema) {
            panic!("components.schemas.{name} is not a JSON Schema: {error}");
        }
    }
    // …and every reference resolves.
    let mut targets = Vec::new();
    refs(&document, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("`{target}` points outside the components"));
        assert!(schemas.contains_key(name), "`{target}` resolves to nothing");
    }

    let schemes = document["components"]["securitySchemes"].as_object().unwrap();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(
                ["get", "post"].contains(&method.as_str()),
                "{at}: an unexpected method"
            );
            let id = operation["operationId"].as_str().expect("an operationId");
            assert!(
                operation_ids.insert(id.to_owned()),
                "{at}: operationId `{id}` twice"
            );
            // The path's template parameters are declared, required, in the path.
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            for name in path
                .split('/')
                .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            {
                let declared = parameters
                    .iter()
                    .find(|parameter| parameter["name"] == name && parameter["in"] == "path");
                assert!(
                    declared.is_some_and(|parameter| parameter["required"] == true),
                    "{at}: `{{{name}}}` is not a required path parameter"
                );
            }
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.contains_key("200"), "{at}: no 200");
            for (status, response) in responses {
                let code: u16 = status
                    .parse()
                    .unwrap_or_else(|_| panic!("{at}: status `{status}`"));
                assert!((200..600).contains(&code), "{at}: status {status}");
                assert!(
                    response["description"].is_string(),
                    "{at} {status}: no description"
                );
                if code >= 400 {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{at} {status}: errors are ErrorBody"
                    );
                }
            }
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(scheme), "{at}: unknown scheme `{scheme}`");
                }
            }
        }
    }
    // Reachable errors the document cannot attach to an operation are said in its description.
    let description = document["info"]["description"].as_str().unwrap();
    assert!(description.contains("405 method_not_allowed") && description.contains("404 not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_what_the_document_declares() {
    // A run of a version this build does not register: blocked, for the decision routes.
    let engine = engine_with_a_blocked_run().await;
    let server = start_with(engine, config()).await;
    let url = |path: &str| format!("{}{path}", server.url);
    let served = get(&url("/api/openapi.json"), Some(ALICE)).await;
    assert_eq!(served.status, 200, "{}", served.text);
    assert_eq!(
        served.json(),
        serde_json::from_str::<Value>(&hitl::server::openapi_json()).unwrap()
    );
    let mut doc = Document::new(served.json());
    doc.check("GET", "/api/openapi.json", &served);
    doc.check(
        "GET",
        "/api/openapi.json",
        &get(&url("/api/openapi.json"), None).await,
    );
    doc.check("GET", "/health", &get(&url("/health"), None).await);

    // One request of each kind, so that every shape of `Request` is met.
    let (_, approval) = server.ask("approval").await;
    let (_, text) = server.ask("text").await;
    let (_, selection) = server.ask("selection").await;
    let (_, multi) = server.ask("multi").await;
    let (_, input) = server.ask("input").await;
    let (_, quorum) = server.ask("quorum").await;
    let (_, alice_only) = server.ask("alice_only").await;
    let (doomed_run, doomed) = server.ask("free_text").await;

    let respond = |id: &str| url(&format!("/api/requests/{id}/respond"));
    const RESPOND: &str = "/api/requests/{id}/respond";
    for (id, body) in [
        (&approval.id, json!({"approved": true, "comment": "ship it"})),
        (&text.id, json!({"text": "Faster replay"})),
        (&selection.id, json!({"selected": "us-east"})),
        (&multi.id, json!({"selected": ["email", "chat"]})),
        (
            &input.id,
            json!({"value": {"amount": 120, "reason": "late", "currency": "EUR", "urgent": true}}),
        ),
        (&quorum.id, json!({"approved": true})),
    ] {
        let reply = post(&respond(id), Some(ALICE), body.to_string()).await;
        assert_eq!(reply.status, 200, "{body}: {}", reply.text);
        doc.check("POST", RESPOND, &reply);
    }
    // A vote short of the quorum leaves the request pending, with its votes.
    let voted = get(&url(&format!("/api/requests/{}", quorum.id)), Some(ALICE)).await;
    assert_eq!(voted.json()["status"], "pending");
    doc.check("GET", "/api/requests/{id}", &voted);

    let cancel = |id: &str| url(&format!("/api/runs/{id}/cancel"));
    const CANCEL: &str = "/api/runs/{id}/cancel";
    let cancelled = post(
        &cancel(doomed_run.id()),
        Some(BOB),
        r#"{"reason": "no longer needed"}"#,
    )
    .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    doc.check("POST", CANCEL, &cancelled);

    // --- decisions on blocked runs, and the export of unfinished runs ---
    const DECIDE: &str = "/api/runs/{id}/decide";
    let decide = |id: &str| url(&format!("/api/runs/{id}/decide"));
    for (name, expected, reply) in [
        (
            "a run that is not blocked",
            409,
            post(
                &decide(doomed_run.id()),
                Some(BOB),
                r#"{"action": "resume_anyway", "reason": "x"}"#,
            )
            .await,
        ),
        (
            "an unknown action",
            400,
            post(
                &decide(doomed_run.id()),
                Some(BOB),
                r#"{"action": "rewind", "reason": "x"}"#,
            )
            .await,
        ),
        (
            "an empty reason",
            400,
            post(
                &decide(doomed_run.id()),
                Some(BOB),
                r#"{"action": "cancel", "reason": " "}"#,
            )
            .await,
        ),
        (
            "malformed JSON",
            400,
            post(&decide(doomed_run.id()), Some(BOB), "{").await,
        ),
        (
            "an unknown run",
            404,
            post(
                &decide("no-such-run"),
                Some(BOB),
                r#"{"action": "cancel", "reason": "x"}"#,
            )
            .await,
        ),
        (
            "no token",
            401,
            post(
                &decide(doomed_run.id()),
                None,
                r#"{"action": "cancel", "reason": "x"}"#,
            )
            .await,
        ),
    ] {
        assert_eq!(reply.status, expected, "decide, {name}: {}", reply.text);
        doc.check("POST", DECIDE, &reply);
    }
    let big = json!({"action": "cancel", "reason": "x".repeat(BODY_LIMIT)}).to_string();
    let too_big = post(&decide("blocked-run"), Some(BOB), big).await;
    assert_eq!(too_big.status, 413, "{}", too_big.text);
    doc.check("POST", DECIDE, &too_big);
    let decided = post(
        &decide("blocked-run"),
        Some(BOB),
        r#"{"action": "cancel", "reason": "v9 is gone"}"#,
    )
    .await;
    assert_eq!(decided.status, 200, "{}", decided.text);
    assert_eq!(decided.json()["status"], "cancelled");
    assert_eq!(decided.json()["decisions"][0]["by"], "bob");
    doc.check("POST", DECIDE, &decided);
    let anonymous = get(&url("/api/runs/export"), None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    doc.check("GET", "/api/runs/export", &anonymous);
    let export = get(&url("/api/runs/export?redact=true"), Some(BOB)).await;
    assert_eq!(export.status, 200, "{}", export.text);
    assert_eq!(export.json()["format"], "hitl.runs");
    assert_eq!(export.json()["redacted"], true);
    doc.check("GET", "/api/runs/export", &export);
    let refused = get(&url("/api/runs/export?redact=maybe"), Some(BOB)).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    doc.check("GET", "/api/runs/export", &refused);

    // --- the error statuses of the answer ---
    let cases: Vec<(&str, u16, Reply)> = vec![
        (
            "malformed JSON",
            400,
            post(&respond(&alice_only.id), Some(ALICE), "{").await,
        ),
        (
            "a bad id",
            400,
            post(&url("/api/requests/%FF/respond"), Some(ALICE), "{}").await,
        ),
        (
            "no token",
            401,
            post(&respond(&alice_only.id), None, r#"{"approved": true}"#).await,
        ),
        (
            "a responder not allowed",
            403,
            post(&respond(&alice_only.id), Some(BOB), r#"{"approved": true}"#).await,
        ),
        (
            "an unknown request",
            404,
            post(&respond("nope"), Some(ALICE), r#"{"approved": true}"#).await,
        ),
        (
            "answered already",
            409,
            post(&respond(&approval.id), Some(BOB), r#"{"approved": false}"#).await,
        ),
        (
            "a cancelled request",
            410,
            post(&respond(&doomed.id), Some(ALICE), r#"{"text": "late"}"#).await,
        ),
        (
            "too large",
            413,
            post(
                &respond(&alice_only.id),
                Some(ALICE),
                json!({"approved": true, "comment": "x".repeat(BODY_LIMIT)}).to_string(),
            )
            .await,
        ),
        (
            "an invalid answer",
            422,
            post(&respond(&alice_only.id), Some(ALICE), r#"{"text": "wrong kind"}"#).await,
        ),
    ];
    for (name, expected, reply) in &cases {
        assert_eq!(reply.status, *expected, "{name}: {}", reply.text);
        doc.check("POST", RESPOND, reply);
    }

    // The answer schema accepts exactly what the server parses: 400 if and only if the
    // schema refuses the body (a parsed body goes on to 409/422 on this answered request).
    let answer_schema = doc.request_schema("POST", RESPOND);
    assert_eq!(
        doc.operation("POST", RESPOND)["requestBody"]["required"],
        true,
        "an answer needs a body"
    );
    for body in [
        json!({"approved": true}),
        json!({"approved": false, "comment": "no"}),
        json!({"approved": true, "comment": null}),
        json!({"text": "t"}),
        json!({"selected": "a"}),
        json!({"selected": ["a", "b"]}),
        json!({"selected": []}),
        json!({"value": {"any": ["thing"]}}),
        json!({"value": null}),
        json!({"approved": true, "extra": 1}),
        json!({"approved": true, "responder": "mallory"}),
        json!({"text": "t", "selected": "a"}),
        json!({"value": 1, "comment": "x"}),
        json!({"approved": "yes"}),
        json!({"text": 5}),
        json!({"selected": 1}),
        json!({"selected": ["a", 1]}),
        json!({}),
        json!([]),
        json!("approve"),
        json!(null),
    ] {
        let reply = post(&respond(&approval.id), Some(ALICE), body.to_string()).await;
        let fits = doc.validate(&answer_schema, &body).is_ok();
        assert_eq!(
            reply.status != 400,
            fits,
            "{body}: the schema {} it, the server answered {} {}",
            if fits { "accepts" } else { "refuses" },
            reply.status,
            reply.text
        );
        doc.check("POST", RESPOND, &reply);
    }

    // --- the cancel body is optional, and its schema is what the server takes ---
    assert_ne!(
        doc.operation("POST", CANCEL)["requestBody"]["required"],
        true,
        "the cancel body is optional"
    );
    let cancel_schema = doc.request_schema("POST", CANCEL);
    for (body, fits) in [
        (None, true),
        (Some(json!(null)), true),
        (Some(json!({})), true),
        (Some(json!({"reason": "why"})), true),
        (Some(json!({"reason": null})), true),
        (Some(json!({"reason": "why", "by": "mallory"})), false),
        (Some(json!({"reason": 5})), false),
        (Some(json!([])), false),
        (Some(json!(["why"])), false),
        (Some(json!("why")), false),
    ] {
        if let Some(body) = &body {
            assert_eq!(
                doc.validate(&cancel_schema, body).is_ok(),
                fits,
                "the schema on {body}"
            );
        }
        let raw = body.as_ref().map(Value::to_string).unwrap_or_default();
        // An unknown run: a parsed body goes on to 404.
        let reply = post(&cancel("no-such-run"), Some(ALICE), raw).await;
        assert_eq!(
            reply.status,
            if fits { 404 } else { 400 },
            "{body:?}: {}",
            reply.text
        );
        doc.check("POST", CANCEL, &reply);
    }
    let cases: Vec<(&str, u16, Reply)> = vec![
        (
            "a bad id",
            400,
            post(&url("/api/runs/%FF/cancel"), Some(ALICE), "").await,
        ),
        ("no token", 401, post(&cancel(doomed_run.id()), None, "").await),
        (
            "a finished run",
            409,
            post(&cancel(doomed_run.id()), Some(ALICE), "").await,
        ),
        (
            "too large",
            413,
            post(
                &cancel(doomed_run.id()),
                Some(ALICE),
                json!({"reason": "x".repeat(BODY_LIMIT)}).to_string(),
            )
            .await,
        ),
    ];
    for (name, expected, reply) in &cases {
        assert_eq!(reply.status, *expected, "cancel, {name}: {}", reply.text);
        doc.check("POST", CANCEL, reply);
    }

    // --- the lists: every declared status value is taken, nothing else is ---
    let request_statuses: Vec<&str> = ["pending", "answered", "expired", "cancelled", "all", ""].to_vec();
    assert_eq!(doc.status_values("/api/requests"), request_statuses);
    assert_eq!(
        doc.status_values("/api/runs"),
        [
            "running",
            "paused",
            "completed",
            "failed",
            "cancelled",
            "blocked",
            "all",
            ""
        ]
    );
    for (path, component) in [("/api/requests", "RequestStatus"), ("/api/runs", "RunStatus")] {
        let mut expected: Vec<Value> = doc.document["components"]["schemas"][component]["enum"]
            .as_array()
            .unwrap()
            .clone();
        expected.extend([json!("all"), json!("")]);
        let values: Vec<Value> = doc.status_values(path).into_iter().map(Value::from).collect();
        assert_eq!(
            values, expected,
            "{path}: the statuses of {component}, `all` and empty"
        );
        for value in doc.status_values(path) {
            let reply = get(&url(&format!("{path}?status={value}")), Some(ALICE)).await;
            assert_eq!(reply.status, 200, "{path}?status={value}: {}", reply.text);
            doc.check("GET", path, &reply);
        }
        for value in ["bogus", "Pending", "PAUSED", "%20all", "waiting"] {
            let reply = get(&url(&format!("{path}?status={value}")), Some(ALICE)).await;
            assert_eq!(reply.status, 400, "{path}?status={value}: {}", reply.text);
            doc.check("GET", path, &reply);
        }
        let unknown = get(&url(&format!("{path}?color=blue")), Some(ALICE)).await;
        assert_eq!(unknown.status, 400, "{}", unknown.text);
        doc.check("GET", path, &unknown);
        let anonymous = get(&url(path), None).await;
        assert_eq!(anonymous.status, 401);
        doc.check("GET", path, &anonymous);
    }
    let listed = get(&url("/api/requests?status=all"), Some(ALICE)).await;
    assert_eq!(listed.json().as_array().unwrap().len(), 8, "{}", listed.text);

    // --- one of each, by id ---
    let runs = server.engine.runs(&hitl::RunFilter::default()).await.unwrap();
    let by_id: [(&str, Vec<String>); 3] = [
        (
            "/api/requests/{id}",
            [
                &approval,
                &text,
                &selection,
                &multi,
                &input,
                &quorum,
                &alice_only,
                &doomed,
            ]
            .iter()
            .map(|request| request.id.clone())
            .collect(),
        ),
        ("/api/runs/{id}", runs.iter().map(|run| run.id.clone()).collect()),
        (
            "/api/runs/{id}/history",
            runs.iter().map(|run| run.id.clone()).collect(),
        ),
    ];
    for (template, ids) in &by_id {
        let at = |id: &str| url(&template.replace("{id}", id));
        for id in ids {
            let reply = get(&at(id), Some(BOB)).await;
            assert_eq!(reply.status, 200, "{template} {id}: {}", reply.text);
            doc.check("GET", template, &reply);
        }
        for (name, expected, reply) in [
            ("a bad id", 400, get(&at("%FF"), Some(ALICE)).await),
            ("no token", 401, get(&at(&ids[0]), None).await),
            ("a wrong token", 401, get(&at(&ids[0]), Some("not-a-token")).await),
            ("an unknown id", 404, get(&at("no-such-id"), Some(ALICE)).await),
        ] {
            assert_eq!(reply.status, expected, "{template}, {name}: {}", reply.text);
            doc.check("GET", template, &reply);
        }
    }

    // --- what the document cannot attach to an operation: other methods, unknown paths ---
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    for path in doc.document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>()
    {
        let concrete = url(&path.replace("{id}", "some-id"));
        let declared: Vec<String> = doc.document["paths"][&path]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        for method in ["get", "post", "put", "delete", "patch"] {
            if declared.iter().any(|declared| declared == method) {
                continue;
            }
            let reply = send(
                client()
                    .request(method.to_uppercase().parse().unwrap(), &concrete)
                    .bearer_auth(ALICE),
            )
            .await;
            assert_eq!(reply.status, 405, "{method} {path}: {}", reply.text);
            assert_eq!(reply.code(), "method_not_allowed");
            doc.validate(&error_body, &reply.json()).unwrap();
        }
    }
    let unknown = get(&url("/api/no-such-endpoint"), Some(ALICE)).await;
    assert_eq!((unknown.status, unknown.code().as_str()), (404, "not_found"));
    doc.validate(&error_body, &unknown.json()).unwrap();

    // --- every declared status was met, or is not reachable for a stated reason ---
    let missing: Vec<String> = doc
        .declared()
        .difference(&doc.seen)
        .filter(|(_, _, status)| !NOT_REACHABLE.iter().any(|(code, _)| code == status))
        .map(|(method, path, status)| format!("{method} {path} {status}"))
        .collect();
    assert!(missing.is_empty(), "declared but never answered: {missing:#?}");
    for (status, _) in NOT_REACHABLE {
        assert!(
            !doc.seen.iter().any(|(_, _, seen)| seen == status),
            "{status} was met after all: take it off NOT_REACHABLE"
        );
    }
}
