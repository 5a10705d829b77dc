//! A request's page, opened with a session or a signed link, and the answer its form posts.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;

use super::{error_page, field, page, pairs_of, paths, signed_in};
use crate::server::AppState;
use crate::server::auth::{self, Link, Session};
use crate::server::error::ApiError;
use crate::server::form;
use crate::server::views::{self, Filled, Hidden, Viewer};
use crate::{Error, Request, RequestStatus, Responder};

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
    let request = match state.engine().request(&id).await {
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
    let request = match state.engine().request(&id).await {
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
            let current = state.engine().request(&id).await.unwrap_or(request);
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
            let current = state.engine().request(&id).await.unwrap_or(request);
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
