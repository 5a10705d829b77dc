//! What the server tests share: a workflow that asks one question of each kind, a real
//! server on a loopback port with three responders, and a small HTTP client.
#![allow(dead_code)]

use std::time::Duration;

use hitl::Request;
use hitl::prelude::*;
use hitl::server::{ServerConfig, serve_with};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const ALICE: &str = "alice-token-0123456789";
pub const BOB: &str = "bob-token-0123456789";
pub const CAROL: &str = "carol-token-0123456789";

/// The largest body the test servers accept.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Upper bound for every wait (a hang, never a slow machine, reaches it).
pub use hitl_workspace::PATIENCE;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "hitl::schemars")]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    Eur,
    Usd,
}

/// A refund to approve with its details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "hitl::schemars")]
pub struct Refund {
    /// Amount in cents.
    #[schemars(range(min = 1, max = 100000))]
    pub amount: u32,
    /// Why the customer gets it.
    pub reason: String,
    pub currency: Currency,
    /// Pay out today.
    pub urgent: bool,
}

/// The details shown with the approval: Markdown with hostile HTML in it.
pub const HOSTILE_DETAILS: &str = "Canary error rate: **0.1 %**\n\n\
    <script>alert('details')</script>\n\n\
    [docs](javascript:alert('link')) and <img src=x onerror=alert('img')>";

/// Asks one question of the kind `kind` and describes the answer.
#[workflow(inject_context)]
pub async fn ask(ctx: &TaskContext, kind: String) -> hitl::Result<String> {
    let described = match kind.as_str() {
        "approval" => {
            let answer = ctx
                .request_feedback(Feedback::approval("Deploy api to production?").details(HOSTILE_DETAILS))
                .await?;
            format!(
                "approved={} comment={:?} by {}",
                answer.approved(),
                answer.comment(),
                answer.responder()
            )
        }
        "text" => {
            let answer = ctx
                .request_feedback(
                    Feedback::text("Release note?")
                        .min_len(5)
                        .max_len(60)
                        .pattern("[A-Z][^<>]*"),
                )
                .await?;
            format!("text={:?} by {}", answer.text(), answer.responder())
        }
        "free_text" => {
            let answer = ctx.request_feedback(Feedback::text("Anything to add?")).await?;
            format!("text={:?} by {}", answer.text(), answer.responder())
        }
        "selection" => {
            let answer = ctx
                .request_feedback(
                    Feedback::selection("Which region first?", ["eu-west", "us-east", "ap-south"])
                        .default_option("eu-west"),
                )
                .await?;
            format!("selected={} by {}", answer.selected(), answer.responder())
        }
        "multi" => {
            let answer = ctx
                .request_feedback(
                    Feedback::multi_selection("Notify which channels?", ["email", "sms", "chat"])
                        .min_count(1)
                        .max_count(2),
                )
                .await?;
            format!("selected={:?} by {}", answer.selected_all(), answer.responder())
        }
        "input" => {
            let answer = ctx
                .request_feedback(
                    Feedback::input::<Refund>("Refund details?").default_value(&Refund {
                        amount: 2500,
                        reason: "late delivery".to_owned(),
                        currency: Currency::Eur,
                        urgent: false,
                    }),
                )
                .await?;
            format!("value={:?} by {}", answer.value(), answer.responder())
        }
        "alice_only" => {
            let answer = ctx
                .request_feedback(Feedback::approval("Rotate the keys?").responders(["alice"]))
                .await?;
            format!("approved={} by {}", answer.approved(), answer.responder())
        }
        "quorum" => {
            let answer = ctx
                .request_feedback(
                    Feedback::approval("Delete the old cluster?")
                        .responders(["alice", "bob", "carol"])
                        .quorum(2),
                )
                .await?;
            format!("approved={} votes={}", answer.approved(), answer.votes().len())
        }
        "expiring" => {
            let answer = ctx
                .request_feedback(Feedback::approval("Quick?").expires_after(Duration::from_millis(200)))
                .await?;
            format!("approved={}", answer.approved())
        }
        other => format!("unknown kind {other}"),
    };
    Ok(described)
}

