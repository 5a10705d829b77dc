// `#[workflow(name = "…")]` sets the registered name, alone or with `inject_context`.
use hitl::prelude::*;

#[workflow(name = "release-v2")]
async fn release(service: String) -> String {
    service
}

#[workflow(name = "rollback", inject_context)]
async fn rollback(ctx: &TaskContext) -> String {
    ctx.run_id().to_owned()
}

fn main() {
    assert_eq!(<release as Workflow>::DEFINITION.name, "release-v2");
    assert_eq!(<rollback as Workflow>::DEFINITION.name, "rollback");
}
