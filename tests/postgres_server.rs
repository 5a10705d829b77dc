//! The HTTP server on a PostgreSQL store: `/health` is a readiness check (503 while the
//! store cannot serve), and an answer given through another worker's server resumes the run
//! (the worker that claims it drives it; `wait` on the starting worker sees it finish).

mod postgres_common;
mod server_common;

use hitl::prelude::*;
use postgres_common::{fresh_database, server_url, sql};
use serde_json::json;
use server_common::{ALICE, ask, config, get, post, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_health_reports_readiness() {
    let Some(server) = server_url("postgres_health_reports_readiness") else {
        return;
    };
    let url = fresh_database(&server).await;
    let engine = Engine::builder()
        .postgres(url.clone())
        .register(ask)
        .open()
        .await
        .unwrap();
    let http = start_with(engine, config()).await;
    let health = get(&format!("{}/health", http.url), None).await;
    assert_eq!((health.status, health.json()), (200, json!({"status": "ok"})));
    // A schema that is not (yet) migrated: not ready, and the body tells nothing more.
    sql(
        &url,
        "ALTER TABLE hitl_migrations RENAME TO hitl_migrations_aside",
    )
    .await;
    let health = get(&format!("{}/health", http.url), None).await;
    assert_eq!(health.status, 503);
    assert_eq!(
        health.json()["error"]["code"],
        json!("unavailable"),
        "{}",
        health.text
    );
    sql(
        &url,
        "ALTER TABLE hitl_migrations_aside RENAME TO hitl_migrations",
    )
    .await;
    let health = get(&format!("{}/health", http.url), None).await;
    assert_eq!(health.status, 200, "ready again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_answer_through_another_workers_server_resumes_the_run() {
    let Some(server) = server_url("postgres_an_answer_through_another_workers_server_resumes_the_run") else {
        return;
    };
    let url = fresh_database(&server).await;
    let driving = Engine::builder()
        .postgres(url.clone())
        .register(ask)
        .open()
        .await
        .unwrap();
    let answering = Engine::builder()
        .postgres(url.clone())
        .register(ask)
        .open()
        .await
        .unwrap();
    let http = start_with(answering, config()).await;
    let run = driving.start(ask, ("approval".to_owned(),)).await.unwrap();
    let request = hitl_workspace::pending_request(&driving, run.id(), None).await;
    let reply = post(
        &format!("{}/api/requests/{}/respond", http.url, request.id),
        Some(ALICE),
        r#"{"approved": true}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let done = tokio::time::timeout(hitl_workspace::PATIENCE, run.wait())
        .await
        .expect("the run resumes")
        .unwrap();
    assert!(matches!(done, Outcome::Completed(_)), "{done:?}");
}
