//! The export of a database's unfinished runs, and the pre-deploy check that reads it.
//!
//! A sled database is held by the running application, so the new build cannot open it to
//! check its runs: the running server exports them (`GET /api/runs/export`, `hitl
//! export-runs --url …`) and the new build checks the file ([`EngineBuilder::check_export`]).
//! On a shared store the new build reads the database directly ([`EngineBuilder::check`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CheckReport, Engine, EngineBuilder};
use crate::clock::to_millis;
use crate::error::{Error, Result};
use crate::model::request::RequestRecord;
use crate::model::run::RunRecord;
use crate::model::step::{StepKind, StepRecord};
use crate::store::{MemStore, RequestQuery};

/// The `format` of a [`RunExport`].
pub const EXPORT_FORMAT: &str = "hitl.runs";
/// The version of the export format this release writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// Every unfinished run of a database, with its journal and requests, as JSON.
///
/// ```json
/// {"format": "hitl.runs", "version": 1, "exported_at": 1796131647164, "redacted": false,
///  "runs": [{"run": {…run record…}, "journal": [["approve#0", {…step record…}]], "requests": [{…}]}]}
/// ```
///
/// The records are those of [`hitl::store`](crate::store), serialized as the store's JSON
/// (`hitl --db DIR dump` prints the same). A reader refuses another `format`, or a `version`
/// newer than it knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunExport {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`] when written by this release.
    pub version: u32,
    /// When, in ms since the epoch.
    pub exported_at: u64,
    /// Whether free text in answers was replaced by `[redacted]`.
    pub redacted: bool,
    /// The runs, by id.
    pub runs: Vec<ExportedRun>,
}

/// One run of a [`RunExport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExportedRun {
    /// The run record.
    pub run: RunRecord,
    /// Its journal: `(step id, step record)`.
    pub journal: Vec<(String, StepRecord)>,
    /// Its requests.
    pub requests: Vec<RequestRecord>,
}

impl RunExport {
    /// Reads an export, refusing another format or a newer version with a message that says
    /// which.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] for text that is not an export this release can read.
    pub fn from_json(text: &str) -> Result<RunExport> {
        let invalid = |detail: String| Error::InvalidRequest { detail };
        let value: Value = serde_json::from_str(text)
            .map_err(|error| invalid(format!("the run export is not JSON: {error}")))?;
        let format = value["format"].as_str().unwrap_or_default();
        if format != EXPORT_FORMAT {
            return Err(invalid(format!(
                "not a run export: its `format` is `{format}`, expected `{EXPORT_FORMAT}` (write one with `hitl export-runs`)"
            )));
        }
        let version = value["version"].as_u64().unwrap_or(0);
        if version == 0 || version > u64::from(EXPORT_VERSION) {
            return Err(invalid(format!(
                "the run export has version {version}; this release reads version {EXPORT_VERSION}: check it with a build of the release that wrote it, or newer"
            )));
        }
        serde_json::from_value(value).map_err(|error| invalid(format!("the run export is damaged: {error}")))
    }
}

impl Engine {
    /// Exports every run that has not finished — paused, blocked, or running — with its
    /// journal and requests. With `redact`, free text in answers (comments, text answers,
    /// strings in typed input) becomes `[redacted]`; approvals, selections, numbers and
    /// responders stay, so a check of the export still follows the paths the runs took.
    pub async fn export_runs(&self, redact: bool) -> Result<RunExport> {
        let store = &self.shared.services.store;
        let mut runs = Vec::new();
        for run in self.unfinished_runs().await? {
            let mut journal = store.load_journal(&run.id).await?;
            journal.sort_by_key(|(_, step)| step.seq);
            let query = RequestQuery {
                run_id: Some(run.id.clone()),
                ..RequestQuery::default()
            };
            let mut requests = store.requests(&query).await?;
            if redact {
                for (_, step) in journal
                    .iter_mut()
                    .filter(|(_, step)| step.kind == StepKind::Feedback)
                {
                    redact_free_text(&mut step.output["resolution"]);
                }
                for request in &mut requests {
                    let mut value = serde_json::to_value(&*request).unwrap_or(Value::Null);
                    redact_free_text(&mut value["resolution"]);
                    redact_free_text(&mut value["votes"]);
                    if let Ok(redacted) = serde_json::from_value(value) {
                        *request = redacted;
                    }
                }
            }
            runs.push(ExportedRun {
                run,
                journal,
                requests,
            });
        }
        Ok(RunExport {
            format: EXPORT_FORMAT.to_owned(),
            version: EXPORT_VERSION,
            exported_at: to_millis(self.shared.services.clock.now()),
            redacted: redact,
            runs,
        })
    }
}

/// Replaces the free text under `value` (comments, text answers, strings of typed input).
fn redact_free_text(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match key.as_str() {
                    "comment" | "text" => {
                        if field.is_string() {
                            *field = Value::from("[redacted]");
                        }
                    }
                    "value" => redact_strings(field),
                    _ => redact_free_text(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_free_text),
        _ => {}
    }
}

fn redact_strings(value: &mut Value) {
    match value {
        Value::String(text) => *text = "[redacted]".to_owned(),
        Value::Array(items) => items.iter_mut().for_each(redact_strings),
        Value::Object(map) => map.values_mut().for_each(redact_strings),
        _ => {}
    }
}

impl EngineBuilder {
    /// Opens the configured database without driving anything (as an operator engine) and
    /// checks every unfinished run against the registered workflows: the pre-deploy check
    /// on a store the new build can read while the old one runs (PostgreSQL).
    pub async fn check(self) -> Result<CheckReport> {
        let engine = self.background(false).open().await?;
        let report = engine.check_runs().await;
        engine.close().await?;
        report
    }

    /// Checks the runs of an export ([`Engine::export_runs`]) against the registered
    /// workflows, running nothing: the pre-deploy check for a sled database that the running
    /// application holds. The builder's store setting is ignored.
    pub async fn check_export(self, export: &RunExport) -> Result<CheckReport> {
        let store = MemStore::new();
        for run in &export.runs {
            use crate::store::Store;
            store.create_run(&run.run).await?;
            if !run.journal.is_empty() {
                store
                    .append_steps(&run.run.id, run.run.lease_epoch, &run.journal)
                    .await?;
            }
        }
        self.store(store).check().await
    }
}