/// A real server on 127.0.0.1 with responders alice, bob and carol.
pub struct TestServer {
    pub engine: Engine,
    pub url: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn config() -> ServerConfig {
    ServerConfig::new()
        .token("alice", ALICE)
        .token("bob", BOB)
        .token("carol", CAROL)
        .body_limit(BODY_LIMIT)
}

/// An engine on a memory store holding run `blocked-run` of `ask` version 9, which this build
/// does not register: the engine blocks it when it opens.
pub async fn engine_with_a_blocked_run() -> Engine {
    let store = hitl::store::MemStore::new();
    let blocked: hitl::store::RunRecord = serde_json::from_value(serde_json::json!({
        "v": 2, "id": "blocked-run", "workflow": "ask", "version": 9, "status": "blocked",
        "input": {"kind": "approval"}, "fingerprint": "f", "created_at": 1, "updated_at": 1,
        "lease_epoch": 1,
    }))
    .unwrap();
    hitl::store::Store::create_run(&store, &blocked).await.unwrap();
    Engine::temporary()
        .store(store)
        .register(ask)
        .open()
        .await
        .unwrap()
}

pub async fn start() -> TestServer {
    let engine = Engine::temporary().register(ask).open().await.unwrap();
    start_with(engine, config()).await
}

pub async fn start_with(engine: Engine, config: ServerConfig) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(serve_with(listener, engine.clone(), config));
    TestServer { engine, url, task }
}

impl TestServer {
    /// Starts a run asking `kind` and returns it with its (paused) request.
    pub async fn ask(&self, kind: &str) -> (hitl::Run<String>, Request) {
        let run = self.engine.start(ask, (kind.to_owned(),)).await.unwrap();
        let request = hitl_workspace::pending_request(&self.engine, run.id(), None).await;
        (run, request)
    }

    /// Waits for the run to finish and returns its output.
    pub async fn completes(&self, run: &hitl::Run<String>) -> String {
        match tokio::time::timeout(PATIENCE, run.wait()).await {
            Ok(Ok(Outcome::Completed(output))) => output,
            other => panic!("run {} did not complete: {other:?}", run.id()),
        }
    }

    /// The request as stored, as JSON (to compare before and after a refused answer).
    pub async fn snapshot(&self, request_id: &str) -> Value {
        serde_json::to_value(self.engine.request(request_id).await.unwrap()).unwrap()
    }
}

/// An HTTP client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// An answer from the server: status, headers, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text))
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.unwrap();
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

/// `GET` with an optional bearer token.
pub async fn get(url: &str, token: Option<&str>) -> Reply {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

/// `POST` of a raw body with an optional bearer token.
pub async fn post(url: &str, token: Option<&str>, body: impl Into<reqwest::Body>) -> Reply {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

/// The value of the hidden input `name` in an HTML page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&").replace("&quot;", "\""))
}

/// The `name=value` of a `Set-Cookie` header for `name`.
pub fn cookie(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// URL-encodes form fields.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Signs in through the login form as the owner of `token`; returns the session cookie.
pub async fn sign_in(server: &TestServer, token: &str) -> String {
    let page = get(&format!("{}/login", server.url), None).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let nonce = cookie(&page.headers, "hitl_login").expect("the login page sets its nonce cookie");
    let csrf = hidden(&page.text, "csrf").expect("the login form has a CSRF token");
    let reply = send(
        client()
            .post(format!("{}/login", server.url))
            .header("cookie", &nonce)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", &csrf), ("token", token), ("next", "/")])),
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    cookie(&reply.headers, "hitl_session").expect("signing in sets the session cookie")
}

/// `POST` of an HTML form with optional cookies.
pub async fn post_form(url: &str, cookies: Option<&str>, body: String) -> Reply {
    let mut request = client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(cookies) = cookies {
        request = request.header("cookie", cookies);
    }
    send(request).await
}

/// `GET` of a page with optional cookies.
pub async fn get_page(url: &str, cookies: Option<&str>) -> Reply {
    let mut request = client().get(url);
    if let Some(cookies) = cookies {
        request = request.header("cookie", cookies);
    }
    send(request).await
}
