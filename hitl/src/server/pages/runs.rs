//! The runs list and a run's page (sessions only).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::{error_page, field, page, pairs_of, paths, signed_in};
use crate::run::DecisionAction;
use crate::server::AppState;
use crate::server::auth;
use crate::server::error::ApiError;
use crate::server::views::{self, Viewer};
use crate::{PendingFilter, RunFilter};

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
    match state.engine().runs(&RunFilter::default()).await {
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
    let loaded = async {
        let run = engine.run_info(&id).await?;
        let history = engine.history(&id).await?;
        let filter = PendingFilter {
            run_id: Some(id.clone()),
            ..PendingFilter::default()
        };
        let requests = engine.requests(&filter, None).await?;
        Ok::<_, crate::Error>((run, history, requests))
    }
    .await;
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

/// `POST /runs/{id}/decide`: an operator's decision on a blocked run, from the run page's
/// form (`action` = `resume_anyway`, `rewind` with `to`, or `cancel`; `reason`); back to
/// the run page.
pub(crate) async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (session, csrf) = match signed_in(&state, &headers, &uri) {
        Ok(signed_in) => signed_in,
        Err(response) => return *response,
    };
    let viewer = Viewer::Session {
        responder: &session.responder,
        csrf: &csrf,
    };
    let (id, body) = match (id, body) {
        (Ok(Path(id)), Ok(body)) => (id, body),
        (Err(rejection), _) => return error_page(&state, &viewer, &rejection.into()),
        (_, Err(rejection)) => return error_page(&state, &viewer, &rejection.into()),
    };
    let pairs = pairs_of(&body);
    if !auth::csrf_matches(&csrf, field(&pairs, "csrf")) {
        let error = ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_csrf",
            "This form did not come from this server or belongs to another session; reload the run and decide again.",
        );
        return error_page(&state, &viewer, &error);
    }
    let action = match field(&pairs, "action") {
        Some("resume_anyway") => DecisionAction::ResumeAnyway,
        Some("cancel") => DecisionAction::Cancel,
        Some("rewind") => match field(&pairs, "to").map(str::trim).filter(|to| !to.is_empty()) {
            Some(to) => DecisionAction::Rewind { to: to.to_owned() },
            None => {
                let error = ApiError::bad_request("Give the step to rewind to, as the timeline names it.");
                return error_page(&state, &viewer, &error);
            }
        },
        _ => {
            let error =
                ApiError::bad_request("Choose to resume the run anyway, to rewind it, or to cancel it.");
            return error_page(&state, &viewer, &error);
        }
    };
    let Some(reason) = field(&pairs, "reason")
        .map(str::trim)
        .filter(|reason| !reason.is_empty())
    else {
        let error = ApiError::bad_request("A decision needs a reason; it is recorded with the run.");
        return error_page(&state, &viewer, &error);
    };
    if let Err(error) = state
        .engine()
        .decide(&id, action, &session.responder, reason)
        .await
    {
        return error_page(&state, &viewer, &error.into());
    }
    let location = paths(&state).run(&id);
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}
