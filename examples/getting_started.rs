//! Getting started: the application of the README's "Getting started" section, verbatim.
//!
//! ```sh
//! cargo run --example getting_started
//! ```
//!
//! One workflow asks a human before it deploys; the engine keeps the run in
//! `./release.db`, and the embedded server shows the request at http://127.0.0.1:8080/.
//! Stop the program while it waits and start it again: it re-attaches to the same run.

use hitl::prelude::*;

/// An activity: runs once, even across restarts, and its result is journaled.
#[task]
async fn deploy(service: String) -> String {
    println!("deploying {service}");
    format!("{service} is live")
}

/// An orchestration: asks, waits (durably), then deploys or not.
#[workflow(inject_context)]
async fn release(ctx: &TaskContext, service: String) -> hitl::Result<String> {
    let answer = ctx
        .request_feedback(Feedback::approval(format!("Deploy {service} to production?")))
        .await?;
    if !answer.approved() {
        return Ok(format!("{service}: rejected by {}", answer.responder()));
    }
    Ok(deploy(service).await)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::builder()
        .path("release.db")
        .register(release)
        .open()
        .await?;

    // Starting the same id again (after a restart) re-attaches to the stored run.
    let run = engine
        .start_with_id(release, "release-api", ("api".to_owned(),))
        .await?;

    // The inbox, the forms and the JSON API; prints the URL and a sign-in token.
    let server = tokio::spawn(hitl::server::serve(engine.clone(), "127.0.0.1:8080"));

    // Waits while the request is open: answer it in the browser, or with
    // `hitl respond <id> --approve`. Kill the program meanwhile and start it again:
    // nothing runs twice, and the wait goes on.
    match run.wait().await? {
        Outcome::Completed(message) => println!("{message}"),
        other => println!("the run ended without completing: {other:?}"),
    }
    server.abort();
    Ok(())
}
