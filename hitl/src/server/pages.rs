//! The HTML pages: sign-in, inbox, one page per request with its form, confirmation, runs.
//!
//! `GET` only shows; only `POST` answers, signs in or out, and every `POST` form carries a
//! CSRF token. A page needs a session, except a request's page opened through a signed link,
//! which shows and answers just that request.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use maud::Markup;

use super::AppState;
use super::auth::{self, LOGIN_COOKIE, Link, SESSION_COOKIE, Session};
use super::error::ApiError;
use super::form::{self, Pairs};
use super::views::{self, Filled, Hidden, Paths, Viewer};
use crate::sign::hex;
use crate::{Error, PendingFilter, Request, RequestStatus, Responder, RunFilter};

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
    match state.engine().pending(&PendingFilter::default()) {
        Ok(requests) => page(
            StatusCode::OK,
            views::inbox(paths(&state), &viewer, &requests, state.engine().now()),
        ),
        Err(error) => error_page(&state, &viewer, &error.into()),
    }
}

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

/// Who is answering a request page: a session or a signed link.
enum Credentials {
    Session {
        session: Session,
        csrf: String,
    },
    Link {
        link: Link,
        responder: Responder,
        csrf: String,
    },
}

impl Credentials {
    fn responder(&self) -> &str {
        match self {
            Credentials::Session { session, .. } => &session.responder,
            Credentials::Link { responder, .. } => responder.name(),
        }
    }

    fn csrf(&self) -> &str {
        match self {
            Credentials::Session { csrf, .. } | Credentials::Link { csrf, .. } => csrf,
        }
    }

    fn viewer(&self) -> Viewer<'_> {
        match self {
            Credentials::Session { session, csrf } => Viewer::Session {
                responder: &session.responder,
                csrf,
            },
            Credentials::Link { responder, .. } => Viewer::Link {
                responder: responder.name(),
            },
        }
    }

    fn hidden(&self) -> Hidden<'_> {
        Hidden {
            csrf: self.csrf(),
            link: match self {
                Credentials::Link { link, .. } => Some(link),
                Credentials::Session { .. } => None,
            },
        }
    }
}

/// The credentials for request `id`: a signed link among `pairs` (query or form) if there
/// is one, else the session. `Ok(None)`: neither.
fn credentials(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    pairs: &[(String, String)],
) -> Result<Option<Credentials>, ApiError> {
    let secret = state.secret()?;
    if let Some(link) = Link::from_pairs(pairs) {
        let responder = link.check(&secret, id, state.engine().now())?;
        let csrf = link.csrf(&secret);
        return Ok(Some(Credentials::Link {
            link,
            responder,
            csrf,
        }));
    }
    Ok(auth::session(state, headers)?.map(|session| {
        let csrf = auth::session_csrf(&secret, &session);
        Credentials::Session { session, csrf }
    }))
}

/// Why this viewer cannot answer a pending request, if they cannot.
fn cannot_answer(request: &Request, responder: &str) -> Option<(StatusCode, String, String)> {
    if !request.responders.is_empty() && !request.responders.iter().any(|allowed| allowed == responder) {
        return Some((
            StatusCode::FORBIDDEN,
            "Not yours to answer".to_owned(),
            format!(
                "{responder} may not answer this request; it is for {}.",
                request.responders.join(", ")
            ),
        ));
    }
    if request.votes.iter().any(|vote| vote.responder == responder) {
        let approvals = request.votes.iter().filter(|vote| vote.approved).count() as u32;
        return Some((
            StatusCode::OK,
            "Already voted".to_owned(),
            already_voted(responder, approvals, request.quorum),
        ));
    }
    None
}

/// `alice already voted (1 of 2 approvals); …`
fn already_voted(responder: &str, approvals: u32, quorum: u32) -> String {
    format!(
        "{responder} already voted ({approvals} of {quorum} approvals); each responder votes once and the request waits for the other approvals."
    )
}

