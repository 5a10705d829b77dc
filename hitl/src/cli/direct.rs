//! The database mode: `--db DIR` opens a stopped application's database directly.
//!
//! sled is single-process, so this works only while no application holds the directory; a
//! locked database is reported with the way out (`--url`). The engine is opened with no
//! workflow registered: it can list, show, answer and cancel, and an answer stored here wakes
//! its run when the application next opens the database.
//!
//! The CLI is an operator's tool, not a worker: it must not claim the application's runs,
//! fire its timers (a wake-up of a run whose workflow it does not know would be spent for
//! nothing), expire its requests or deliver its notifications. So the engine is an operator
//! engine (`EngineBuilder::background(false)`), opened on a throwaway runtime; every command
//! then runs on the caller's runtime.

use std::path::{Path, PathBuf};

use hitl::{Engine, PendingFilter, Responder, Response, RunFilter, RunStatus};
use serde::Serialize;
use serde_json::Value;

use super::error::{CliError, Exit};

/// An open database: a stopped application's directory, or a PostgreSQL database.
pub(crate) struct Database {
    engine: Engine,
    place: Place,
}

enum Place {
    Directory(PathBuf),
    /// The URL without its password.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres(String),
}

impl Database {
    /// Opens `dir`, which must already hold a hitl database. Call outside any runtime.
    pub(crate) fn open(dir: &Path) -> Result<Self, CliError> {
        if !dir.join("hitl.json").is_file() {
            let what = if dir.is_dir() {
                "it is not a hitl database (no `hitl.json`)"
            } else if dir.exists() {
                "it is not a directory"
            } else {
                "it does not exist"
            };
            return Err(CliError::unreachable(format!(
                "cannot open `{}`: {what}; give `--db` the application's database directory \
                 (the one that holds `hitl.json`)",
                dir.display()
            )));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| CliError::new(Exit::Failure, format!("cannot start a runtime: {error}")))?;
        // An operator engine spawns no background task, so the runtime that opened it can go.
        let engine = runtime
            .block_on(Engine::builder().path(dir).background(false).open())
            .map_err(|error| open_error(dir, &error))?;
        drop(runtime);
        Ok(Database {
            engine,
            place: Place::Directory(dir.to_owned()),
        })
    }

    /// Opens the PostgreSQL database at `url` as an operator engine, on the command's runtime:
    /// workers may run meanwhile, and an answer stored here resumes its run on one of them.
    pub(crate) async fn open_postgres(url: &str) -> Result<Self, CliError> {
        #[cfg(feature = "postgres")]
        {
            let engine = Engine::builder()
                .postgres(url)
                .background(false)
                .open()
                .await
                .map_err(|error| CliError::of(&error))?;
            Ok(Database {
                engine,
                place: Place::Postgres(hitl::store::postgres::redact(url)),
            })
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = url;
            Err(CliError::usage(
                "this hitl was built without PostgreSQL: install it with `--features cli,postgres`"
                    .to_owned(),
            ))
        }
    }

    /// The flag that names this database, for the commands a message suggests.
    pub(crate) fn where_flag(&self) -> String {
        match &self.place {
            Place::Directory(dir) => format!("--db {}", super::render::quote(&dir.display().to_string())),
            Place::Postgres(url) => format!("--database-url {}", super::render::quote(url)),
        }
    }

    /// What happens next to a run whose request was answered here.
    pub(crate) fn after_answer(&self) -> String {
        match &self.place {
            Place::Directory(dir) => format!(
                "Stored in {}; the run resumes when the application next opens it.\n",
                dir.display()
            ),
            Place::Postgres(url) => format!("Stored in {url}; a worker resumes the run now.\n"),
        }
    }

    pub(crate) async fn pending(&self, workflow: Option<&str>, run: Option<&str>) -> Result<Value, CliError> {
        let filter = PendingFilter {
            workflow: workflow.map(str::to_owned),
            run_id: run.map(str::to_owned),
            ..PendingFilter::default()
        };
        json(self.engine.pending(&filter).await.map_err(fail)?)
    }

    /// Every request, whatever its status (to resolve a shortened id).
    pub(crate) async fn requests(&self) -> Result<Value, CliError> {
        json(
            self.engine
                .requests(&PendingFilter::default(), None)
                .await
                .map_err(fail)?,
        )
    }

    pub(crate) async fn request(&self, request_id: &str) -> Result<Value, CliError> {
        json(self.engine.request(request_id).await.map_err(fail)?)
    }

    pub(crate) async fn respond(
        &self,
        request_id: &str,
        response: Response,
        responder: &str,
    ) -> Result<Value, CliError> {
        let answered = self
            .engine
            .respond(request_id, response, Responder::new(responder))
            .await
            .map_err(fail)?;
        json(answered)
    }

    pub(crate) async fn runs(&self, status: Option<&str>) -> Result<Value, CliError> {
        let status = status
            .map(|status| serde_json::from_value::<RunStatus>(Value::String(status.to_owned())))
            .transpose()
            .map_err(|error| CliError::usage(error.to_string()))?;
        let filter = RunFilter {
            status,
            ..RunFilter::default()
        };
        json(self.engine.runs(&filter).await.map_err(fail)?)
    }

    pub(crate) async fn run(&self, run_id: &str) -> Result<Value, CliError> {
        json(self.engine.run_info(run_id).await.map_err(fail)?)
    }

    pub(crate) async fn history(&self, run_id: &str) -> Result<Value, CliError> {
        json(self.engine.history(run_id).await.map_err(fail)?)
    }

    pub(crate) async fn cancel(&self, run_id: &str, reason: &str) -> Result<Value, CliError> {
        let info = self.engine.run_info(run_id).await.map_err(fail)?;
        if info.status.is_terminal() {
            return Err(fail(hitl::Error::RunFinished {
                run_id: run_id.to_owned(),
                status: info.status,
            }));
        }
        self.engine.cancel(run_id, reason).await.map_err(fail)?;
        self.run(run_id).await
    }

    /// Records an operator decision on a blocked run; the application resumes it (at once on
    /// a shared store, at its next open on a database directory).
    pub(crate) async fn decide(
        &self,
        run_id: &str,
        action: &super::backend::Decide,
        reason: &str,
        by: &str,
    ) -> Result<Value, CliError> {
        self.engine
            .decide(run_id, action.action(), by, reason)
            .await
            .map_err(fail)?;
        self.run(run_id).await
    }

    /// Every unfinished run, as [`hitl::engine::RunExport`].
    pub(crate) async fn export_runs(&self, redact: bool) -> Result<Value, CliError> {
        json(self.engine.export_runs(redact).await.map_err(fail)?)
    }

    /// Flushes and releases the directory.
    pub(crate) async fn close(self) -> Result<(), CliError> {
        self.engine.close().await.map_err(fail)
    }
}

fn json(value: impl Serialize) -> Result<Value, CliError> {
    serde_json::to_value(value)
        .map_err(|error| CliError::new(Exit::Failure, format!("cannot show the result as JSON: {error}")))
}

fn fail(error: hitl::Error) -> CliError {
    CliError::of(&error)
}

pub(crate) fn open_error(dir: &Path, error: &hitl::Error) -> CliError {
    match error {
        hitl::Error::DatabaseLocked { .. } => CliError::unreachable(format!(
            "the database `{}` is in use by a running application; use `--url` (or HITL_URL) \
             to reach that application's server, or stop it first",
            dir.display()
        )),
        other => CliError::of(other),
    }
}
