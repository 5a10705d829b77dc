// Typed input needs no second dependency: `JsonSchema` and `schemars` come from `hitl`,
// and the derive is pointed at them with `#[schemars(crate = "hitl::schemars")]`.
use hitl::JsonSchema;
use hitl::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "hitl::schemars")]
struct Refund {
    amount: u32,
    reason: String,
}

#[workflow(inject_context)]
async fn refund(ctx: &TaskContext) -> Result<u32, hitl::Error> {
    let answer = ctx.request_feedback(Feedback::input::<Refund>("Refund?")).await?;
    Ok(answer.value().amount)
}

fn main() {
    let schema = hitl::schemars::schema_for!(Refund);
    assert!(serde_json::to_string(&schema).unwrap().contains("amount"));
    let _ = refund;
}
