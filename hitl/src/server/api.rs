//! The JSON API: requests, answers, runs, history, cancel, health.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::PartialSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};

use super::AppState;
use super::auth::ApiUser;
use super::error::{ApiError, ErrorBody};
use crate::{HistoryEntry, PendingFilter, Request, RequestStatus, Response, RunFilter, RunInfo, RunStatus};

/// Filters of `GET /api/requests`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RequestQuery {
    /// `pending`, `answered`, `expired` or `cancelled`; every status when absent, empty or
    /// `all`.
    #[param(schema_with = request_statuses)]
    status: Option<String>,
    /// Only requests of runs of this workflow.
    workflow: Option<String>,
    /// Only requests of this run.
    run: Option<String>,
}

/// Filters of `GET /api/runs`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunQuery {
    /// `running`, `paused`, `completed`, `failed` or `cancelled`; every status when absent,
    /// empty or `all`.
    #[param(schema_with = run_statuses)]
    status: Option<String>,
    /// Only runs of this workflow.
    workflow: Option<String>,
}

/// The body of `POST /api/runs/{id}/cancel` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    /// Why; recorded with the run together with who cancelled it.
    #[serde(default)]
    reason: Option<String>,
}

/// The body of `GET /health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok`: the server and its store can serve (else 503, code `unavailable`).
    status: &'static str,
}

/// A query value, with empty meaning absent (`?status=&run=`).
fn given(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

/// The values a `status` query parameter takes: those of `T`'s schema (its serde names),
/// then `all` and the empty string, which both mean every status.
fn status_values<T: PartialSchema>() -> Vec<Value> {
    let mut values = match T::schema() {
        RefOr::T(Schema::Object(object)) => object.enum_values.unwrap_or_default(),
        _ => Vec::new(),
    };
    values.extend([Value::from("all"), Value::from("")]);
    values
}

/// The schema of a `status` query parameter: a string, one of [`status_values`]. (utoipa
/// drops a field's doc comment when its schema is given, so the description is here.)
fn status_schema<T: PartialSchema>(description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(status_values::<T>()))
        .description(Some(description))
        .build()
}

fn request_statuses() -> Object {
    status_schema::<RequestStatus>(
        "Only requests with this status; every status when absent, empty or `all`.",
    )
}

fn run_statuses() -> Object {
    status_schema::<RunStatus>("Only runs with this status; every status when absent, empty or `all`.")
}

/// Parses a status name through its serde form (empty and `all` are handled before),
/// listing the accepted ones on failure.
fn parse_status<T: DeserializeOwned + PartialSchema>(name: &str) -> Result<T, ApiError> {
    serde_json::from_value(Value::String(name.to_owned())).map_err(|_| {
        let accepted: Vec<String> = status_values::<T>()
            .iter()
            .filter_map(Value::as_str)
            .filter(|value| !value.is_empty())
            .map(|value| format!("`{value}`"))
            .collect();
        ApiError::bad_request(format!(
            "unknown status `{name}`; use one of {} (or leave it out)",
            accepted.join(", ")
        ))
    })
}

/// Readiness check for load balancers; needs no credentials and tells nothing more.
#[utoipa::path(get, path = "/health", tag = "server",
    responses(
        (status = 200, description = "The server and its store can serve", body = Health),
        (status = 503, description = "The store is unreachable or not migrated", body = ErrorBody),
    ))]
pub(crate) async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    match state.engine().ready().await {
        Ok(()) => Ok(Json(Health { status: "ok" })),
        Err(error) => {
            tracing::warn!(%error, "not ready: the store cannot serve");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "not ready: the store cannot serve",
            ))
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "server", security(("bearer" = [])),
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json"),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    ))]
pub(crate) async fn openapi(_user: ApiUser) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::openapi_json(),
    )
}

/// Requests, oldest first: every status unless `status` is given. `pending` means every
/// unanswered request, whether its run waits in memory or has paused.
#[utoipa::path(get, path = "/api/requests", tag = "requests", params(RequestQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The matching requests", body = [Request]),
        (status = 400, description = "Unknown parameter or status", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    ))]
pub(crate) async fn list_requests(
    State(state): State<AppState>,
    _user: ApiUser,
    query: Result<Query<RequestQuery>, QueryRejection>,
) -> Result<Json<Vec<Request>>, ApiError> {
    let Query(query) = query?;
    let status = match given(query.status).as_deref() {
        None | Some("all") => None,
        Some(name) => Some(parse_status::<RequestStatus>(name)?),
    };
    let filter = PendingFilter {
        workflow: given(query.workflow),
        run_id: given(query.run),
        older_than: None,
    };
    Ok(Json(state.engine().requests(&filter, status).await?))
}

/// One request, whatever its status.
#[utoipa::path(get, path = "/api/requests/{id}", tag = "requests", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request id")),
    responses(
        (status = 200, description = "The request", body = Request),
        (status = 400, description = "The id in the path is not valid UTF-8 once percent-decoded", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
    ))]
