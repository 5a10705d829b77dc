//! The PostgreSQL store on a real server: the `Store` contract, migrations under the
//! advisory lock, schema versions, and URLs that never show their password.

mod postgres_common;

use hitl::Error;
use hitl::store::{PgStore, StoreErrorKind};
use postgres_common::{fresh_database, server_url, sql};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_store_contract() {
    let Some(server) = server_url("postgres_keeps_the_store_contract") else {
        return;
    };
    hitl::store::contract::check_all(|| async {
        PgStore::connect(&fresh_database(&server).await)
            .await
            .expect("a fresh database opens")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_workers_starting_together_migrate_once() {
    let Some(server) = server_url("postgres_workers_starting_together_migrate_once") else {
        return;
    };
    let url = fresh_database(&server).await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        let url = url.clone();
        workers.push(tokio::spawn(async move { PgStore::connect(&url).await }));
    }
    for worker in workers {
        worker.await.unwrap().expect("every worker opens");
    }
    let migrations = sql(&url, "SELECT version FROM hitl_migrations ORDER BY version").await;
    let expected: Vec<Vec<Option<String>>> = (1..=hitl::store::postgres::schema::current_version())
        .map(|version| vec![Some(version.to_string())])
        .collect();
    assert_eq!(migrations, expected, "each migration is applied once");
    let again = PgStore::connect(&url).await.unwrap().migrate().await.unwrap();
    assert!(
        again.applied.is_empty(),
        "a current schema needs nothing: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_newer_schemas_are_used_when_additive_and_refused_otherwise() {
    let Some(server) = server_url("postgres_newer_schemas_are_used_when_additive_and_refused_otherwise")
    else {
        return;
    };
    let url = fresh_database(&server).await;
    PgStore::connect(&url).await.unwrap();
    sql(
        &url,
        "INSERT INTO hitl_migrations (version, description, additive) VALUES (1000, 'an index a newer hitl added', true)",
    )
    .await;
    let report = PgStore::connect(&url)
        .await
        .expect("an additive newer schema is fine")
        .migrate()
        .await
        .unwrap();
    assert_eq!(report.unknown_additive, vec![1000]);
    sql(
        &url,
        "INSERT INTO hitl_migrations (version, description, additive) VALUES (1001, 'a column renamed', false)",
    )
    .await;
    let refused = PgStore::connect(&url)
        .await
        .expect_err("a breaking newer schema is refused");
    let message = refused.to_string();
    assert!(
        matches!(&refused, Error::Storage(error) if error.kind() == StoreErrorKind::Unavailable),
        "{refused:?}"
    );
    assert!(
        message.contains("1001") && message.contains("upgrade hitl"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_urls_are_redacted_in_errors() {
    // Nothing listens on port 1: the connection is refused, and the error names the URL.
    let error = PgStore::connect("postgres://hitl:hunter2@127.0.0.1:1/hitl")
        .await
        .expect_err("nothing listens on port 1");
    let message = error.to_string();
    assert!(
        message.contains("postgres://hitl:***@127.0.0.1:1/hitl"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "the password leaked: {message}");
    assert!(
        matches!(&error, Error::Storage(error) if error.kind() == StoreErrorKind::Unavailable),
        "{error:?}"
    );
    let error = PgStore::connect("postgres://hitl:hunter2@127.0.0.1:1/hitl?connect_timeout=oops")
        .await
        .expect_err("a bad URL");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}
