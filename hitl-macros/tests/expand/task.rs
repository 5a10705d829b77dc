// A plain activity, a fallible one with retries, and a sync one.

#[task]
async fn build_plan(service: String) -> Plan {
    Plan { service, replicas: 3 }
}

#[task(retries = 2, name = "deploy")]
async fn deploy_plan(plan: Plan) -> Result<DeploymentId, DeployError> {
    client().deploy(&plan).await
}

#[task]
fn parse_id(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}