pub(crate) async fn get_request(
    State(state): State<AppState>,
    _user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Request>, ApiError> {
    let Path(id) = id?;
    Ok(Json(state.engine().request(&id).await?))
}

/// Answers a request as the responder the token names. The answer is validated against the
/// request before anything is stored; the first valid answer wins.
#[utoipa::path(post, path = "/api/requests/{id}/respond", tag = "requests", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request id")),
    request_body(content = AnswerBody, description = "`{\"approved\": true, \"comment\": \"…\"}`, `{\"text\": \"…\"}`, `{\"selected\": \"…\"}`, `{\"selected\": [\"…\"]}` or `{\"value\": …}`, and no other field"),
    responses(
        (status = 200, description = "The answered request (still `pending` while a quorum is not reached)", body = Request),
        (status = 400, description = "Malformed JSON, unknown fields, or an id in the path that is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "This responder may not answer", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "Already answered", body = ErrorBody),
        (status = 410, description = "Expired or cancelled", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "The answer fails validation; the message names the problem", body = ErrorBody),
    ))]
pub(crate) async fn respond(
    State(state): State<AppState>,
    ApiUser(responder): ApiUser,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Request>, ApiError> {
    let Path(id) = id?;
    let response = parse_response(&body?)?;
    Ok(Json(state.engine().respond(&id, response, responder).await?))
}

/// Runs, in id order.
#[utoipa::path(get, path = "/api/runs", tag = "runs", params(RunQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The matching runs", body = [RunInfo]),
        (status = 400, description = "Unknown parameter or status", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    ))]
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    _user: ApiUser,
    query: Result<Query<RunQuery>, QueryRejection>,
) -> Result<Json<Vec<RunInfo>>, ApiError> {
    let Query(query) = query?;
    let status = match given(query.status).as_deref() {
        None | Some("all") => None,
        Some(name) => Some(parse_status::<RunStatus>(name)?),
    };
    let filter = RunFilter {
        status,
        workflow: given(query.workflow),
    };
    Ok(Json(state.engine().runs(&filter).await?))
}

/// One run.
#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs", security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 200, description = "The run", body = RunInfo),
        (status = 400, description = "The id in the path is not valid UTF-8 once percent-decoded", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
    ))]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    _user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RunInfo>, ApiError> {
    let Path(id) = id?;
    Ok(Json(state.engine().run_info(&id).await?))
}

/// A run's journaled steps, in the order they completed, with feedback requests and their
/// notifications.
#[utoipa::path(get, path = "/api/runs/{id}/history", tag = "runs", security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 200, description = "The steps", body = [HistoryEntry]),
        (status = 400, description = "The id in the path is not valid UTF-8 once percent-decoded", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
    ))]
pub(crate) async fn run_history(
    State(state): State<AppState>,
    _user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    let Path(id) = id?;
    Ok(Json(state.engine().history(&id).await?))
}

/// Cancels a run: it stops at its next step boundary and its open requests are cancelled.
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs", security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    request_body(content = Option<CancelBody>, description = "Optional (an empty body cancels without a reason): `{\"reason\": \"…\"}`"),
    responses(
        (status = 200, description = "The cancelled run", body = RunInfo),
        (status = 400, description = "Malformed JSON, unknown fields, or an id in the path that is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has already finished", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ))]
pub(crate) async fn cancel_run(
    State(state): State<AppState>,
    ApiUser(responder): ApiUser,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RunInfo>, ApiError> {
    let Path(id) = id?;
    let body = body?;
    // No body, an empty one and `null` all mean no reason (the document says `null | CancelBody`);
    // anything else must be the object (serde would also take a struct from an array).
    const SHAPE: &str = "`{\"reason\": \"…\"}` (or nothing)";
    let body: CancelBody = if body.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        match parse_json::<Value>(&body, SHAPE)? {
            Value::Null => CancelBody::default(),
            object @ Value::Object(_) => serde_json::from_value(object)
                .map_err(|error| ApiError::bad_request(format!("the body is not {SHAPE}: {error}")))?,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "the body must be a JSON object: {SHAPE}"
                )));
            }
        }
    };
    let engine = state.engine();
    let run = engine.run_info(&id).await?;
    if run.status.is_terminal() {
        return Err(ApiError::from(crate::Error::RunFinished {
            run_id: id,
            status: run.status,
        }));
    }
    let reason = match body.reason.filter(|reason| !reason.trim().is_empty()) {
        Some(reason) => format!("{reason} (cancelled by {})", responder.name()),
        None => format!("cancelled by {}", responder.name()),
    };
    engine.cancel(&id, reason).await?;
    Ok(Json(engine.run_info(&id).await?))
}

/// Unknown API paths: a JSON 404 rather than a page.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such API endpoint; see /api/openapi.json")
}

