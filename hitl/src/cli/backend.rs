//! One interface over both modes. Every call returns the API's JSON objects, so `--json`
//! prints the same thing in both modes and the tables are drawn from one shape.

use hitl::Response;
use serde_json::{Value, json};

use super::direct::Database;
use super::error::{CliError, Exit};
use super::http::Http;

/// The shortest start or end of an id a command accepts in place of the whole id.
pub(crate) const MIN_PREFIX: usize = 4;

/// What kind of object an id names, for resolving shortened ids and for messages.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Request,
    Run,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Run => "run",
        }
    }

    fn listing(self) -> &'static str {
        match self {
            Kind::Request => "`hitl pending` lists the open requests",
            Kind::Run => "`hitl runs` lists the runs",
        }
    }
}

/// An operator decision on a blocked run, as `hitl decide` gives it.
pub(crate) enum Decide {
    ResumeAnyway,
    Rewind(String),
    Cancel,
}

impl Decide {
    /// The engine's decision.
    pub(crate) fn action(&self) -> hitl::run::DecisionAction {
        match self {
            Decide::ResumeAnyway => hitl::run::DecisionAction::ResumeAnyway,
            Decide::Cancel => hitl::run::DecisionAction::Cancel,
            Decide::Rewind(to) => hitl::run::DecisionAction::Rewind { to: to.clone() },
        }
    }
}

/// Where the commands go.
pub(crate) enum Backend {
    /// A running application's server.
    Http(Http),
    /// A stopped application's database directory.
    Database(Database),
}

impl Backend {
    /// `GET /api/requests?status=pending&workflow=&run=`.
    pub(crate) async fn pending(&self, workflow: Option<&str>, run: Option<&str>) -> Result<Value, CliError> {
        match self {
            Backend::Http(http) => {
                let mut query = vec![("status", "pending")];
                query.extend(workflow.map(|workflow| ("workflow", workflow)));
                query.extend(run.map(|run| ("run", run)));
                http.get(&["api", "requests"], &query).await
            }
            Backend::Database(db) => db.pending(workflow, run).await,
        }
    }

    /// `GET /api/requests/{id}`.
    pub(crate) async fn request(&self, request_id: &str) -> Result<Value, CliError> {
        match self {
            Backend::Http(http) => http.get(&["api", "requests", request_id], &[]).await,
            Backend::Database(db) => db.request(request_id).await,
        }
    }

    /// `POST /api/requests/{id}/respond`; the updated request.
    pub(crate) async fn respond(
        &self,
        request_id: &str,
        response: Response,
        responder: Option<&str>,
    ) -> Result<Value, CliError> {
        match self {
            Backend::Http(http) => {
                let body = serde_json::to_value(&response).expect("a response serializes");
                let answered = http
                    .post(&["api", "requests", request_id, "respond"], &body)
                    .await?;
                self.or_fetch(answered, |backend| backend.request(request_id))
                    .await
            }
            Backend::Database(db) => {
                let responder = responder.expect("checked: `--as` is required with `--db`");
                db.respond(request_id, response, responder).await
            }
        }
    }

    /// `GET /api/runs?status=`.
    pub(crate) async fn runs(&self, status: Option<&str>) -> Result<Value, CliError> {
        match self {
            Backend::Http(http) => {
                let query: Vec<_> = status.map(|status| ("status", status)).into_iter().collect();
                http.get(&["api", "runs"], &query).await
            }
            Backend::Database(db) => db.runs(status).await,
        }
    }

    /// `GET /api/runs/{id}`.
    pub(crate) async fn run(&self, run_id: &str) -> Result<Value, CliError> {
        match self {
            Backend::Http(http) => http.get(&["api", "runs", run_id], &[]).await,
            Backend::Database(db) => db.run(run_id).await,
        }
    }

    /// `GET /api/runs/{id}/history`.
    pub(crate) async fn history(&self, run_id: &str) -> Result<Value, CliError> {
        match self {
            Backend::Http(http) => http.get(&["api", "runs", run_id, "history"], &[]).await,
            Backend::Database(db) => db.history(run_id).await,
        }
    }

    /// `POST /api/runs/{id}/cancel`; the run afterwards.
    pub(crate) async fn cancel(&self, run_id: &str, reason: Option<&str>) -> Result<Value, CliError> {
        match self {
            Backend::Http(http) => {
                let body = match reason {
                    Some(reason) => json!({ "reason": reason }),
                    None => json!({}),
                };
                let cancelled = http.post(&["api", "runs", run_id, "cancel"], &body).await?;
                self.or_fetch(cancelled, |backend| backend.run(run_id)).await
            }
            Backend::Database(db) => {
                let reason = reason.unwrap_or("cancelled with the hitl CLI");
                db.cancel(run_id, reason).await
            }
        }
    }

