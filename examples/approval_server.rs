//! Approval server: a deployment waits for a human, who answers in the browser (or with the
//! `hitl` CLI); the answer resumes the run at once.
//!
//! ```text
//! cargo run --example approval_server -- --port 8080
//! ```
//!
//! The program opens `./approval_server.db` (or `--db DIR`), starts a run of the `release`
//! workflow — plan, then ask "Deploy … to production?" with the change log as Markdown
//! details, then deploy or not — and serves the inbox on `127.0.0.1:PORT`. It prints the
//! inbox URL and the token to sign in with: `HITL_TOKEN` (responder `admin`) or
//! `HITL_TOKENS="alice:…,bob:…"` if set, else a generated one. It also prints a signed link
//! that opens just this request's form without signing in, and the CLI commands that answer
//! it. When the run completes the program prints its outcome and exits.

use std::process::ExitCode;
use std::time::Duration;

use hitl::prelude::*;
use hitl::server::{ServerConfig, serve_with, signed_link};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    service: String,
    image: String,
    replicas: u32,
}

/// An activity: computed once, then read from the journal.
#[task]
async fn build_plan(service: String) -> Plan {
    println!("  [step] planning the release of {service}");
    Plan {
        image: format!("{service}:v42"),
        service,
        replicas: 3,
    }
}

/// The side effect the human approves.
#[task]
async fn deploy(plan: Plan) -> String {
    println!("  [step] deploying {} on {} replicas", plan.image, plan.replicas);
    format!("deployment of {} ({} replicas)", plan.image, plan.replicas)
}

#[workflow(inject_context)]
async fn release(ctx: &TaskContext, service: String) -> hitl::Result<String> {
    let plan = build_plan(service).await;
    let details = format!(
        "**Image** `{}` on **{}** replicas.\n\n\
         Changes since the last release:\n\n\
         - Faster cold starts (#412)\n\
         - Fix the retry storm on timeouts (#418)\n\n\
         [Dashboard](https://grafana.example.com/d/release)",
        plan.image, plan.replicas
    );
    let answer = ctx
        .request_feedback(
            Feedback::approval(format!("Deploy {} to production?", plan.image))
                .details(details)
                .expires_after(Duration::from_secs(24 * 3600)),
        )
        .await?;
    if !answer.approved() {
        let why = answer.comment().unwrap_or("no reason given");
        return Ok(format!(
            "not deployed: rejected by {} ({why})",
            answer.responder()
        ));
    }
    let deployed = deploy(plan).await;
    Ok(format!("{deployed}, approved by {}", answer.responder()))
}

struct Args {
    port: u16,
    db: String,
}

fn args() -> Result<Args, String> {
    let mut parsed = Args {
        port: 8080,
        db: "approval_server.db".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("`--port` needs a number")?;
                parsed.port = value.parse().map_err(|_| format!("`{value}` is not a port"))?;
            }
            "--db" => parsed.db = args.next().ok_or("`--db` needs a directory")?,
            other => {
                return Err(format!(
                    "unknown argument `{other}`; use `--port N` and `--db DIR`"
                ));
            }
        }
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let config = ServerConfig::from_env()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let engine = Engine::builder()
        .path(&args.db)
        .base_url(&base)
        .register(release)
        .open()
        .await?;
    let server = tokio::spawn(serve_with(listener, engine.clone(), config.clone()));

    let run = engine.start(release, ("checkout".to_owned(),)).await?;
    let Outcome::Paused(requests) = run.settled().await? else {
        return Err("the release did not stop to ask".into());
    };
    let request = &requests[0];
    let responder = config.responders().first().copied().unwrap_or("admin").to_owned();
    let link = signed_link(&engine, &request.id, &responder, Duration::from_secs(3600))?;

    println!();
    println!("Run {} waits for a human: {}", run.id(), request.prompt);
    println!();
    println!("  inbox:        {base}/");
    match config.generated_token() {
        Some(token) => {
            println!("  token:        {token}   (set HITL_TOKEN or HITL_TOKENS to choose your own)")
        }
        None => println!("  token:        the one in HITL_TOKEN / HITL_TOKENS"),
    }
    println!("  signed link:  {base}{link}   (answers as {responder}, valid 1 h)");
    println!();
    println!("  or with the CLI:");
    println!("    export HITL_URL={base} HITL_TOKEN=<token>");
    println!("    hitl pending");
    println!(
        "    hitl respond {} --approve --comment \"looks good\"",
        request.id
    );
    println!();
    println!("Waiting for the answer…");

    let outcome = run.wait().await?;
    match outcome {
        Outcome::Completed(message) => println!("Run {} completed: {message}", run.id()),
        Outcome::Failed(failure) => println!("Run {} failed: {failure}", run.id()),
        Outcome::Cancelled { reason } => println!("Run {} was cancelled: {reason}", run.id()),
        other => println!("Run {}: {other:?}", run.id()),
    }
    // Let the browser receive its confirmation page before the server goes away.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.abort();
    engine.close().await?;
    Ok(())
}
