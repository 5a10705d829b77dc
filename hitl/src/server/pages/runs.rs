//! The runs list and a run's page (sessions only).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;

use super::{error_page, page, paths, signed_in};
use crate::server::AppState;
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
