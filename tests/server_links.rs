//! Signed links and sessions through a real server: a link's expiry cannot be respelled to
//! pass its signature, and links and sessions expire on the engine's clock — a
//! `ManualClock` moved by hand decides the second they stop working.

mod server_common;

use std::time::{Duration, UNIX_EPOCH};

use hitl::Engine;
use hitl::clock::ManualClock;
use hitl::server::signed_link;
use server_common::*;

/// Far from the real time, so that nothing here can pass on the wall clock by accident.
fn manual_clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
}

/// The link with its `exp` value replaced by `spelling`.
fn with_expiry(link: &str, spelling: &str) -> String {
    let (path, query) = link.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.strip_prefix("exp=") {
            Some(_) => format!("exp={spelling}"),
            None => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// The `exp` of a link, as a number.
fn expiry_of(link: &str) -> u64 {
    let query = link.split_once('?').unwrap().1;
    let exp = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("exp="))
        .expect("a signed link has `exp`");
    exp.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_respelled_link_expiry_is_a_bad_signature_and_answers_nothing() {
    let server = start().await;
    let (_, request) = server.ask("free_text").await;
    let link = signed_link(&server.engine, &request.id, "alice", Duration::from_secs(3600)).unwrap();
    let exp = expiry_of(&link);
    let genuine = get_page(&format!("{}{link}", server.url), None).await;
    assert_eq!(genuine.status, 200, "{}", genuine.text);
    let before = server.snapshot(&request.id).await;

    // `+` is `%2B` in a query (a bare `+` decodes to a space, which must fail too).
    for spelling in [
        format!("%2B{exp}"),
        format!("0{exp}"),
        format!("%2B000{exp}"),
        format!("+{exp}"),
        format!("{exp}%20"),
    ] {
        let respelled = with_expiry(&link, &spelling);
        let opened = get_page(&format!("{}{respelled}", server.url), None).await;
        assert_eq!(opened.status, 403, "GET with exp={spelling}: {}", opened.text);
        assert!(opened.text.contains("signature"), "{}", opened.text);

        // Posting the form with the respelled expiry (and the genuine link's CSRF token) is
        // refused the same way, and stores nothing.
        let mut fields = vec![(
            "csrf".to_owned(),
            hidden(&genuine.text, "csrf").expect("the form has a CSRF token"),
        )];
        fields.extend(
            respelled
                .split_once('?')
                .unwrap()
                .1
                .split('&')
                .map(|pair| pair.split_once('=').unwrap())
                .map(|(key, value)| (key.to_owned(), value.to_owned())),
        );
        let body = fields
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .chain(["text=respelled".to_owned()])
            .collect::<Vec<_>>()
            .join("&");
        let posted = post_form(&format!("{}/requests/{}", server.url, request.id), None, body).await;
        assert_eq!(posted.status, 403, "POST with exp={spelling}: {}", posted.text);
    }
    assert_eq!(
        server.snapshot(&request.id).await,
        before,
        "a refused link changed the request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_link_expires_when_the_engine_clock_reaches_its_expiry() {
    let clock = manual_clock();
    let engine = Engine::temporary()
        .clock(clock.clone())
        .register(ask)
        .open()
        .await
        .unwrap();
    let server = start_with(engine, config()).await;
    let (_, request) = server.ask("free_text").await;
    let valid_for = Duration::from_secs(600);
    let link = signed_link(&server.engine, &request.id, "alice", valid_for).unwrap();
    assert_eq!(
        UNIX_EPOCH + Duration::from_secs(expiry_of(&link)),
        server.engine.now() + valid_for,
        "the link's expiry is measured from the engine's clock"
    );
    let url = format!("{}{link}", server.url);

    clock.advance(valid_for - Duration::from_millis(1));
    let last_moment = get_page(&url, None).await;
    assert_eq!(last_moment.status, 200, "{}", last_moment.text);

    clock.advance(Duration::from_millis(1));
    let expired = get_page(&url, None).await;
    assert_eq!(expired.status, 410, "{}", expired.text);
    assert!(expired.text.contains("expired"), "{}", expired.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_expires_when_the_engine_clock_reaches_its_expiry() {
    let clock = manual_clock();
    let engine = Engine::temporary()
        .clock(clock.clone())
        .register(ask)
        .open()
        .await
        .unwrap();
    let ttl = Duration::from_secs(3600);
    let server = start_with(engine, config().session_ttl(ttl)).await;
    let session = sign_in(&server, ALICE).await;
    let inbox = format!("{}/", server.url);

    let signed_in = get_page(&inbox, Some(&session)).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);

    clock.advance(ttl - Duration::from_millis(1));
    let last_moment = get_page(&inbox, Some(&session)).await;
    assert_eq!(last_moment.status, 200, "{}", last_moment.text);

    clock.advance(Duration::from_millis(1));
    let expired = get_page(&inbox, Some(&session)).await;
    assert_eq!(
        expired.status, 303,
        "an expired session signs in again: {}",
        expired.text
    );
    assert!(
        expired.headers["location"].to_str().unwrap().contains("/login"),
        "{:?}",
        expired.headers
    );
}