/// The page of a request that is no longer pending.
fn closed(state: &AppState, viewer: &Viewer<'_>, request: &Request, status: Option<StatusCode>) -> Response {
    let (default_status, heading, text) = match request.status {
        RequestStatus::Answered => (
            StatusCode::OK,
            "Already answered",
            "This request has already been answered; the first answer counts and nothing more can be changed.",
        ),
        RequestStatus::Expired => (
            StatusCode::GONE,
            "Expired",
            "This request's deadline passed before anyone answered; it can no longer be answered.",
        ),
        RequestStatus::Cancelled => (
            StatusCode::GONE,
            "Cancelled",
            "This request was cancelled with its run; it can no longer be answered.",
        ),
        RequestStatus::Pending => (StatusCode::OK, "Open", "This request is waiting for an answer."),
    };
    page(
        status.unwrap_or(default_status),
        views::request_closed(paths(state), viewer, request, heading, text, state.engine().now()),
    )
}

/// `GET /requests/{id}`: the request and, while it is open, its form. Never changes anything,
/// so a link preview or a mail scanner fetching it answers nothing.
pub(crate) async fn request_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = match id {
        Ok(Path(id)) => id,
        Err(rejection) => return error_page(&state, &Viewer::Anonymous, &rejection.into()),
    };
    let query = uri
        .query()
        .map(|query| pairs_of(query.as_bytes()))
        .unwrap_or_default();
    let credentials = match credentials(&state, &headers, &id, &query) {
        Ok(Some(credentials)) => credentials,
        Ok(None) => {
            return match signed_in(&state, &headers, &uri) {
                Err(redirect) => *redirect,
                Ok(_) => error_page(
                    &state,
                    &Viewer::Anonymous,
                    &ApiError::unauthorized("sign in first"),
                ),
            };
        }
        Err(error) => return error_page(&state, &Viewer::Anonymous, &error),
    };
    let viewer = credentials.viewer();
    let request = match state.engine().request(&id) {
        Ok(request) => request,
        Err(error) => return error_page(&state, &viewer, &error.into()),
    };
    if request.status != RequestStatus::Pending {
        return closed(&state, &viewer, &request, None);
    }
    if let Some((status, heading, text)) = cannot_answer(&request, credentials.responder()) {
        return page(
            status,
            views::request_closed(
                paths(&state),
                &viewer,
                &request,
                &heading,
                &text,
                state.engine().now(),
            ),
        );
    }
    let values = form::initial_values(&request);
    page(
        StatusCode::OK,
        views::request_form(
            paths(&state),
            &viewer,
            &request,
            &credentials.hidden(),
            &Filled {
                values: &values,
                error: None,
                problems: &[],
            },
            state.engine().now(),
        ),
    )
}

