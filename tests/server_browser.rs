//! A real headless Chromium (Debian's `chromium` and `chromium-driver`, installed by
//! `.ci/run`) driven through WebDriver with fantoccini: sign in, open the inbox, answer one
//! request of each kind through its form, see the confirmation, and check that each run
//! resumed and completed; a validation error shows its message and keeps the input; two
//! browsers answering the same request get one confirmation and one "already answered" page.
//!
//! Without Chromium the test is skipped locally and fails in CI (`CI` set). With
//! `HITL_SCREENSHOTS=<dir>` it also saves screenshots of the inbox and of a form there.

mod server_common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use server_common::*;

/// `chromedriver --port=N`, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

async fn chromedriver() -> Option<Driver> {
    if !installed("chromium") || !installed("chromedriver") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver (see .ci/run)"
        );
        eprintln!("skipping the browser test: install `chromium` and `chromium-driver` to run it");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(reply) = client().get(format!("{}/status", driver.url)).send().await
            && reply.status().is_success()
        {
            return Some(driver);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A headless Chromium with a profile of its own.
async fn browser(driver: &Driver, profile: &tempfile::TempDir) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,900",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([format!("--user-data-dir={}", profile.path().display())])
    .collect::<Vec<_>>();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({"args": args, "binary": "/usr/bin/chromium"}),
    );
    // Chromium's first launch (profile, font cache) can take long on a loaded machine: the
    // session is awaited, bounded only so that a hang fails.
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(capabilities);
    hitl_workspace::patiently("a WebDriver session starts", builder.connect(&driver.url))
        .await
        .expect("a WebDriver session")
}

async fn css(browser: &Client, selector: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(selector))
        .await
        .unwrap_or_else(|error| panic!("no `{selector}` on the page: {error}"))
}

async fn text_of(browser: &Client, selector: &str) -> String {
    css(browser, selector).await.text().await.unwrap()
}

