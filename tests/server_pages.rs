//! The HTML pages over plain HTTP (the browser test drives the same pages in Chromium):
//! sign-in, inbox, the form of each kind, prefetch-safe signed links, escaping, the run page.

mod server_common;

use std::time::Duration;

use hitl::RequestStatus;
use hitl::prelude::*;
use hitl::server::signed_link;
use server_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_session_and_signing_in_sets_an_http_only_cookie() {
    let server = start().await;
    let (_, request) = server.ask("approval").await;
    for path in [
        "/".to_owned(),
        format!("/requests/{}", request.id),
        "/runs".to_owned(),
    ] {
        let reply = get_page(&format!("{}{path}", server.url), None).await;
        assert_eq!(reply.status, 303, "{path}");
        let location = reply.headers["location"].to_str().unwrap();
        assert!(location.starts_with("/login?next="), "{location}");
    }

    let login = get_page(&format!("{}/login", server.url), None).await;
    assert!(
        login.text.contains(r#"type="password" name="token""#),
        "{}",
        login.text
    );
    let session = sign_in(&server, BOB).await;
    let login_again = get_page(&format!("{}/login", server.url), None).await;
    let nonce = cookie(&login_again.headers, "hitl_login").unwrap();
    let reply = post_form(
        &format!("{}/login", server.url),
        Some(&nonce),
        form(&[
            ("csrf", &hidden(&login_again.text, "csrf").unwrap()),
            ("token", BOB),
            ("next", "https://evil.example/"),
        ]),
    )
    .await;
    assert_eq!(
        reply.headers["location"], "/",
        "only local paths are followed after signing in"
    );
    let reply = post_form(
        &format!("{}/login", server.url),
        Some(&nonce),
        form(&[
            ("csrf", &hidden(&login_again.text, "csrf").unwrap()),
            ("token", BOB),
            ("next", "/\r\nSet-Cookie: x=1"),
        ]),
    )
    .await;
    assert_eq!(
        reply.headers["location"], "/",
        "no header injection through `next`"
    );
    let set_cookie = reply.headers["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );

    let inbox = get_page(&format!("{}/", server.url), Some(&session)).await;
    assert_eq!(inbox.status, 200);
    assert!(
        inbox.text.contains("Signed in as <strong>bob</strong>"),
        "{}",
        inbox.text
    );
    assert!(inbox.text.contains("Deploy api to production?"));
    assert!(inbox.text.contains(&format!("/requests/{}", request.id)));
    assert!(inbox.text.contains(" ago"), "the inbox shows each request's age");

    // Signing out needs the session's CSRF token, and ends the session in this browser.
    let csrf = hidden(&inbox.text, "csrf").unwrap();
    let refused = post_form(&format!("{}/logout", server.url), Some(&session), String::new()).await;
    assert_eq!(refused.status, 403);
    let out = post_form(
        &format!("{}/logout", server.url),
        Some(&session),
        form(&[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(out.status, 303);
    assert!(out.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_forbids_scripts_framing_and_referrers() {
    let server = start().await;
    for path in ["/login", "/nowhere", "/health"] {
        let reply = get_page(&format!("{}{path}", server.url), None).await;
        let csp = reply.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src"),
            "{csp}"
        );
        assert_eq!(reply.headers["referrer-policy"], "no-referrer");
        assert_eq!(reply.headers["x-frame-options"], "DENY");
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    }
    let missing = get_page(&format!("{}/nowhere", server.url), None).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_gets_the_form_it_calls_for() {
    let server = start().await;
    let session = sign_in(&server, ALICE).await;
    let page_of = async |kind: &str| {
        let (_, request) = server.ask(kind).await;
        get_page(&format!("{}/requests/{}", server.url, request.id), Some(&session))
            .await
            .text
    };

    let approval = page_of("approval").await;
    assert!(
        approval.contains(r#"name="decision" value="approve""#),
        "{approval}"
    );
    assert!(approval.contains(r#"name="decision" value="reject""#));
    assert!(approval.contains(r#"<textarea id="comment" name="comment""#));
    // Markdown details: rendered, and every script neutralised.
    assert!(approval.contains("<strong>0.1 %</strong>"), "{approval}");
    assert!(
        approval.contains("&lt;script&gt;alert('details')&lt;/script&gt;"),
        "{approval}"
    );
    assert!(!approval.contains("<script"), "{approval}");
    assert!(!approval.contains("javascript:"), "{approval}");
    assert!(!approval.contains("<img"), "{approval}");

    let text = page_of("text").await;
    assert!(text.contains(r#"<textarea id="text" name="text""#), "{text}");
    assert!(
        text.contains("5 to 60 characters"),
        "the constraints are shown: {text}"
    );

    let selection = page_of("selection").await;
    assert!(
        selection.contains(r#"type="radio" id="option-0" name="selected" value="eu-west" checked"#),
        "{selection}"
    );
    assert!(selection.contains(r#"value="ap-south""#));

    let multi = page_of("multi").await;
    assert!(
        multi.contains(r#"type="checkbox" id="option-2" name="selected" value="chat""#),
        "{multi}"
    );
    assert!(multi.contains("Choose 1 to 2"), "{multi}");

    let input = page_of("input").await;
    assert!(
        input.contains(r#"type="number" id="value-amount" name="value/amount" value="2500""#),
        "{input}"
    );
    assert!(
        input.contains(r#"<option value="EUR" selected>EUR</option>"#),
        "{input}"
    );
    assert!(
        input.contains(r#"name="value/reason" value="late delivery""#),
        "{input}"
    );
    assert!(
        input.contains(r#"type="checkbox" id="value-urgent" name="value/urgent" value="true">"#),
        "{input}"
    );
    assert!(
        input.contains("Amount in cents"),
        "schema descriptions are hints: {input}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_link_is_prefetch_safe_and_answers_as_its_responder() {
    let server = start().await;
    let (run, request) = server.ask("alice_only").await;
    let link = signed_link(&server.engine, &request.id, "alice", Duration::from_secs(600)).unwrap();
    let url = format!("{}{link}", server.url);

    // A link preview, a mail scanner, a second click: GETs answer nothing.
    let before = server.snapshot(&request.id).await;
    for _ in 0..3 {
        let reply = get_page(&url, None).await;
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .text
                .contains("Answering as <strong>alice</strong> through a signed link")
        );
    }
    assert_eq!(server.snapshot(&request.id).await, before);

    let page = get_page(&url, None).await;
    let mut fields = vec![("csrf".to_owned(), hidden(&page.text, "csrf").unwrap())];
    for name in ["as", "exp", "sig"] {
        fields.push((name.to_owned(), hidden(&page.text, name).unwrap()));
    }
    fields.push(("decision".to_owned(), "approve".to_owned()));
    fields.push(("comment".to_owned(), "rotated".to_owned()));
    let body = form(
        &fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let reply = post_form(
        &format!("{}/requests/{}", server.url, request.id),
        None,
        body.clone(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.text.contains("Answer recorded"), "{}", reply.text);
    assert_eq!(server.completes(&run).await, "approved=true by alice");

    let again = post_form(&format!("{}/requests/{}", server.url, request.id), None, body).await;
    assert_eq!(again.status, 409);
    assert!(again.text.contains("Already answered"), "{}", again.text);

    // A link for someone the request does not allow shows why, without a form.
    let (_, other) = server.ask("alice_only").await;
    let bob_link = signed_link(&server.engine, &other.id, "bob", Duration::from_secs(600)).unwrap();
    let reply = get_page(&format!("{}{bob_link}", server.url), None).await;
    assert_eq!(reply.status, 403);
    assert!(
        reply.text.contains("bob may not answer this request"),
        "{}",
        reply.text
    );
    assert!(!reply.text.contains("name=\"decision\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_answer_shows_a_confirmation_and_the_run_page_its_timeline() {
    let server = start().await;
    let session = sign_in(&server, CAROL).await;
    let (run, request) = server.ask("multi").await;
    let url = format!("{}/requests/{}", server.url, request.id);
    let page = get_page(&url, Some(&session)).await;
    let csrf = hidden(&page.text, "csrf").unwrap();

    // A validation error re-renders the form with the message and the choices kept.
    let too_many = form(&[
        ("csrf", &csrf),
        ("selected", "email"),
        ("selected", "sms"),
        ("selected", "chat"),
    ]);
    let reply = post_form(&url, Some(&session), too_many).await;
    assert_eq!(reply.status, 422);
    assert!(
        reply.text.contains("Select at most 2 options (3 selected)"),
        "{}",
        reply.text
    );
    assert!(reply.text.contains(r#"value="sms" checked"#), "{}", reply.text);
    assert_eq!(
        server.engine.request(&request.id).await.unwrap().status,
        RequestStatus::Pending
    );

    let reply = post_form(
        &url,
        Some(&session),
        form(&[("csrf", &csrf), ("selected", "chat"), ("selected", "email")]),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply.text.contains("Thank you, <strong>carol</strong>"),
        "{}",
        reply.text
    );
    assert!(reply.text.contains("email, chat"), "{}", reply.text);
    assert_eq!(
        server.completes(&run).await,
        "selected=[\"email\", \"chat\"] by carol"
    );

    let answered = get_page(&url, Some(&session)).await;
    assert_eq!(answered.status, 200);
    assert!(answered.text.contains("Already answered"));
    assert!(!answered.text.contains("<form method=\"post\" action=\"/requests"));

    let run_page = get_page(&format!("{}/runs/{}", server.url, run.id()), Some(&session)).await;
    assert_eq!(run_page.status, 200);
    assert!(
        run_page.text.contains(r#"<ol class="timeline">"#),
        "{}",
        run_page.text
    );
    assert!(run_page.text.contains("Notify which channels?"));
    assert!(run_page.text.contains("by carol"), "{}", run_page.text);
    assert!(run_page.text.contains(">completed</span>"), "{}", run_page.text);
    let runs = get_page(&format!("{}/runs", server.url), Some(&session)).await;
    assert!(runs.text.contains(&format!("/runs/{}", run.id())));

    // Cancelled requests get a clear page too.
    let (other_run, other) = server.ask("free_text").await;
    server.engine.cancel(other_run.id(), "superseded").await.unwrap();
    let cancelled = get_page(&format!("{}/requests/{}", server.url, other.id), Some(&session)).await;
    assert_eq!(cancelled.status, 410);
    assert!(cancelled.text.contains("Cancelled"), "{}", cancelled.text);

    // So do expired ones.
    let (expiring_run, expiring) = server.ask("expiring").await;
    // The run ends only once its request expired (the expiry resumes it).
    hitl_workspace::patiently("the expiring request's run ends", expiring_run.wait())
        .await
        .unwrap();
    assert_eq!(
        server.engine.request(&expiring.id).await.unwrap().status,
        RequestStatus::Expired
    );
    let expired = get_page(
        &format!("{}/requests/{}", server.url, expiring.id),
        Some(&session),
    )
    .await;
    assert_eq!(expired.status, 410);
    assert!(expired.text.contains("deadline passed"), "{}", expired.text);
}

/// Receives one webhook delivery on 127.0.0.1 and returns its JSON body.
async fn receive_one(listener: tokio::net::TcpListener) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.unwrap();
        received.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&received).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await
                    .unwrap();
                return serde_json::from_slice(&received[end + 4..end + 4 + length]).unwrap();
            }
        }
        assert!(read > 0, "the sender hung up");
    }
}

#[workflow(inject_context)]
async fn notified(ctx: &TaskContext, hook: String) -> hitl::Result<String> {
    let answer = ctx
        .request_feedback(
            Feedback::approval("Ship the hotfix?")
                .responders(["alice", "bob"])
                .notify(Notify::webhook(hook)),
        )
        .await?;
    Ok(format!(
        "approved={} by {}",
        answer.approved(),
        answer.responder()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_carries_signed_links_that_answer_as_their_responder() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", hook.local_addr().unwrap());
    let engine = Engine::temporary()
        .base_url(&base)
        .register(notified)
        .open()
        .await
        .unwrap();
    let task = tokio::spawn(hitl::server::serve_with(listener, engine.clone(), config()));
    let run = engine.start(notified, (hook_url,)).await.unwrap();
    let payload = tokio::time::timeout(PATIENCE, receive_one(hook)).await.unwrap();

    let links = payload["links"].as_array().unwrap();
    let responders: Vec<&str> = links
        .iter()
        .map(|link| link["responder"].as_str().unwrap())
        .collect();
    assert_eq!(responders, ["alice", "bob"], "{payload:#}");
    let bob = links[1]["url"].as_str().unwrap();
    assert!(
        bob.starts_with(&format!("{base}/requests/")) && bob.contains("as=bob&exp="),
        "{bob}"
    );

    let page = get_page(bob, None).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let mut fields: Vec<(String, String)> = ["csrf", "as", "exp", "sig"]
        .iter()
        .map(|name| ((*name).to_owned(), hidden(&page.text, name).unwrap()))
        .collect();
    fields.push(("decision".to_owned(), "reject".to_owned()));
    let request_id = payload["request"]["id"].as_str().unwrap();
    let reply = post_form(
        &format!("{base}/requests/{request_id}"),
        None,
        form(
            &fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    match tokio::time::timeout(PATIENCE, run.wait()).await.unwrap().unwrap() {
        Outcome::Completed(output) => assert_eq!(output, "approved=false by bob"),
        other => panic!("{other:?}"),
    }
    task.abort();
}

#[derive(Debug, thiserror::Error)]
#[error("the warehouse refused order {0}")]
struct Refused(String);

#[task]
async fn reserve(order: String) -> Result<String, Refused> {
    Err(Refused(order))
}

#[workflow]
async fn refuse(order: String) -> Result<String, Refused> {
    reserve(order).await
}

#[task]
async fn pick(n: u32) -> u32 {
    n + 1
}

#[task]
async fn label(n: u32) -> u32 {
    n * 10
}

/// A nested orchestration: its steps are journaled before it is.
#[task(inject_context)]
async fn pack(ctx: &TaskContext, n: u32) -> u32 {
    let picked = pick(n).await;
    let answer = ctx
        .request_feedback(Feedback::approval("Seal the box?").key("seal"))
        .await
        .map(|answer| answer.approved())
        .unwrap_or(false);
    label(picked + u32::from(answer)).await
}

#[workflow]
async fn ship(n: u32) -> u32 {
    let packed = pack(n).await;
    label(packed).await
}

async fn settled_outcome<T: serde::de::DeserializeOwned + Send + 'static>(run: &hitl::Run<T>) -> Outcome<T> {
    tokio::time::timeout(PATIENCE, run.settled())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_page_shows_whole_ids_and_why_a_run_failed_or_was_cancelled() {
    let engine = Engine::temporary()
        .register(ask)
        .register(refuse)
        .open()
        .await
        .unwrap();
    let server = start_with(engine, config()).await;
    let session = sign_in(&server, ALICE).await;

    let failed = server
        .engine
        .start_with_id(refuse, "ord_small", ("ord-7".to_owned(),))
        .await
        .unwrap();
    assert!(matches!(settled_outcome(&failed).await, Outcome::Failed(_)));
    let (cancelled, _) = server.ask("approval").await;
    server
        .engine
        .cancel(cancelled.id(), "wrong service")
        .await
        .unwrap();
    let long_id = "nightly-reconciliation-of-every-ledger-2026";
    let long = server
        .engine
        .start_with_id(refuse, long_id, ("ord-8".to_owned(),))
        .await
        .unwrap();
    settled_outcome(&long).await;

    let runs = get_page(&format!("{}/runs", server.url), Some(&session)).await;
    assert_eq!(runs.status, 200);
    assert!(
        runs.text.contains("<code title=\"ord_small\">ord_small</code>"),
        "{}",
        runs.text
    );
    // A long id is shortened in the middle, never silently, and keeps the full id in a title.
    assert!(
        runs.text
            .contains(&format!("<code title=\"{long_id}\">nightly-reco…r-2026</code>")),
        "{}",
        runs.text
    );
    // A uuid (the default id) shows its start and its end.
    let uuid = cancelled.id();
    assert!(
        runs.text
            .contains(&format!(">{}…{}<", &uuid[..12], &uuid[uuid.len() - 6..])),
        "{}",
        runs.text
    );
    assert!(
        runs.text.contains("the warehouse refused order ord-7"),
        "the failure reason is in the list: {}",
        runs.text
    );
    assert!(runs.text.contains("Cancelled: wrong service"), "{}", runs.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_nests_the_steps_of_an_inner_orchestration_under_it() {
    let engine = Engine::temporary()
        .register(ask)
        .register(ship)
        .open()
        .await
        .unwrap();
    let server = start_with(engine, config()).await;
    let session = sign_in(&server, BOB).await;
    let run = server.engine.start(ship, (1,)).await.unwrap();
    let Outcome::Paused(requests) = settled_outcome(&run).await else {
        panic!("expected a pause")
    };
    let run_url = format!("{}/runs/{}", server.url, run.id());

    // Paused inside `pack`: the orchestration is not journaled yet, its steps sit under it.
    let paused = get_page(&run_url, Some(&session)).await;
    let text = &paused.text;
    let pack_at = text
        .find(r#"<li class="waiting" data-step="pack#0"><strong>pack</strong> <span class="meta">orchestration · in progress"#)
        .unwrap_or_else(|| panic!("no placeholder for `pack`: {text}"));
    let nested = &text[pack_at..];
    assert!(
        nested
            .find(r#"<ol class="timeline"><li class="completed" data-step="pack#0/pick#0">"#)
            .is_some(),
        "{text}"
    );
    assert!(nested.contains(r#"data-step="pack#0/seal#0""#), "{text}");

    server
        .engine
        .respond(&requests[0].id, Response::approve(), Responder::new("bob"))
        .await
        .unwrap();
    match tokio::time::timeout(PATIENCE, run.wait()).await.unwrap().unwrap() {
        Outcome::Completed(output) => assert_eq!(output, 300),
        other => panic!("{other:?}"),
    }

    // Completed: `pack` comes first (where its first step was), its steps indented in it,
    // and the workflow's own `label` after it at the top level.
    let done = get_page(&run_url, Some(&session)).await.text;
    let pack_at = done
        .find(r#"<li class="completed" data-step="pack#0"><strong>pack</strong>"#)
        .unwrap_or_else(|| panic!("`pack` is not a completed step: {done}"));
    let pick_at = done.find(r#"data-step="pack#0/pick#0""#).unwrap();
    let seal_at = done.find(r#"data-step="pack#0/seal#0""#).unwrap();
    let inner_label_at = done.find(r#"data-step="pack#0/label#0""#).unwrap();
    let outer_label_at = done.find(r#"<li class="completed" data-step="label#0""#).unwrap();
    assert!(
        pack_at < pick_at && pick_at < seal_at && seal_at < inner_label_at && inner_label_at < outer_label_at,
        "{done}"
    );
    let inside_pack = &done[pack_at..outer_label_at];
    assert_eq!(
        inside_pack.matches("<ol class=\"timeline\">").count(),
        1,
        "pack's steps are one nested list: {done}"
    );
    assert!(
        inside_pack.ends_with("</li></ol></li>"),
        "the nested list closes inside pack's item before the outer `label`: {inside_pack}"
    );
    assert!(!done.contains("in progress"), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_vote_says_who_already_voted_and_how_many_approvals_there_are() {
    let server = start().await;
    let session = sign_in(&server, ALICE).await;
    let (_, request) = server.ask("quorum").await;
    let url = format!("{}/requests/{}", server.url, request.id);
    let page = get_page(&url, Some(&session)).await;
    let csrf = hidden(&page.text, "csrf").unwrap();
    let vote = form(&[("csrf", &csrf), ("decision", "approve")]);
    let first = post_form(&url, Some(&session), vote.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.text.contains("1 of 2"), "{}", first.text);

    // The same form sent again (a second tab, a double click).
    let before = server.snapshot(&request.id).await;
    let again = post_form(&url, Some(&session), vote).await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(
        again.text.contains("alice already voted (1 of 2 approvals)"),
        "{}",
        again.text
    );
    assert!(!again.text.contains("already been answered"), "{}", again.text);
    assert_eq!(server.snapshot(&request.id).await, before, "nothing changed");
    let shown = get_page(&url, Some(&session)).await;
    assert!(
        shown.text.contains("alice already voted (1 of 2 approvals)"),
        "{}",
        shown.text
    );

    // The API says the same, with its own code.
    let api = post(
        &format!("{}/api/requests/{}/respond", server.url, request.id),
        Some(ALICE),
        r#"{"approved": true}"#,
    )
    .await;
    assert_eq!((api.status, api.code().as_str()), (409, "already_voted"));
    assert!(
        api.message().contains("`alice` already voted") && api.message().contains("(1 of 2 approvals)"),
        "{}",
        api.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_form_keeps_declaration_order_and_says_what_is_wrong_at_each_field() {
    let server = start().await;
    let session = sign_in(&server, CAROL).await;
    let (_, request) = server.ask("input").await;
    let url = format!("{}/requests/{}", server.url, request.id);
    let page = get_page(&url, Some(&session)).await.text;
    let at = |html: &str, name: &str| {
        html.find(&format!(r#"name="value/{name}""#))
            .unwrap_or_else(|| panic!("no field {name}: {html}"))
    };
    // `Refund` declares amount, reason, currency, urgent (alphabetical would put currency second).
    assert!(
        at(&page, "amount") < at(&page, "reason")
            && at(&page, "reason") < at(&page, "currency")
            && at(&page, "currency") < at(&page, "urgent"),
        "{page}"
    );

    let before = server.snapshot(&request.id).await;
    let csrf = hidden(&page, "csrf").unwrap();
    let reply = post_form(
        &url,
        Some(&session),
        form(&[
            ("csrf", &csrf),
            ("value/amount", "0"),
            ("value/reason", "late delivery"),
            ("value/currency", ""),
        ]),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let text = &reply.text;
    let amount_error = text
        .find(r#"<p class="field-error" id="value-amount-error-0">Must be at least 1</p>"#)
        .unwrap_or_else(|| panic!("no message at the amount: {text}"));
    assert!(
        at(text, "amount") < amount_error && amount_error < at(text, "reason"),
        "{text}"
    );
    let currency_error = text
        .find("Currency is required")
        .unwrap_or_else(|| panic!("no message at the currency: {text}"));
    assert!(
        at(text, "currency") < currency_error && currency_error < at(text, "urgent"),
        "{text}"
    );
    assert!(text.contains("Some fields need a change"), "{text}");
    for schema_text in [
        "minimum",
        "is a required property",
        "does not match the expected input",
    ] {
        assert!(
            !text.contains(schema_text),
            "no JSON Schema text ({schema_text}): {text}"
        );
    }
    assert!(
        text.contains(r#"value="late delivery""#),
        "the input is kept: {text}"
    );
    assert_eq!(server.snapshot(&request.id).await, before, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_runs_page_names_the_problem_and_its_form_records_a_decision() {
    // A run of a version this build does not register: blocked when the engine opens.
    let engine = engine_with_a_blocked_run().await;
    let server = start_with(engine, config()).await;
    let session = sign_in(&server, BOB).await;
    let page_url = format!("{}/runs/blocked-run", server.url);
    let page = get_page(&page_url, Some(&session)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("id=\"blocked\""), "{}", page.text);
    assert!(
        page.text.contains("version 9 of `ask`"),
        "the re-check's reason is shown: {}",
        page.text
    );
    let runs = get_page(&format!("{}/runs", server.url), Some(&session)).await;
    assert!(runs.text.contains("Blocked: "), "{}", runs.text);
    let inbox = get_page(&format!("{}/", server.url), Some(&session)).await;
    assert!(inbox.text.contains("id=\"blocked-runs\""), "{}", inbox.text);
    assert!(inbox.text.contains("1 run is blocked"), "{}", inbox.text);

    let csrf = hidden(&page.text, "csrf").unwrap();
    let decide = format!("{page_url}/decide");
    let forged = post_form(
        &decide,
        Some(&session),
        form(&[("csrf", "nope"), ("action", "cancel"), ("reason", "x")]),
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.text);
    let no_reason = post_form(
        &decide,
        Some(&session),
        form(&[("csrf", &csrf), ("action", "cancel"), ("reason", " ")]),
    )
    .await;
    assert_eq!(no_reason.status, 400, "{}", no_reason.text);
    let decided = post_form(
        &decide,
        Some(&session),
        form(&[
            ("csrf", &csrf),
            ("action", "cancel"),
            ("reason", "version 9 is retired"),
        ]),
    )
    .await;
    assert_eq!(decided.status, 303, "{}", decided.text);
    let info = server.engine.run_info("blocked-run").await.unwrap();
    assert_eq!(info.status, RunStatus::Cancelled);
    assert_eq!(info.decisions[0].by, "bob");
    let page = get_page(&page_url, Some(&session)).await;
    assert!(
        page.text.contains("Decided cancel by bob: version 9 is retired"),
        "{}",
        page.text
    );
}
