//! The HTML pages: sign-in, inbox, one page per request with its form, confirmation, runs.
//!
//! `GET` only shows; only `POST` answers, signs in or out, and every `POST` form carries a
//! CSRF token. A page needs a session, except a request's page opened through a signed link,
//! which shows and answers just that request.
//!
//! The handlers of each page family have their own file: `sign_in` (`/login`, `/logout`),
//! `request` (`/requests/{id}`: its page and its answer) and `runs` (`/runs`, `/runs/{id}`);
//! this module has the inbox and what they share.

mod request;
mod runs;
mod sign_in;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use maud::Markup;

use crate::server::AppState;
use crate::server::auth::{self, Session};
use crate::server::error::ApiError;
use crate::server::form::Pairs;
use crate::server::views::{self, Paths, Viewer};
use crate::{PendingFilter, RunFilter};

pub(crate) use request::{answer, request_page};
pub(crate) use runs::{decide, run_page, runs_page};
pub(crate) use sign_in::{login, login_form, logout};

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

fn paths(state: &AppState) -> Paths<'_> {
    Paths {
        base: state.config().mount_path(),
    }
}

fn pairs_of(bytes: &[u8]) -> Pairs {
    form_urlencoded::parse(bytes).into_owned().collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// An error as a page (an API-style error turned into something a person can read).
fn error_page(state: &AppState, viewer: &Viewer<'_>, error: &ApiError) -> Response {
    let title = match error.status {
        StatusCode::BAD_REQUEST => "That form could not be read",
        StatusCode::UNAUTHORIZED => "Please sign in",
        StatusCode::FORBIDDEN if error.code == "bad_signature" => "This link is not valid",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::GONE if error.code == "link_expired" => "This link has expired",
        StatusCode::GONE => "No longer open",
        StatusCode::PAYLOAD_TOO_LARGE => "Too much text",
        _ => "Something went wrong",
    };
    page(
        error.status,
        views::message(paths(state), viewer, title, &error.message),
    )
}

/// The signed-in session, or a redirect to the sign-in page that comes back to `uri`.
fn signed_in(state: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<(Session, String), Box<Response>> {
    match auth::session(state, headers) {
        Ok(Some(session)) => match state.secret() {
            Ok(secret) => {
                let csrf = auth::session_csrf(&secret, &session);
                Ok((session, csrf))
            }
            Err(error) => Err(Box::new(error_page(state, &Viewer::Anonymous, &error))),
        },
        Ok(None) => {
            let mut next = paths(state).to(uri.path());
            if let Some(query) = uri.query() {
                next = format!("{next}?{query}");
            }
            let login = format!(
                "{}?next={}",
                paths(state).to("/login"),
                crate::sign::percent_encode(&next)
            );
            Err(Box::new(
                (StatusCode::SEE_OTHER, [(header::LOCATION, login)]).into_response(),
            ))
        }
        Err(error) => Err(Box::new(error_page(state, &Viewer::Anonymous, &error))),
    }
}

/// `GET /`: the pending requests.
pub(crate) async fn inbox(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let (session, csrf) = match signed_in(&state, &headers, &uri) {
        Ok(signed_in) => signed_in,
        Err(response) => return *response,
    };
    let viewer = Viewer::Session {
        responder: &session.responder,
        csrf: &csrf,
    };
    let engine = state.engine();
    let loaded = async {
        let requests = engine.pending(&PendingFilter::default()).await?;
        let blocked = RunFilter {
            status: Some(crate::RunStatus::Blocked),
            ..RunFilter::default()
        };
        Ok::<_, crate::Error>((requests, engine.runs(&blocked).await?))
    }
    .await;
    match loaded {
        Ok((requests, blocked)) => page(
            StatusCode::OK,
            views::inbox(paths(&state), &viewer, &requests, &blocked, engine.now()),
        ),
        Err(error) => error_page(&state, &viewer, &error.into()),
    }
}

/// Any other path.
pub(crate) async fn not_found(State(state): State<AppState>) -> Response {
    error_page(
        &state,
        &Viewer::Anonymous,
        &ApiError::not_found("There is no page at this address."),
    )
}
