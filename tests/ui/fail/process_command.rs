// Running a program is a side effect that would repeat on replay: do it in a plain `#[task]`.
use hitl::prelude::*;

#[workflow]
async fn release() {
    let _ = std::process::Command::new("deploy").status();
}

fn main() {}
