#[track_caller]
fn build_plan(
    service: String,
) -> impl ::core::future::Future<Output = Plan> + ::hitl::__private::SelfJournaling {
    let __hitl_input = ::hitl::__private::InputHasher::new().arg(&service).finish();
    let __hitl_body = async move {
        #[allow(clippy::diverging_sub_expression)]
        let __hitl_ret: Plan = { Plan { service, replicas: 3 } };
        #[allow(unreachable_code)] __hitl_ret
    };
    ::hitl::__private::activity("build_plan", __hitl_input, 245616688u32, __hitl_body)
}
#[track_caller]
fn deploy_plan(
    plan: Plan,
) -> impl ::core::future::Future<
    Output = Result<DeploymentId, DeployError>,
> + ::hitl::__private::SelfJournaling {
    let __hitl_input = ::hitl::__private::InputHasher::new().arg(&plan).finish();
    let __hitl_attempt = move || {
        let plan = ::core::clone::Clone::clone(&plan);
        async move {
            #[allow(clippy::diverging_sub_expression)]
            let __hitl_ret: Result<DeploymentId, DeployError> = {
                client().deploy(&plan).await
            };
            #[allow(unreachable_code)] __hitl_ret
        }
    };
    let __hitl_body = ::hitl::__private::retrying("deploy", 2, __hitl_attempt);
    ::hitl::__private::fallible_activity(
        "deploy",
        __hitl_input,
        788155509u32,
        __hitl_body,
    )
}
#[track_caller]
fn parse_id(text: &str) -> u64 {
    let __hitl_input = ::hitl::__private::InputHasher::new().arg(&text).finish();
    let __hitl_body = move || -> u64 { text.parse().unwrap_or(0) };
    ::hitl::__private::sync_activity("parse_id", __hitl_input, 729121370u32, __hitl_body)
}
