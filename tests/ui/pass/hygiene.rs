// Hygiene: the generated code uses absolute paths, so local `core` and `hitl` modules do not
// break it, and every macro form compiles under `#![deny(warnings)]`.
#![deny(warnings)]

use std::time::Duration;

use ::hitl::prelude::*;

mod core {}
mod hitl {}

#[derive(Debug)]
struct Unserializable;

#[task]
async fn plain(n: u32) -> u32 {
    n + 1
}

#[task]
fn sync_plain(n: u32) -> u32 {
    n * 2
}

#[task(name = "fallible", retries = 1)]
async fn fallible(n: u32) -> Result<u32, Unserializable> {
    if n > 100 { Err(Unserializable) } else { Ok(n) }
}

#[task(inject_context)]
async fn nested(ctx: &TaskContext, n: u32) -> u32 {
    ctx.sleep(Duration::from_millis(1)).await;
    plain(n).await
}

#[task(inject_context, name = "nested-fallible")]
async fn nested_fallible(ctx: &TaskContext, n: u32) -> Result<u32, Unserializable> {
    let m = ctx.step("double", async move { sync_plain(n) }).await;
    fallible(m).await
}

#[workflow]
async fn simple(n: u32) -> u32 {
    let (a, b) = tokio::join!(async { plain(n).await }, async { nested(n).await });
    a + b
}

#[workflow(name = "contextual", inject_context)]
async fn contextual(ctx: &TaskContext, n: u32) -> Result<u32, String> {
    let random = ctx.random() % 2;
    let local = ::hitl::transient(async { Unserializable }).await;
    let value = nested_fallible(n).await.map_err(|_| format!("{local:?}"))?;
    let tried: Result<u32, String> = ctx.try_step("try", async move { Ok(value) }).await;
    Ok(tried? + random as u32 - random as u32)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = Engine::temporary()
            .register(simple)
            .register(contextual)
            .open()
            .await
            .unwrap();
        let run = engine.start(simple, (1,)).await.unwrap();
        assert_eq!(run.wait().await.unwrap(), Outcome::Completed(4));
        let run = engine.start(contextual, (3,)).await.unwrap();
        assert_eq!(run.wait().await.unwrap(), Outcome::Completed(6));
        engine.close().await.unwrap();
    });
}
