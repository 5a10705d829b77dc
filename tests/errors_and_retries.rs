//! Errors are returned, not journaled; `retries` retries them first.

use std::sync::atomic::{AtomicUsize, Ordering};

use hitl::prelude::*;

#[derive(Debug, thiserror::Error)]
#[error("the payment provider is down (attempt {0})")]
struct ProviderDown(usize);

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);
static FLAKY_FAILURES: AtomicUsize = AtomicUsize::new(2);

/// Fails while `FLAKY_FAILURES` is positive.
#[task]
async fn flaky_payment(cents: u64) -> Result<u64, ProviderDown> {
    let call = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if FLAKY_FAILURES.load(Ordering::SeqCst) > 0 {
        FLAKY_FAILURES.fetch_sub(1, Ordering::SeqCst);
        return Err(ProviderDown(call));
    }
    Ok(cents)
}

#[workflow]
async fn pay(cents: u64) -> Result<u64, ProviderDown> {
    flaky_payment(cents).await
}

#[tokio::test]
async fn a_failed_step_is_not_journaled_and_runs_again_in_the_next_run_attempt() {
    let engine = Engine::temporary().register(pay).open().await.unwrap();

    let first = engine.start_with_id(pay, "pay-1", (100,)).await.unwrap();
    let Outcome::Failed(failure) = first.wait().await.unwrap() else {
        panic!("expected a failure")
    };
    assert_eq!(failure.message, "the payment provider is down (attempt 1)");
    assert_eq!(failure.step.as_deref(), Some("flaky_payment#0"));
    assert!(
        engine.history("pay-1").await.unwrap().is_empty(),
        "an Err must not be journaled"
    );

    // The next attempt runs the step again.
    let second = engine.start_with_id(pay, "pay-2", (100,)).await.unwrap();
    assert!(matches!(second.wait().await.unwrap(), Outcome::Failed(_)));
    let third = engine.start_with_id(pay, "pay-3", (100,)).await.unwrap();
    assert_eq!(third.wait().await.unwrap(), Outcome::Completed(100));
    assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 3);
    assert_eq!(engine.history("pay-3").await.unwrap().len(), 1);
}

static RETRIED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(retries = 3)]
async fn succeeds_on_third_attempt(tag: String) -> Result<String, ProviderDown> {
    let call = RETRIED_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if call < 3 {
        Err(ProviderDown(call))
    } else {
        Ok(format!("{tag} after {call}"))
    }
}

static HOPELESS_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(retries = 2)]
async fn always_fails() -> Result<(), ProviderDown> {
    Err(ProviderDown(HOPELESS_CALLS.fetch_add(1, Ordering::SeqCst) + 1))
}

#[workflow]
async fn with_retries() -> Result<String, ProviderDown> {
    let value = succeeds_on_third_attempt("ok".to_owned()).await?;
    always_fails().await?;
    Ok(value)
}

#[tokio::test]
async fn retries_are_honoured_before_an_error_is_returned() {
    let engine = Engine::temporary().register(with_retries).open().await.unwrap();
    let run = engine.start(with_retries, ()).await.unwrap();
    let Outcome::Failed(failure) = run.wait().await.unwrap() else {
        panic!("expected a failure")
    };
    assert_eq!(
        RETRIED_CALLS.load(Ordering::SeqCst),
        3,
        "two failures, then success"
    );
    assert_eq!(
        HOPELESS_CALLS.load(Ordering::SeqCst),
        3,
        "one call plus two retries"
    );
    assert_eq!(failure.message, "the payment provider is down (attempt 3)");
    let history = engine.history(run.id()).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].output, serde_json::json!("ok after 3"));
}

#[task]
async fn key_of_this_activity() -> Option<String> {
    hitl::idempotency_key()
}

#[workflow]
async fn keyed() -> Option<String> {
    key_of_this_activity().await
}

#[tokio::test]
async fn a_task_called_outside_a_workflow_is_a_plain_function() {
    assert_eq!(key_of_this_activity().await, None);
    let engine = Engine::temporary().register(keyed).open().await.unwrap();
    let run = engine.start_with_id(keyed, "run-9", ()).await.unwrap();
    let key = run.wait().await.unwrap().completed().flatten();
    assert_eq!(key.as_deref(), Some("run-9/key_of_this_activity#0"));
}

#[tokio::test]
async fn an_inject_context_task_returning_result_called_directly_returns_no_context() {
    #[task(inject_context)]
    async fn needs_context(ctx: &TaskContext) -> hitl::Result<String> {
        Ok(ctx.run_id().to_owned())
    }
    let error = needs_context().await.unwrap_err();
    assert!(
        matches!(&error, hitl::Error::NoContext { task } if task == "needs_context"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("call it from a `#[workflow]`"),
        "{error}"
    );
}

#[tokio::test]
async fn an_inject_context_task_whose_error_converts_from_hitl_error_returns_it() {
    #[derive(Debug)]
    enum DeployError {
        Hitl(hitl::Error),
    }
    impl From<hitl::Error> for DeployError {
        fn from(error: hitl::Error) -> Self {
            DeployError::Hitl(error)
        }
    }
    #[task(inject_context)]
    async fn deploy_with_approval(ctx: &TaskContext) -> Result<u32, DeployError> {
        Ok(ctx.random() as u32)
    }
    let DeployError::Hitl(error) = deploy_with_approval().await.unwrap_err();
    assert!(matches!(error, hitl::Error::NoContext { .. }), "{error:?}");
}

#[tokio::test]
#[should_panic(expected = "uses `inject_context` and was called outside a running workflow")]
async fn an_inject_context_task_without_a_result_called_directly_panics_with_the_fix() {
    #[task(inject_context)]
    async fn needs_context(ctx: &TaskContext) -> String {
        ctx.run_id().to_owned()
    }
    needs_context().await;
}
