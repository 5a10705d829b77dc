//! `hitl`: answer and inspect the human-in-the-loop requests of an application, over its
//! HTTP API (`--url`) or in its stopped database (`--db`). Run `hitl --help`.

#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
