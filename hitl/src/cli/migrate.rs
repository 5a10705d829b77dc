//! `hitl migrate` (PostgreSQL's schema) and `hitl migrate-store` (sled → PostgreSQL).

use std::path::Path;

use super::args::Mode;
use super::error::{CliError, Exit};

/// `hitl --database-url URL migrate`.
pub(crate) fn migrate(mode: &Mode, json: bool) -> Result<String, CliError> {
    let Mode::Postgres { url } = mode else {
        return Err(CliError::usage(
            "`migrate` upgrades a PostgreSQL database: give it `--database-url postgres://…` \
             (sled databases migrate themselves when opened)"
                .to_owned(),
        ));
    };
    postgres::migrate(url, json)
}

/// `hitl migrate-store --from DIR --to URL`.
pub(crate) fn migrate_store(from: &Path, to: &str, json: bool) -> Result<String, CliError> {
    if !from.join("hitl.json").is_file() {
        return Err(CliError::unreachable(format!(
            "cannot copy `{}`: it is not a hitl database (no `hitl.json`); give `--from` the \
             application's database directory",
            from.display()
        )));
    }
    postgres::migrate_store(from, to, json)
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::new(Exit::Failure, format!("cannot start a runtime: {error}")))
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::path::Path;

    use hitl::store::PgStore;

    use super::super::error::CliError;
    use super::runtime;

    pub(super) fn migrate(url: &str, json: bool) -> Result<String, CliError> {
        runtime()?.block_on(async {
            let store = PgStore::connect(url)
                .await
                .map_err(|error| CliError::of(&error))?;
            let report = store.migrate().await.map_err(|error| CliError::of(&error))?;
            Ok(if json {
                format!(
                    "{}\n",
                    serde_json::json!({ "version": report.version, "applied": report.applied })
                )
            } else {
                format!(
                    "{}: hitl schema at version {}{}\n",
                    store.redacted_url(),
                    report.version,
                    if report.applied.is_empty() {
                        String::from(" (already current)")
                    } else {
                        String::new()
                    }
                )
            })
        })
    }

    pub(super) fn migrate_store(from: &Path, to: &str, json: bool) -> Result<String, CliError> {
        let source = hitl::store::open_sled(from).map_err(|error| match error {
            hitl::Error::DatabaseLocked { .. } => CliError::unreachable(format!(
                "`{}` is in use by a running application: stop it, then copy its database",
                from.display()
            )),
            other => CliError::of(&other),
        })?;
        runtime()?.block_on(async {
            let target = PgStore::connect(to).await.map_err(|error| CliError::of(&error))?;
            let report = target
                .import_from(source.as_ref())
                .await
                .map_err(|error| CliError::of(&error))?;
            Ok(if json {
                format!(
                    "{}\n",
                    serde_json::json!({
                        "runs": report.runs, "steps": report.steps, "channels": report.channels,
                        "definitions": report.definitions, "requests": report.requests,
                        "notifications": report.notifications, "timers": report.timers,
                        "resumed": report.resumed,
                    })
                )
            } else {
                format!(
                    "Copied {} runs ({} steps, {} channel values), {} requests, {} notifications and {} timers \
                     from {} to {}{}.\nOpen the application on the database now: every paused run resumes where it was.\n",
                    report.runs,
                    report.steps,
                    report.channels,
                    report.requests,
                    report.notifications,
                    report.timers,
                    from.display(),
                    target.redacted_url(),
                    if report.resumed { " (finishing an interrupted copy)" } else { "" },
                )
            })
        })
    }
}

#[cfg(not(feature = "postgres"))]
mod postgres {
    use std::path::Path;

    use super::super::error::CliError;

    fn unsupported() -> CliError {
        CliError::usage(
            "this hitl was built without PostgreSQL: install it with `--features cli,postgres`".to_owned(),
        )
    }

    pub(super) fn migrate(_url: &str, _json: bool) -> Result<String, CliError> {
        Err(unsupported())
    }

    pub(super) fn migrate_store(_from: &Path, _to: &str, _json: bool) -> Result<String, CliError> {
        Err(unsupported())
    }
}
