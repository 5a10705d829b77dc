//! Malformed and hostile inputs, through the API and the HTML forms: each gets its 4xx, and
//! nothing is stored — every request stays pending and byte-for-byte unchanged, every run
//! stays paused.

mod server_common;

use std::time::Duration;

use hitl::RunStatus;
use hitl::server::signed_link;
use serde_json::Value;
use server_common::*;

/// Every request and run of the story, as stored.
async fn state(server: &TestServer) -> Value {
    let requests = server
        .engine
        .requests(&hitl::PendingFilter::default(), None)
        .await
        .unwrap();
    let runs: Vec<(String, RunStatus)> = server
        .engine
        .runs(&hitl::RunFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|run| (run.id, run.status))
        .collect();
    serde_json::json!({"requests": requests, "runs": runs})
}

fn with_field(link: &str, field: &str, value: &str) -> String {
    let (path, query) = link.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            if pair.starts_with(&format!("{field}=")) {
                format!("{field}={value}")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// The form fields of a link (`as`, `exp`, `sig`).
fn link_fields(link: &str) -> Vec<(String, String)> {
    let query = link.split_once('?').unwrap().1;
    query
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap();
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

fn form_of(pairs: &[(String, String)], extra: &[(&str, &str)]) -> String {
    let mut fields: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    fields.extend_from_slice(extra);
    form(&fields)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_get_their_4xx_and_store_nothing() {
    let server = start().await;
    let (_, text) = server.ask("text").await;
    let (_, selection) = server.ask("selection").await;
    let (_, multi) = server.ask("multi").await;
    let (_, input) = server.ask("input").await;
    let (_, alice_only) = server.ask("alice_only").await;
    let api = |id: &str| format!("{}/api/requests/{id}/respond", server.url);
    let page = |id: &str| format!("{}/requests/{id}", server.url);
    let hour = Duration::from_secs(3600);
    let text_link = signed_link(&server.engine, &text.id, "alice", hour).unwrap();
    let selection_link = signed_link(&server.engine, &selection.id, "alice", hour).unwrap();
    let expired_link = signed_link(&server.engine, &text.id, "alice", Duration::ZERO).unwrap();

    // A valid link's form page: its CSRF token.
    let form_page = get_page(&format!("{}{text_link}", server.url), None).await;
    assert_eq!(form_page.status, 200, "{}", form_page.text);
    let csrf = hidden(&form_page.text, "csrf").unwrap();
    let other_page = get_page(&format!("{}{selection_link}", server.url), None).await;
    let other_csrf = hidden(&other_page.text, "csrf").unwrap();
    let link = link_fields(&text_link);
    let session = sign_in(&server, ALICE).await;

    let before = state(&server).await;
    let nested = format!("{{\"value\": {}1{}}}", "[".repeat(300), "]".repeat(300));
    let mut cases: Vec<(&str, u16, Reply)> = Vec::new();
    let mut case = |name: &'static str, expected: u16, reply: Reply| cases.push((name, expected, reply));

    // --- the JSON API ---
    case(
        "invalid JSON",
        400,
        post(&api(&text.id), Some(ALICE), r#"{"text": "#).await,
    );
    case("empty body", 400, post(&api(&text.id), Some(ALICE), "").await);
    case(
        "a JSON array",
        400,
        post(&api(&text.id), Some(ALICE), r#"["text"]"#).await,
    );
    case(
        "a JSON string",
        400,
        post(&api(&text.id), Some(ALICE), r#""approve""#).await,
    );
    case(
        "wrong type",
        400,
        post(&api(&text.id), Some(ALICE), r#"{"text": 5}"#).await,
    );
    case(
        "unknown field",
        400,
        post(
            &api(&text.id),
            Some(ALICE),
            r#"{"text": "Hello there", "extra": 1}"#,
        )
        .await,
    );
    case(
        "responder in the body",
        400,
        post(
            &api(&alice_only.id),
            Some(BOB),
            r#"{"approved": true, "responder": "alice"}"#,
        )
        .await,
    );
    case(
        "invalid UTF-8",
        400,
        post(
            &api(&text.id),
            Some(ALICE),
            b"{\"text\": \"\xff\xfe Hello\"}".to_vec(),
        )
        .await,
    );
    case(
        "300-deep nesting",
        400,
        post(&api(&input.id), Some(ALICE), nested).await,
    );
    case(
        "a huge body",
        413,
        post(
            &api(&text.id),
            Some(ALICE),
            format!(r#"{{"text": "{}"}}"#, "B".repeat(1 << 20)),
        )
        .await,
    );
    case(
        "no token",
        401,
        post(&api(&text.id), None, r#"{"text": "Hello there"}"#).await,
    );
    case(
        "a wrong token",
        401,
        post(&api(&text.id), Some("guess"), r#"{"text": "Hello there"}"#).await,
    );
    case(
        "basic auth",
        401,
        send(
            client()
                .post(api(&text.id))
                .basic_auth("alice", Some(ALICE))
                .body(r#"{"text": "Hello there"}"#),
        )
        .await,
    );
    case(
        "token in the query",
        401,
        post(
            &format!("{}?token={ALICE}", api(&text.id)),
            None,
            r#"{"text": "Hello there"}"#,
        )
        .await,
    );
    case(
        "answer of another kind",
        422,
        post(&api(&text.id), Some(ALICE), r#"{"approved": true}"#).await,
    );
    case(
        "text too short",
        422,
        post(&api(&text.id), Some(ALICE), r#"{"text": "Hi"}"#).await,
    );
    case(
        "text too long",
        422,
        post(
            &api(&text.id),
            Some(ALICE),
            format!(r#"{{"text": "A{}"}}"#, "a".repeat(80)),
        )
        .await,
    );
    case(
        "HTML in a text answer",
        422,
        post(
            &api(&text.id),
            Some(ALICE),
            r#"{"text": "<script>alert(1)</script>"}"#,
        )
        .await,
    );
    case(
        "an option not offered",
        422,
        post(&api(&selection.id), Some(ALICE), r#"{"selected": "mars"}"#).await,
    );
    case(
        "an object as the selection",
        400,
        post(
            &api(&selection.id),
            Some(ALICE),
            r#"{"selected": {"eu-west": true}}"#,
        )
        .await,
    );
    case(
        "an option selected twice",
        422,
        post(&api(&multi.id), Some(ALICE), r#"{"selected": ["sms", "sms"]}"#).await,
    );
    case(
        "too many options",
        422,
        post(
            &api(&multi.id),
            Some(ALICE),
            r#"{"selected": ["sms", "email", "chat"]}"#,
        )
        .await,
    );
    case(
        "a string where the schema wants a number",
        422,
        post(
            &api(&input.id),
            Some(ALICE),
            r#"{"value": {"amount": "lots", "reason": "x", "currency": "EUR", "urgent": false}}"#,
        )
        .await,
    );
    case(
        "a number outside the schema's range",
        422,
        post(
            &api(&input.id),
            Some(ALICE),
            r#"{"value": {"amount": 0, "reason": "x", "currency": "EUR", "urgent": false}}"#,
        )
        .await,
    );
    case(
        "an enum value not in the schema",
        422,
        post(
            &api(&input.id),
            Some(ALICE),
            r#"{"value": {"amount": 5, "reason": "x", "currency": "GBP", "urgent": false}}"#,
        )
        .await,
    );
    case(
        "a responder not allowed",
        403,
        post(&api(&alice_only.id), Some(BOB), r#"{"approved": true}"#).await,
    );
    case(
        "path traversal in the id",
        404,
        post(
            &api("..%2F..%2Fetc%2Fpasswd"),
            Some(ALICE),
            r#"{"approved": true}"#,
        )
        .await,
    );

    // --- the HTML forms ---
    let mut tampered = link.clone();
    let signature = &mut tampered.iter_mut().find(|(key, _)| key == "sig").unwrap().1;
    let last = if signature.ends_with('0') { "1" } else { "0" };
    signature.replace_range(signature.len() - 1.., last);
    case(
        "a tampered link signature",
        403,
        post_form(
            &page(&text.id),
            None,
            form_of(&tampered, &[("csrf", &csrf), ("text", "Hello there")]),
        )
        .await,
    );
    case(
        "a link to another request",
        403,
        post_form(
            &page(&text.id),
            None,
            form_of(
                &link_fields(&selection_link),
                &[("csrf", &other_csrf), ("text", "Hello there")],
            ),
        )
        .await,
    );
    let as_bob = link_fields(&with_field(&text_link, "as", "bob"));
    case(
        "a link whose responder was changed",
        403,
        post_form(
            &page(&text.id),
            None,
            form_of(&as_bob, &[("csrf", &csrf), ("text", "Hello there")]),
        )
        .await,
    );
    let later = link_fields(&with_field(&text_link, "exp", "99999999999"));
    case(
        "a link whose expiry was extended",
        403,
        post_form(
            &page(&text.id),
            None,
            form_of(&later, &[("csrf", &csrf), ("text", "Hello there")]),
        )
        .await,
    );
    case(
        "an expired link",
        410,
        post_form(
            &page(&text.id),
            None,
            form_of(&link_fields(&expired_link), &[("text", "Hello there")]),
        )
        .await,
    );
    case(
        "an expired link, opened",
        410,
        get_page(&format!("{}{expired_link}", server.url), None).await,
    );
    case(
        "a form without its CSRF token",
        403,
        post_form(&page(&text.id), None, form_of(&link, &[("text", "Hello there")])).await,
    );
    case(
        "the CSRF token of another link",
        403,
        post_form(
            &page(&text.id),
            None,
            form_of(&link, &[("csrf", &other_csrf), ("text", "Hello there")]),
        )
        .await,
    );
    case(
        "a forged session cookie",
        401,
        post_form(
            &page(&text.id),
            Some("hitl_session=v1.616c696365.99999999999.00"),
            form(&[("csrf", "x"), ("text", "Hello there")]),
        )
        .await,
    );
    case(
        "a session form without its CSRF token",
        403,
        post_form(&page(&text.id), Some(&session), form(&[("text", "Hello there")])).await,
    );
    case(
        "a form over the size limit",
        413,
        post_form(
            &page(&text.id),
            None,
            form_of(&link, &[("csrf", &csrf), ("text", &"C".repeat(BODY_LIMIT * 2))]),
        )
        .await,
    );
    case(
        "an approval form without a decision",
        400,
        post_form(&page(&alice_only.id), None, {
            let alice_link = signed_link(&server.engine, &alice_only.id, "alice", hour).unwrap();
            let alice_page = get_page(&format!("{}{alice_link}", server.url), None).await;
            let alice_csrf = hidden(&alice_page.text, "csrf").unwrap();
            form_of(
                &link_fields(&alice_link),
                &[("csrf", &alice_csrf), ("comment", "hm")],
            )
        })
        .await,
    );
    case(
        "HTML in a text form",
        422,
        post_form(
            &page(&text.id),
            None,
            form_of(&link, &[("csrf", &csrf), ("text", "<b>Bold</b> move")]),
        )
        .await,
    );
    case("a wrong token at sign-in", 401, {
        let login = get_page(&format!("{}/login", server.url), None).await;
        let nonce = cookie(&login.headers, "hitl_login").unwrap();
        let login_csrf = hidden(&login.text, "csrf").unwrap();
        post_form(
            &format!("{}/login", server.url),
            Some(&nonce),
            form(&[("csrf", &login_csrf), ("token", "guess")]),
        )
        .await
    });
    case(
        "a sign-in without its CSRF token",
        403,
        post_form(&format!("{}/login", server.url), None, form(&[("token", ALICE)])).await,
    );

    assert!(cases.len() >= 20, "{} cases", cases.len());
    for (name, expected, reply) in &cases {
        assert_eq!(reply.status, *expected, "{name}: {}", reply.text);
        if reply.text.starts_with('{') {
            assert!(
                !reply.code().is_empty(),
                "{name}: an error body has a code: {}",
                reply.text
            );
            assert!(!reply.message().is_empty(), "{name}: and a message");
        }
    }
    assert_eq!(state(&server).await, before, "nothing was stored");
    // The re-rendered text form kept the input, escaped.
    let (_, _, html_form) = cases
        .iter()
        .find(|(name, ..)| *name == "HTML in a text form")
        .unwrap();
    assert!(
        html_form.text.contains("&lt;b&gt;Bold&lt;/b&gt; move"),
        "{}",
        html_form.text
    );
    assert!(!html_form.text.contains("<b>Bold"), "{}", html_form.text);
    eprintln!("{} hostile inputs refused, nothing stored", cases.len());
}
