//! An informal measure, not a check: how many answers per second the JSON API takes, each
//! validated, stored durably (flushed, with group commit) and resuming its run.
//!
//! ```text
//! HITL_BENCH_REQUESTS=2000 cargo test --release --test server_throughput -- --ignored --nocapture
//! ```

mod server_common;

use std::sync::Arc;
use std::time::Instant;

use server_common::*;

const CONCURRENCY: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it in release with --ignored --nocapture"]
async fn answers_per_second_through_the_api() {
    let requests: usize = std::env::var("HITL_BENCH_REQUESTS")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(400);
    let server = start().await;
    let mut runs = Vec::with_capacity(requests);
    for _ in 0..requests {
        runs.push(server.ask("free_text").await);
    }
    let ids: Arc<Vec<String>> = Arc::new(runs.iter().map(|(_, request)| request.id.clone()).collect());
    let http = client();

    let started = Instant::now();
    let mut readers = Vec::new();
    for worker in 0..CONCURRENCY {
        let (ids, http, url) = (Arc::clone(&ids), http.clone(), server.url.clone());
        readers.push(tokio::spawn(async move {
            for id in ids.iter().skip(worker).step_by(CONCURRENCY) {
                let reply = http
                    .get(format!("{url}/api/requests/{id}"))
                    .bearer_auth(ALICE)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(reply.status(), 200);
            }
        }));
    }
    for reader in readers {
        reader.await.unwrap();
    }
    let reads = started.elapsed();

    let started = Instant::now();
    let mut writers = Vec::new();
    for worker in 0..CONCURRENCY {
        let (ids, http, url) = (Arc::clone(&ids), http.clone(), server.url.clone());
        writers.push(tokio::spawn(async move {
            for id in ids.iter().skip(worker).step_by(CONCURRENCY) {
                let reply = http
                    .post(format!("{url}/api/requests/{id}/respond"))
                    .bearer_auth(ALICE)
                    .body(r#"{"text": "done"}"#)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(reply.status(), 200);
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let answers = started.elapsed();
    for (run, _) in &runs {
        server.completes(run).await;
    }
    let resumed = started.elapsed();

    let rate = |elapsed: std::time::Duration| requests as f64 / elapsed.as_secs_f64();
    eprintln!(
        "{requests} requests, {CONCURRENCY} clients: GET {:.0}/s; POST respond {:.0} answers/s \
         ({:.2} s); every run resumed and completed after {:.2} s",
        rate(reads),
        rate(answers),
        answers.as_secs_f64(),
        resumed.as_secs_f64()
    );
}
