// A workflow with a join of async blocks and an awaited plain future.

#[workflow(name = "release")]
async fn release(service: String, replicas: u32) -> Result<String, DeployError> {
    let plan = build_plan(service).await;
    let (a, b) = tokio::join!(async { check(1).await }, async { check(2).await });
    let status = fetch_status(&plan).await?;
    Ok(format!("{status} {a} {b} {replicas}"))
}