    /// `POST /api/runs/{id}/decide`; the run afterwards.
    pub(crate) async fn decide(
        &self,
        run_id: &str,
        action: &Decide,
        reason: &str,
        by: Option<&str>,
    ) -> Result<Value, CliError> {
        match self {
            Backend::Http(http) => {
                let body = match action {
                    Decide::ResumeAnyway => json!({ "action": "resume_anyway", "reason": reason }),
                    Decide::Cancel => json!({ "action": "cancel", "reason": reason }),
                    Decide::Rewind(to) => json!({ "action": "rewind", "to": to, "reason": reason }),
                };
                let decided = http.post(&["api", "runs", run_id, "decide"], &body).await?;
                self.or_fetch(decided, |backend| backend.run(run_id)).await
            }
            Backend::Database(db) => {
                let by = by.expect("checked: `--as` is required without --url");
                db.decide(run_id, action, reason, by).await
            }
        }
    }

    /// `GET /api/runs/export[?redact=true]`.
    pub(crate) async fn export_runs(&self, redact: bool) -> Result<Value, CliError> {
        match self {
            Backend::Http(http) => {
                let query: Vec<_> = redact.then_some(("redact", "true")).into_iter().collect();
                http.get(&["api", "runs", "export"], &query).await
            }
            Backend::Database(db) => db.export_runs(redact).await,
        }
    }

    /// The whole id of the request or run that `id` names: the id itself if one has it, else
    /// the one id that starts with `id`, else the one that ends with it (at least
    /// [`MIN_PREFIX`] characters). hitl's own ids are UUID v7, whose first characters are the
    /// time they were made: ids made in the same minute share them, and their last ones
    /// tell them apart. No match, or several, is an error (exit 1) that says what to do;
    /// several are listed.
    pub(crate) async fn resolve(&self, kind: Kind, id: &str) -> Result<String, CliError> {
        let exact = match kind {
            Kind::Request => self.request(id).await,
            Kind::Run => self.run(id).await,
        };
        match exact {
            Ok(_) => return Ok(id.to_owned()),
            Err(error) if !error.not_found => return Err(error),
            Err(_) => {}
        }
        let noun = kind.noun();
        if id.chars().count() < MIN_PREFIX {
            return Err(CliError::new(
                Exit::Failure,
                format!(
                    "no {noun} has the id `{id}`; give the whole id or at least its first or last \
                     {MIN_PREFIX} characters ({})",
                    kind.listing()
                ),
            ));
        }
        let all = match (kind, self) {
            (Kind::Request, Backend::Http(http)) => http.get(&["api", "requests"], &[]).await?,
            (Kind::Request, Backend::Database(db)) => db.requests().await?,
            (Kind::Run, _) => self.runs(None).await?,
        };
        let ids: Vec<&str> = all
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|object| object["id"].as_str())
            .collect();
        let matching = |matches: fn(&str, &str) -> bool| -> Vec<String> {
            let mut found: Vec<String> = ids
                .iter()
                .filter(|candidate| matches(candidate, id))
                .map(|candidate| (*candidate).to_owned())
                .collect();
            found.sort();
            found
        };
        let starting = matching(|candidate, id| candidate.starts_with(id));
        let (matches, place) = if starting.is_empty() {
            (matching(|candidate, id| candidate.ends_with(id)), "end")
        } else {
            (starting, "start")
        };
        match matches.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(CliError::new(
                Exit::Failure,
                format!(
                    "no {noun} has an id that is, starts with or ends with `{id}`; {}",
                    kind.listing()
                ),
            )),
            many => Err(CliError::new(
                Exit::Failure,
                format!(
                    "`{id}` is the {place} of {} {noun} ids; give more of it, or the id's last \
                     characters: {}",
                    many.len(),
                    many.join(", ")
                ),
            )),
        }
    }

    /// A POST's answer if it is the object, else the object fetched afresh.
    async fn or_fetch<'a, F, Fut>(&'a self, answer: Value, fetch: F) -> Result<Value, CliError>
    where
        F: FnOnce(&'a Backend) -> Fut,
        Fut: Future<Output = Result<Value, CliError>>,
    {
        if answer.get("id").is_some() && answer.get("status").is_some() {
            Ok(answer)
        } else {
            fetch(self).await
        }
    }

    /// Releases the database directory (nothing to do over HTTP).
    pub(crate) async fn close(self) -> Result<(), CliError> {
        match self {
            Backend::Http(_) => Ok(()),
            Backend::Database(db) => db.close().await,
        }
    }
}
