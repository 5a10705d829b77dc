// A task that takes the context: its body is replayed step by step.

#[task(inject_context)]
async fn deploy_with_approval(ctx: &TaskContext, plan: Plan) -> Result<DeploymentId, DeployError> {
    let id = deploy(plan.clone()).await?;
    ctx.sleep(Duration::from_secs(60)).await;
    Ok(id)
}
