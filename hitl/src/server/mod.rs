//! The HTTP server (feature `server`): a JSON API, an HTML inbox with a form per request,
//! an OpenAPI document, and signed links for notifications.
//!
//! The server is a thin layer over the [`Engine`]: everything it shows comes from
//! [`Engine::requests`], [`Engine::request`], [`Engine::runs`], [`Engine::history`], and
//! every answer goes through [`Engine::respond`], which validates it before anything is
//! stored. It runs in the process that runs the workflows (sled is single-process), so an
//! answer resumes its run at once.
//!
//! * [`router`] returns an axum [`Router`] to mount in an application's own server;
//!   [`serve`] binds an address and serves it, for applications that have none.
//! * **Credentials name a responder.** API calls carry `Authorization: Bearer <token>`;
//!   tokens map to responder names ([`ServerConfig::from_env`]: `HITL_TOKENS="alice:…,bob:…"`,
//!   or a lone `HITL_TOKEN` for the responder `admin`, or a generated token printed at
//!   start). A browser signs in once with its token and gets an HttpOnly session cookie. A
//!   signed link ([`signed_link`], and the links in webhook and Slack notifications) opens
//!   just its request, for the responder it names, until it expires. The responder recorded
//!   with an answer is always the one the credentials vouch for, never one from the body.
//! * **Prefetch-safe.** `GET` never changes anything; only `POST` answers, and every HTML
//!   form carries a CSRF token bound to its session or link.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/requests?status=&workflow=&run=` | requests (every status unless `status` is given) |
//! | GET | `/api/requests/{id}` | one request |
//! | POST | `/api/requests/{id}/respond` | answer: `{"approved": true, "comment": "…"}`, `{"text": "…"}`, `{"selected": "…"}`, `{"selected": ["…"]}`, `{"value": …}` |
//! | GET | `/api/runs?status=&workflow=` | runs |
//! | GET | `/api/runs/{id}` | one run |
//! | GET | `/api/runs/{id}/history` | its journaled steps |
//! | POST | `/api/runs/{id}/cancel` | cancel: `{"reason": "…"}` (optional) |
//! | GET | `/api/openapi.json` | the OpenAPI 3.1 document of the above |
//! | GET | `/health` | `{"status": "ok"}`, without credentials |
//! | GET | `/`, `/requests/{id}`, `/runs`, `/runs/{id}`, `/login` | HTML pages |
//!
//! Errors are `{"error": {"code": "…", "message": "…"}}` with 400 (malformed JSON, unknown
//! fields, bad query), 401 (missing or wrong token), 403 (responder not allowed, bad link
//! signature or CSRF token), 404 (unknown id), 405 (a method the path does not take), 409
//! (already answered or already voted; cancelling a finished run), 410 (request expired or
//! cancelled, link expired), 413 (body too large), 422 (an answer that fails validation), 500
//! (the database failed) or 503 (the engine is shutting down). None of them stores anything.
//!
//! # Examples
//!
//! ```no_run
//! use hitl::prelude::*;
//!
//! #[workflow(inject_context)]
//! async fn release(ctx: &TaskContext) -> hitl::Result<bool> {
//!     let answer = ctx.request_feedback(Feedback::approval("Deploy?")).await?;
//!     Ok(answer.approved())
//! }
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let engine = Engine::builder()
//!     .path("hitl.db")
//!     .base_url("http://localhost:8080")
//!     .register(release)
//!     .open()
//!     .await
//!     .expect("open the engine");
//! hitl::server::serve(engine, "127.0.0.1:8080").await
//! # }
//! ```

mod api;
mod auth;
mod config;
mod decide;
mod error;
mod form;
mod markdown;
mod openapi;
mod pages;
mod views;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};

pub use config::ServerConfig;
pub use openapi::openapi_json;

use crate::Engine;
use error::ApiError;

/// The server's shared state: the engine, the configuration, the signing key.
#[derive(Clone)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    config: ServerConfig,
    secret: OnceLock<Arc<[u8]>>,
}

