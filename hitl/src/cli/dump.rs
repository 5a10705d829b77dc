//! `hitl --db DIR dump` and `hitl --database-url URL dump`: every stored record as JSON lines,
//! streamed to stdout.

use std::io::Write as _;

use super::args::Mode;
use super::direct;
use super::error::{CliError, Exit};

pub(crate) fn dump(mode: &Mode) -> Result<String, CliError> {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match mode {
        Mode::Database { dir } => {
            if !dir.join("hitl.json").is_file() {
                return Err(CliError::unreachable(format!(
                    "cannot dump `{}`: it is not a hitl database (no `hitl.json`)",
                    dir.display()
                )));
            }
            hitl::store::dump_sled(dir, &mut stdout).map_err(|error| direct::open_error(dir, &error))?;
        }
        Mode::Postgres { url } => postgres(url, &mut stdout)?,
        Mode::Http { .. } => {
            return Err(CliError::usage(
                "`dump` reads the database itself: use `hitl --db DIR dump` (while the application \
                 is stopped) or `hitl --database-url postgres://… dump`",
            ));
        }
    }
    stdout
        .flush()
        .map_err(|error| CliError::new(Exit::Failure, format!("cannot write the dump: {error}")))?;
    Ok(String::new())
}

#[cfg(feature = "postgres")]
fn postgres(url: &str, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    super::migrate::runtime()?.block_on(async {
        let store = hitl::store::PgStore::connect_current(url)
            .await
            .map_err(|error| CliError::of(&error))?;
        store.dump(out).await.map_err(|error| CliError::of(&error))?;
        Ok(())
    })
}

#[cfg(not(feature = "postgres"))]
fn postgres(_url: &str, _out: &mut dyn std::io::Write) -> Result<(), CliError> {
    Err(CliError::usage(
        "this hitl was built without PostgreSQL: install it with `--features cli,postgres`".to_owned(),
    ))
}
