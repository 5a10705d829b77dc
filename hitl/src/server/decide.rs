//! Blocked runs over the API: an operator's decision, and the export of unfinished runs that
//! a new build's pre-deploy check reads.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::Value;

use super::AppState;
use super::auth::ApiUser;
use super::error::{ApiError, ErrorBody};
use crate::RunInfo;
use crate::run::DecisionAction;

/// The body of `POST /api/runs/{id}/decide`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecideBody {
    /// `resume_anyway` (run on the current code, the divergence accepted), `rewind` (to the
    /// step `to`: the steps after it run again) or `cancel`.
    action: Action,
    /// For `rewind`: the step id to rewind to (`scope/name#occurrence`, as the history shows).
    #[serde(default)]
    to: Option<String>,
    /// Why; recorded with the decision together with who decided.
    reason: String,
}

/// The decisions `POST /api/runs/{id}/decide` takes.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    ResumeAnyway,
    Rewind,
    Cancel,
}

/// Settles a blocked run: resume it on the current code anyway, rewind it to a step (the
/// steps after it run again), or cancel it. The decision is recorded in the run with the
/// operator the token names.
#[utoipa::path(post, path = "/api/runs/{id}/decide", tag = "runs", security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    request_body(content = DecideBody, description = "`{\"action\": \"resume_anyway\" | \"rewind\" | \"cancel\", \"to\": \"step#0\" (rewind only), \"reason\": \"…\"}`"),
    responses(
        (status = 200, description = "The run after the decision", body = RunInfo),
        (status = 400, description = "Malformed JSON, an unknown action or field, an empty reason, a rewind to a step the run has not completed, or a run whose version is not registered", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is not blocked", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ))]
pub(crate) async fn decide(
    State(state): State<AppState>,
    ApiUser(operator): ApiUser,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RunInfo>, ApiError> {
    let Path(id) = id?;
    const SHAPE: &str = "`{\"action\": \"resume_anyway\" | \"rewind\" | \"cancel\", \"to\": \"step#0\" (rewind only), \"reason\": \"…\"}`";
    let body: DecideBody = serde_json::from_slice(&body?)
        .map_err(|error| ApiError::bad_request(format!("the body is not {SHAPE}: {error}")))?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::bad_request(format!(
            "a decision needs a reason: {SHAPE}"
        )));
    }
    let action = match (body.action, body.to) {
        (Action::ResumeAnyway, None) => DecisionAction::ResumeAnyway,
        (Action::Cancel, None) => DecisionAction::Cancel,
        (Action::Rewind, Some(to)) if !to.trim().is_empty() => DecisionAction::Rewind { to },
        (Action::Rewind, _) => {
            return Err(ApiError::bad_request(format!(
                "`rewind` needs the step to rewind to: {SHAPE}"
            )));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "`to` is for `rewind` only: {SHAPE}"
            )));
        }
    };
    let engine = state.engine();
    engine.decide(&id, action, operator.name(), body.reason).await?;
    Ok(Json(engine.run_info(&id).await?))
}

/// Options of `GET /api/runs/export`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportQuery {
    /// `true`: replace free text in answers (comments, text, strings of typed input) by
    /// `[redacted]`.
    #[serde(default)]
    redact: bool,
}

/// Every unfinished run with its journal and requests (`hitl.runs` version 1): the input of
/// a new build's pre-deploy check (`EngineBuilder::check_export`).
#[utoipa::path(get, path = "/api/runs/export", tag = "runs", security(("bearer" = [])),
    params(ExportQuery),
    responses(
        (status = 200, description = "The export", body = Object),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    ))]
pub(crate) async fn export(
    State(state): State<AppState>,
    _user: ApiUser,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let export = state.engine().export_runs(query.redact).await?;
    Ok(Json(serde_json::to_value(export).map_err(|error| {
        ApiError::from(crate::Error::Encode {
            what: "the run export".to_owned(),
            source: error,
        })
    })?))
}
