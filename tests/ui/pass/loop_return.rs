// A body that is a `loop { … return … }` compiles without an "unreachable expression"
// warning, in tasks, nested orchestrations and workflows.
#![deny(warnings)]

use hitl::prelude::*;

#[task]
async fn attempt(n: u32) -> Result<u32, String> {
    loop {
        if n > 0 {
            return Ok(n);
        }
    }
}

#[task(inject_context)]
async fn until_done(ctx: &TaskContext, n: u32) -> u32 {
    let mut tries = 0;
    loop {
        tries += ctx.random() as u32 % 2;
        if let Ok(value) = attempt(n + tries).await {
            return value;
        }
    }
}

#[workflow]
async fn release(n: u32) -> u32 {
    loop {
        return until_done(n).await;
    }
}

fn main() {
    let _ = release;
}