/// `POST /requests/{id}`: answers the request as the session's or the link's responder.
pub(crate) async fn answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let anonymous = Viewer::Anonymous;
    let id = match id {
        Ok(Path(id)) => id,
        Err(rejection) => return error_page(&state, &anonymous, &rejection.into()),
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error_page(&state, &anonymous, &rejection.into()),
    };
    let pairs = pairs_of(&body);
    let credentials = match credentials(&state, &headers, &id, &pairs) {
        Ok(Some(credentials)) => credentials,
        Ok(None) => {
            let error = ApiError::unauthorized(
                "Your session has ended or you are not signed in; sign in and answer again.",
            );
            return error_page(&state, &anonymous, &error);
        }
        Err(error) => return error_page(&state, &anonymous, &error),
    };
    let viewer = credentials.viewer();
    if !auth::csrf_matches(credentials.csrf(), field(&pairs, "csrf")) {
        let error = ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_csrf",
            "This form did not come from this server or belongs to another session; reload the request and answer again.",
        );
        return error_page(&state, &viewer, &error);
    }
    let request = match state.engine().request(&id) {
        Ok(request) => request,
        Err(error) => return error_page(&state, &viewer, &error.into()),
    };
    let values = form::answer_fields(&pairs);
    let form_with = |status: StatusCode, message: &str, problems: &[(String, String)], request: &Request| {
        page(
            status,
            views::request_form(
                paths(&state),
                &viewer,
                request,
                &credentials.hidden(),
                &Filled {
                    values: &values,
                    error: Some(message),
                    problems,
                },
                state.engine().now(),
            ),
        )
    };
    let form_again =
        |status: StatusCode, message: &str, request: &Request| form_with(status, message, &[], request);
    let problems = form::problems(&request, &pairs);
    if !problems.is_empty() && request.status == RequestStatus::Pending {
        let message = match problems.len() {
            1 => "One field needs a change; see the message at the field.",
            _ => "Some fields need a change; see the messages at the fields.",
        };
        return form_with(StatusCode::UNPROCESSABLE_ENTITY, message, &problems, &request);
    }
    let response = match form::parse(&request, &pairs) {
        Ok(response) => response,
        Err(error)
            if error.status == StatusCode::UNPROCESSABLE_ENTITY
                && request.status == RequestStatus::Pending =>
        {
            return form_again(error.status, &error.message, &request);
        }
        Err(error) if request.status == RequestStatus::Pending => return error_page(&state, &viewer, &error),
        Err(_) => return closed(&state, &viewer, &request, Some(StatusCode::CONFLICT)),
    };
    let responder = Responder::new(credentials.responder());
    match state.engine().respond(&id, response, responder).await {
        Ok(updated) => page(
            StatusCode::OK,
            views::confirmation(
                paths(&state),
                &viewer,
                &updated,
                credentials.responder(),
                state.engine().now(),
            ),
        ),
        Err(Error::InvalidAnswer { problem, .. }) => form_again(
            StatusCode::UNPROCESSABLE_ENTITY,
            &capitalize(&problem.to_string()),
            &request,
        ),
        Err(Error::AlreadyVoted {
            responder,
            approvals,
            quorum,
            ..
        }) => {
            let current = state.engine().request(&id).unwrap_or(request);
            page(
                StatusCode::CONFLICT,
                views::request_closed(
                    paths(&state),
                    &viewer,
                    &current,
                    "Already voted",
                    &already_voted(&responder, approvals, quorum),
                    state.engine().now(),
                ),
            )
        }
        Err(error) => {
            let error = ApiError::from(error);
            let current = state.engine().request(&id).unwrap_or(request);
            match error.status {
                StatusCode::CONFLICT | StatusCode::GONE => {
                    closed(&state, &viewer, &current, Some(error.status))
                }
                StatusCode::FORBIDDEN => match cannot_answer(&current, credentials.responder()) {
                    Some((_, heading, text)) => page(
                        StatusCode::FORBIDDEN,
                        views::request_closed(
                            paths(&state),
                            &viewer,
                            &current,
                            &heading,
                            &text,
                            state.engine().now(),
                        ),
                    ),
                    None => error_page(&state, &viewer, &error),
                },
                _ => error_page(&state, &viewer, &error),
            }
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `GET /runs`: every run, newest change first.
pub(crate) async fn runs_page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let (session, csrf) = match signed_in(&state, &headers, &uri) {
        Ok(signed_in) => signed_in,
        Err(response) => return *response,
    };
    let viewer = Viewer::Session {
        responder: &session.responder,
        csrf: &csrf,
    };
    match state.engine().runs(&RunFilter::default()) {
        Ok(mut runs) => {
            runs.sort_by_key(|run| std::cmp::Reverse(run.updated_at));
            page(
                StatusCode::OK,
                views::runs(paths(&state), &viewer, &runs, state.engine().now()),
            )
        }
        Err(error) => error_page(&state, &viewer, &error.into()),
    }
}

/// `GET /runs/{id}`: a run and its history as a timeline.
pub(crate) async fn run_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let (session, csrf) = match signed_in(&state, &headers, &uri) {
        Ok(signed_in) => signed_in,
        Err(response) => return *response,
    };
    let viewer = Viewer::Session {
        responder: &session.responder,
        csrf: &csrf,
    };
    let id = match id {
        Ok(Path(id)) => id,
        Err(rejection) => return error_page(&state, &viewer, &rejection.into()),
    };
    let engine = state.engine();
    let loaded = engine.run_info(&id).and_then(|run| {
        let history = engine.history(&id)?;
        let filter = PendingFilter {
            run_id: Some(id.clone()),
            ..PendingFilter::default()
        };
        let requests = engine.requests(&filter, None)?;
        Ok((run, history, requests))
    });
    match loaded {
        Ok((run, history, requests)) => page(
            StatusCode::OK,
            views::run(
                paths(&state),
                &viewer,
                &run,
                &history,
                &requests,
                state.engine().now(),
            ),
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