async fn sign_in_with(browser: &Client, server: &TestServer, token: &str) {
    browser.goto(&format!("{}/", server.url)).await.unwrap();
    // Not signed in: the inbox sends the browser to the sign-in form.
    let field = css(browser, "input[name=token]").await;
    field.send_keys(token).await.unwrap();
    css(browser, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    css(browser, "header .who").await;
}

/// Opens `prompt` from the inbox.
async fn open_from_inbox(browser: &Client, server: &TestServer, prompt: &str) {
    browser.goto(&format!("{}/", server.url)).await.unwrap();
    css(browser, "table").await;
    browser
        .find(Locator::LinkText(prompt))
        .await
        .unwrap_or_else(|_| panic!("`{prompt}` is in the inbox"))
        .click()
        .await
        .unwrap();
    css(browser, "main form").await;
}

async fn submit(browser: &Client, selector: &str) {
    css(browser, selector).await.click().await.unwrap();
}

async fn confirmed(browser: &Client) -> String {
    text_of(browser, "#confirmation").await
}

fn screenshots() -> Option<PathBuf> {
    std::env::var_os("HITL_SCREENSHOTS").map(PathBuf::from)
}

async fn screenshot(browser: &Client, name: &str) {
    if let Some(dir) = screenshots() {
        std::fs::create_dir_all(&dir).unwrap();
        let png = browser.screenshot().await.unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_answers_every_kind_in_a_real_browser() {
    let Some(driver) = chromedriver().await else {
        return;
    };
    let server = start().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, &profile).await;
    answer_every_kind(&server, &browser).await;
    browser.close().await.unwrap();
}

async fn answer_every_kind(server: &TestServer, browser: &Client) {
    let (approval_run, _) = server.ask("approval").await;
    let (text_run, _) = server.ask("text").await;
    let (selection_run, _) = server.ask("selection").await;
    let (multi_run, _) = server.ask("multi").await;
    let (input_run, _) = server.ask("input").await;

    sign_in_with(browser, server, ALICE).await;
    let inbox = text_of(browser, "main").await;
    for prompt in [
        "Deploy api to production?",
        "Release note?",
        "Which region first?",
        "Notify which channels?",
        "Refund details?",
    ] {
        assert!(inbox.contains(prompt), "the inbox lists `{prompt}`: {inbox}");
    }
    assert!(inbox.contains("5 pending requests"), "{inbox}");
    screenshot(browser, "inbox.png").await;

    // Approval: a comment and the Approve button. The details' script never ran: no alert.
    open_from_inbox(browser, server, "Deploy api to production?").await;
    assert!(browser.get_alert_text().await.is_err(), "no script ran");
    assert!(
        text_of(browser, ".details")
            .await
            .contains("<script>alert('details')</script>")
    );
    css(browser, "#comment")
        .await
        .send_keys("Canary looks healthy")
        .await
        .unwrap();
    submit(browser, "button[value=approve]").await;
    assert!(confirmed(browser).await.contains("Answer recorded"));
    assert_eq!(
        server.completes(&approval_run).await,
        "approved=true comment=Some(\"Canary looks healthy\") by alice"
    );

    // Text: a validation error shows its message and keeps what was typed.
    open_from_inbox(browser, server, "Release note?").await;
    css(browser, "#text").await.send_keys("Tiny").await.unwrap();
    submit(browser, "main form button[type=submit]").await;
    let error = text_of(browser, "#form-error").await;
    assert!(error.contains("at least 5 characters long (4 given)"), "{error}");
    let kept = css(browser, "#text").await.prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some("Tiny"), "the input is kept");
    let field = css(browser, "#text").await;
    field.clear().await.unwrap();
    field.send_keys("Faster builds for everyone").await.unwrap();
    submit(browser, "main form button[type=submit]").await;
    assert!(confirmed(browser).await.contains("Answer recorded"));
    assert_eq!(
        server.completes(&text_run).await,
        "text=\"Faster builds for everyone\" by alice"
    );

    // Selection: a radio group, pre-selected with the default.
    open_from_inbox(browser, server, "Which region first?").await;
    let default = css(browser, "input[value=eu-west]").await;
    assert!(
        default.is_selected().await.unwrap(),
        "the default is pre-selected"
    );
    css(browser, "label[for=option-1]").await.click().await.unwrap();
    submit(browser, "main form button[type=submit]").await;
    assert!(confirmed(browser).await.contains("us-east"));
    assert_eq!(
        server.completes(&selection_run).await,
        "selected=us-east by alice"
    );

    // Multi-selection: checkboxes with min and max.
    open_from_inbox(browser, server, "Notify which channels?").await;
    screenshot(browser, "form-multi-selection.png").await;
    css(browser, "input[value=chat]").await.click().await.unwrap();
    css(browser, "input[value=email]").await.click().await.unwrap();
    submit(browser, "main form button[type=submit]").await;
    assert!(confirmed(browser).await.contains("email, chat"));
    assert_eq!(
        server.completes(&multi_run).await,
        "selected=[\"email\", \"chat\"] by alice"
    );

    // Typed input: a form generated from the JSON Schema, defaults pre-filled.
    open_from_inbox(browser, server, "Refund details?").await;
    let amount = css(browser, "#value-amount").await;
    assert_eq!(amount.prop("value").await.unwrap().as_deref(), Some("2500"));
    screenshot(browser, "form-typed-input.png").await;
    amount.clear().await.unwrap();
    amount.send_keys("990").await.unwrap();
    css(browser, "#value-currency")
        .await
        .select_by_value("USD")
        .await
        .unwrap();
    let reason = css(browser, "#value-reason").await;
    reason.clear().await.unwrap();
    reason.send_keys("broken on arrival").await.unwrap();
    css(browser, "#value-urgent").await.click().await.unwrap();
    submit(browser, "main form button[type=submit]").await;
    assert!(confirmed(browser).await.contains("Answer recorded"));
    assert_eq!(
        server.completes(&input_run).await,
        "value=Refund { amount: 990, reason: \"broken on arrival\", currency: Usd, urgent: true } by alice"
    );

    // Every run resumed and completed; the inbox is empty and the run page shows the answer.
    browser.goto(&format!("{}/", server.url)).await.unwrap();
    assert!(
        text_of(browser, "main")
            .await
            .contains("Nothing is waiting for an answer.")
    );
    browser
        .goto(&format!("{}/runs/{}", server.url, input_run.id()))
        .await
        .unwrap();
    assert_eq!(text_of(browser, "#run-status").await, "completed");
    assert!(text_of(browser, "ol.timeline").await.contains("by alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_answer_the_same_request_and_one_wins() {
    let Some(driver) = chromedriver().await else {
        return;
    };
    let server = start().await;
    let (run, _) = server.ask("approval").await;
    let (first_profile, second_profile) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = browser(&driver, &first_profile).await;
    let second = browser(&driver, &second_profile).await;

    sign_in_with(&first, &server, ALICE).await;
    sign_in_with(&second, &server, BOB).await;
    open_from_inbox(&first, &server, "Deploy api to production?").await;
    open_from_inbox(&second, &server, "Deploy api to production?").await;
    // Both forms are open; alice approves first, bob rejects second.
    submit(&first, "button[value=approve]").await;
    let confirmation = confirmed(&first).await;
    submit(&second, "button[value=reject]").await;
    let refused = text_of(&second, "#closed").await;
    first.close().await.unwrap();
    second.close().await.unwrap();

    assert!(confirmation.contains("Answer recorded"), "{confirmation}");
    assert!(refused.contains("Already answered"), "{refused}");
    assert_eq!(
        server.completes(&run).await,
        "approved=true comment=None by alice"
    );
}
