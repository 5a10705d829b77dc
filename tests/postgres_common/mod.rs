//! A real PostgreSQL server for the tests named `postgres…` and `fleet…` (and, for
//! `connect` and `with_database`, the PostgreSQL examples, which include this file too).
//!
//! `.ci/run` starts a throwaway server (`.ci/start-postgres`) and exports its URL as
//! `HITL_TEST_POSTGRES_URL`. Each test makes a database of its own on it. Without the
//! variable a test prints that it is skipped — except under `CI=true`, where that is a
//! failure, so CI cannot pass without having run them.

#![allow(dead_code)]

/// The server's URL (a database the tests may create databases from), or `None` to skip.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var("HITL_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("{test} needs PostgreSQL: CI must export HITL_TEST_POSTGRES_URL (.ci/start-postgres)")
        }
        _ => {
            eprintln!("skipping {test}: no PostgreSQL (export HITL_TEST_POSTGRES_URL=$(.ci/start-postgres))");
            None
        }
    }
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |at| at + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |at| scheme_end + at);
    format!("{}/{database}{query}", &base[..host_end])
}

/// A connection to `url`, its driver spawned; panics naming the URL (without its password).
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot connect to {}: {error}",
                hitl::store::postgres::redact(url)
            )
        });
    tokio::spawn(connection);
    client
}

/// A new, empty database on the server; returns its URL.
pub async fn fresh_database(server: &str) -> String {
    let name = format!("hitl_test_{}", uuid::Uuid::new_v4().simple());
    connect(server)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("a test database is created");
    with_database(server, &name)
}

/// Runs `sql` on the database at `url` (for tests that look under the store); the rows,
/// each as its columns' text.
pub async fn sql(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = connect(url)
        .await
        .simple_query(sql)
        .await
        .expect("the test's SQL runs");
    messages
        .into_iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}