/// A known path with a method it does not take.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take that method; see /api/openapi.json",
    )
}

fn parse_json<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body is not {expected}: {error}"),
        )
    })
}

/// The answer shapes `POST /api/requests/{id}/respond` takes, for error messages.
const SHAPES: &str = "`{\"approved\": true, \"comment\": \"…\"}`, `{\"text\": \"…\"}`, \
    `{\"selected\": \"…\"}`, `{\"selected\": [\"…\"]}` or `{\"value\": …}`";

/// The body of `POST /api/requests/{id}/respond`: exactly one of these shapes, with no
/// other fields (the responder comes from the credentials). The OpenAPI document's schema is
/// generated from these types, the ones the body is parsed into.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum AnswerBody {
    Approval(ApprovalAnswer),
    Text(TextAnswer),
    Selection(SelectionAnswer),
    MultiSelection(MultiSelectionAnswer),
    Input(InputAnswer),
}

/// Approve or reject an approval.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalAnswer {
    /// Approved?
    approved: bool,
    /// A comment.
    #[serde(default)]
    comment: Option<String>,
}

/// Answer a text request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextAnswer {
    /// The text.
    text: String,
}

/// Pick the option of a selection.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelectionAnswer {
    /// The option.
    selected: String,
}

/// Pick the options of a multi-selection.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MultiSelectionAnswer {
    /// The options.
    selected: Vec<String>,
}

/// Give the value of a typed input (it must fit the request's JSON Schema).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputAnswer {
    /// The value.
    value: Value,
}

impl From<AnswerBody> for Response {
    fn from(body: AnswerBody) -> Self {
        match body {
            AnswerBody::Approval(ApprovalAnswer { approved, comment }) => {
                Response::Approval { approved, comment }
            }
            AnswerBody::Text(TextAnswer { text }) => Response::Text { text },
            AnswerBody::Selection(SelectionAnswer { selected }) => Response::Selection { selected },
            AnswerBody::MultiSelection(MultiSelectionAnswer { selected }) => {
                Response::MultiSelection { selected }
            }
            AnswerBody::Input(InputAnswer { value }) => Response::Input { value },
        }
    }
}

/// Reads an answer body. Unknown fields and wrong types are 400; whether the answer fits the
/// request (kind, options, constraints, schema) is the engine's check, 422. The shape is
/// chosen by the field present, so that an error names the field that is wrong.
pub(crate) fn parse_response(body: &[u8]) -> Result<Response, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("the body is not valid JSON: {error}")))?;
    let Value::Object(fields) = &value else {
        return Err(ApiError::bad_request(format!(
            "the body must be a JSON object: {SHAPES}"
        )));
    };
    fn shape<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
        serde_json::from_value(value)
            .map_err(|error| ApiError::bad_request(format!("{error}; an answer is {SHAPES}")))
    }
    let body = if fields.contains_key("approved") {
        AnswerBody::Approval(shape(value)?)
    } else if fields.contains_key("text") {
        AnswerBody::Text(shape(value)?)
    } else if let Some(selected) = fields.get("selected") {
        match selected {
            Value::String(_) => AnswerBody::Selection(shape(value)?),
            Value::Array(_) => AnswerBody::MultiSelection(shape(value)?),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "`selected` must be a string or an array of strings; an answer is {SHAPES}"
                )));
            }
        }
    } else if fields.contains_key("value") {
        AnswerBody::Input(shape(value)?)
    } else {
        return Err(ApiError::bad_request(format!(
            "the body names none of the answer fields; an answer is {SHAPES}"
        )));
    };
    Ok(body.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_bodies_parse_by_shape() {
        assert_eq!(
            parse_response(br#"{"approved": false, "comment": "no"}"#).unwrap(),
            Response::reject().comment("no")
        );
        assert_eq!(parse_response(br#"{"text": "t"}"#).unwrap(), Response::text("t"));
        assert_eq!(
            parse_response(br#"{"selected": "a"}"#).unwrap(),
            Response::select("a")
        );
        assert_eq!(
            parse_response(br#"{"selected": ["a", "b"]}"#).unwrap(),
            Response::select_all(["a", "b"])
        );
        assert_eq!(
            parse_response(br#"{"value": {"n": 1}}"#).unwrap(),
            Response::value(serde_json::json!({"n": 1}))
        );
    }

    #[test]
    fn malformed_answer_bodies_are_bad_requests() {
        for body in [
            &b"{"[..],
            b"[]",
            b"\"approve\"",
            b"{}",
            br#"{"approved": "yes"}"#,
            br#"{"approved": true, "responder": "mallory"}"#,
            br#"{"text": 5}"#,
            br#"{"selected": 1}"#,
            br#"{"selected": ["a", 1]}"#,
            br#"{"value": 1, "extra": 2}"#,
        ] {
            let error = parse_response(body).unwrap_err();
            assert_eq!(
                error.status,
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
