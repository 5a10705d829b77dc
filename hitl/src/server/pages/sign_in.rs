//! Signing in with a token (the session cookie) and signing out.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::{error_page, field, page, pairs_of, paths};
use crate::server::AppState;
use crate::server::auth::{self, LOGIN_COOKIE, SESSION_COOKIE};
use crate::server::error::ApiError;
use crate::server::views::{self, Viewer};
use crate::sign::hex;

/// `GET /login`: the sign-in form. Sets the nonce cookie its CSRF token is bound to.
pub(crate) async fn login_form(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let next = uri
        .query()
        .map(|query| pairs_of(query.as_bytes()))
        .and_then(|pairs| field(&pairs, "next").map(str::to_owned))
        .unwrap_or_default();
    login_page(&state, &headers, &next, None, StatusCode::OK)
}

fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let secret = match state.secret() {
        Ok(secret) => secret,
        Err(error) => return error_page(state, &Viewer::Anonymous, &error),
    };
    let nonce = auth::cookie(headers, LOGIN_COOKIE)
        .filter(|nonce| nonce.len() == 32 && crate::sign::unhex(nonce).is_some())
        .map_or_else(|| hex(uuid::Uuid::new_v4().as_bytes()), str::to_owned);
    let csrf = auth::login_csrf(&secret, &nonce);
    let mut response = page(status, views::login(paths(state), next, &csrf, error));
    response.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(state, LOGIN_COOKIE, &nonce, Duration::from_secs(3600)),
    );
    response
}

/// Only paths on this server (no `//host`, no scheme) are followed after signing in.
fn local_path(state: &AppState, next: &str) -> String {
    let safe = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.bytes().all(|byte| byte.is_ascii_graphic());
    if safe {
        next.to_owned()
    } else {
        paths(state).to("/")
    }
}

/// `POST /login`: checks the token and sets the session cookie.
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error_page(&state, &Viewer::Anonymous, &rejection.into()),
    };
    let pairs = pairs_of(&body);
    let next = field(&pairs, "next").unwrap_or_default().to_owned();
    let secret = match state.secret() {
        Ok(secret) => secret,
        Err(error) => return error_page(&state, &Viewer::Anonymous, &error),
    };
    let nonce = auth::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if nonce.is_empty() || !auth::csrf_matches(&auth::login_csrf(&secret, nonce), field(&pairs, "csrf")) {
        return login_page(
            &state,
            &headers,
            &next,
            Some(
                "The sign-in form expired or did not come from this server; please try again (cookies must be enabled).",
            ),
            StatusCode::FORBIDDEN,
        );
    }
    let token = field(&pairs, "token").unwrap_or_default().trim();
    let Some(responder) = state.config().responder_of(token) else {
        return login_page(
            &state,
            &headers,
            &next,
            Some("That token is not valid."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let ttl = state.config().session_lifetime();
    let value = auth::new_session(&secret, responder, token, state.engine().now() + ttl);
    let location = local_path(&state, &next);
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::LOCATION,
                location.parse().expect("a local path is a valid header"),
            ),
            (
                header::SET_COOKIE,
                auth::set_cookie(&state, SESSION_COOKIE, &value, ttl),
            ),
        ],
    )
        .into_response()
}

/// `POST /logout`: removes the session cookie.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let pairs = body.map(|body| pairs_of(&body)).unwrap_or_default();
    let session = auth::session(&state, &headers).ok().flatten();
    let secret = state.secret().ok();
    let valid = match (&session, &secret) {
        (Some(session), Some(secret)) => {
            auth::csrf_matches(&auth::session_csrf(secret, session), field(&pairs, "csrf"))
        }
        _ => false,
    };
    if session.is_some() && !valid {
        let error = ApiError::forbidden("the sign-out form did not come from this server");
        return error_page(&state, &Viewer::Anonymous, &error);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::LOCATION,
                paths(&state)
                    .to("/login")
                    .parse()
                    .expect("a local path is a valid header"),
            ),
            (
                header::SET_COOKIE,
                auth::set_cookie(&state, SESSION_COOKIE, "", Duration::ZERO),
            ),
        ],
    )
        .into_response()
}