impl AppState {
    fn new(engine: Engine, config: ServerConfig) -> Self {
        AppState {
            inner: Arc::new(Inner {
                engine,
                config,
                secret: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The key that signs links, sessions and CSRF tokens (read from the database once).
    pub(crate) fn secret(&self) -> Result<Arc<[u8]>, ApiError> {
        if let Some(secret) = self.inner.secret.get() {
            return Ok(Arc::clone(secret));
        }
        let secret: Arc<[u8]> = self.inner.engine.link_secret()?.into();
        Ok(Arc::clone(self.inner.secret.get_or_init(|| secret)))
    }
}

/// The server's routes for `engine`, configured from the environment
/// ([`ServerConfig::from_env`]). When neither `HITL_TOKENS` nor `HITL_TOKEN` is set, a token
/// for the responder `admin` is generated and printed to standard error.
///
/// # Panics
///
/// If `HITL_TOKENS` is malformed: a server must not start with credentials other than those
/// its operator meant. Use [`router_with`] and [`ServerConfig::from_env`] to handle it.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
/// let engine = hitl::Engine::temporary().open().await?;
/// // Merge it into an application's own router (under a prefix: `nest` it and set
/// // `HITL_BASE_PATH`, or use `router_with` and `ServerConfig::base_path`):
/// let app = axum::Router::new()
///     .route("/app", axum::routing::get(|| async { "my application" }))
///     .merge(hitl::server::router(engine));
/// # let _ = app; Ok(()) }
/// ```
pub fn router(engine: Engine) -> Router {
    let config = ServerConfig::from_env().unwrap_or_else(|error| panic!("{error}"));
    if let Some(token) = config.generated_token() {
        eprintln!("{}", config::generated_token_notice(token));
    }
    router_with(engine, config)
}

/// The server's routes for `engine` with an explicit configuration.
///
/// # Examples
///
/// ```
/// use hitl::server::{ServerConfig, router_with};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
/// let engine = hitl::Engine::temporary().open().await?;
/// let config = ServerConfig::new()
///     .token("alice", "a-long-random-token")
///     .body_limit(32 * 1024)
///     .base_path("/hitl");
/// let app = axum::Router::new().nest("/hitl", router_with(engine, config));
/// # let _ = app; Ok(()) }
/// ```
pub fn router_with(engine: Engine, config: ServerConfig) -> Router {
    let body_limit = config.body_limit_bytes();
    let state = AppState::new(engine, config);
    Router::new()
        .route("/health", get(api::health))
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/requests", get(api::list_requests))
        .route("/api/requests/{id}", get(api::get_request))
        .route("/api/requests/{id}/respond", post(api::respond))
        .route("/api/runs", get(api::list_runs))
        .route("/api/runs/export", get(decide::export))
        .route("/api/runs/{id}", get(api::get_run))
        .route("/api/runs/{id}/history", get(api::run_history))
        .route("/api/runs/{id}/cancel", post(api::cancel_run))
        .route("/api/runs/{id}/decide", post(decide::decide))
        .route("/api/{*rest}", get(api::not_found).post(api::not_found))
        .route("/", get(pages::inbox))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/requests/{id}", get(pages::request_page).post(pages::answer))
        .route("/runs", get(pages::runs_page))
        .route("/runs/{id}", get(pages::run_page))
        .route("/runs/{id}/decide", post(pages::decide))
        .fallback(pages::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Serves the routes for `engine` on `addr`, configured from the environment, until the
/// process ends. Prints the address, and the generated token when no token is configured.
///
/// # Errors
///
/// If the address cannot be bound or `HITL_TOKENS` is malformed.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let engine = hitl::Engine::builder().path("hitl.db").open().await.unwrap();
/// hitl::server::serve(engine, "127.0.0.1:8080").await
/// # }
/// ```
pub async fn serve(engine: Engine, addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<()> {
    let config = ServerConfig::from_env()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("hitl: serving the inbox on http://{}/", listener.local_addr()?);
    if let Some(token) = config.generated_token() {
        eprintln!("{}", config::generated_token_notice(token));
    }
    serve_with(listener, engine, config).await
}

/// Serves the routes for `engine` on an already bound listener (port 0 in tests), with an
/// explicit configuration. Prints nothing.
///
/// # Errors
///
/// When accepting connections fails for good.
///
/// # Examples
///
/// ```no_run
/// use hitl::server::{ServerConfig, serve_with};
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let engine = hitl::Engine::temporary().open().await.unwrap();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// println!("listening on {}", listener.local_addr()?);
/// serve_with(listener, engine, ServerConfig::new().token("alice", "s3cret-token")).await
/// # }
/// ```
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    engine: Engine,
    config: ServerConfig,
) -> std::io::Result<()> {
    axum::serve(listener, router_with(engine, config)).await
}

/// A signed link (path and query: `/requests/{id}?as=…&exp=…&sig=…`) that lets whoever holds
/// it answer the request `request_id` as `responder` for `valid_for`. Prefix it with the
/// server's public URL. Notifications carry such links already; use this to send one
/// another way (an e-mail, a chat message).
///
/// # Errors
///
/// When the signing key cannot be read from the database.
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
/// let engine = hitl::Engine::temporary().open().await?;
/// let link = hitl::server::signed_link(&engine, "req-1", "alice", Duration::from_secs(3600))?;
/// assert!(link.starts_with("/requests/req-1?as=alice&exp="));
/// # Ok(()) }
/// ```
pub fn signed_link(
    engine: &Engine,
    request_id: &str,
    responder: &str,
    valid_for: Duration,
) -> crate::Result<String> {
    let expires = crate::sign::unix_seconds(engine.now() + valid_for);
    Ok(crate::sign::link_path(
        &engine.link_secret()?,
        request_id,
        responder,
        expires,
    ))
}

/// Headers on every response: no scripts, no framing, no referrer (links carry
/// signatures), no caching of pages that carry CSRF tokens.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
             base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nested_under_a_base_path_pages_link_and_redirect_under_it() {
        let engine = Engine::temporary().open().await.unwrap();
        let config = ServerConfig::new()
            .token("alice", "token-of-alice")
            .base_path("hitl/");
        let app = Router::new().nest("/hitl", router_with(engine, config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let inbox = client.get(format!("{base}/hitl")).send().await.unwrap();
        assert_eq!(inbox.status(), 303);
        assert_eq!(inbox.headers()["location"], "/hitl/login?next=%2Fhitl");
        let login = client.get(format!("{base}/hitl/login")).send().await.unwrap();
        assert_eq!(login.status(), 200);
        let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.contains("Path=/hitl;"), "{cookie}");
        let body = login.text().await.unwrap();
        assert!(body.contains(r#"action="/hitl/login""#), "{body}");
        let api = client
            .get(format!("{base}/hitl/api/requests"))
            .bearer_auth("token-of-alice")
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 200);
        server.abort();
    }
}
