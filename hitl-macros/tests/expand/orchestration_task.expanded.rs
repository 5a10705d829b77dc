#[track_caller]
fn deploy_with_approval(
    plan: Plan,
) -> impl ::core::future::Future<
    Output = Result<DeploymentId, DeployError>,
> + ::hitl::__private::SelfJournaling {
    let __hitl_input = ::hitl::__private::InputHasher::new().arg(&plan).finish();
    let __hitl_body = async move {
        use ::hitl::__private::steps::*;
        let ::core::option::Option::Some(__hitl_context) = ::hitl::__private::context()
        else {
            return ::hitl::__private::probe_type::<Result<DeploymentId, DeployError>>()
                .no_context("deploy_with_approval");
        };
        let ctx: &TaskContext = &__hitl_context;
        #[allow(clippy::diverging_sub_expression)]
        let __hitl_ret: Result<DeploymentId, DeployError> = {
            let __hitl_step = deploy(plan.clone());
            let __hitl_kind = ::hitl::__private::probe(&__hitl_step).kind();
            let id = __hitl_kind.step("deploy(plan.clone())", __hitl_step).await?;
            let __hitl_step = ctx.sleep(Duration::from_secs(60));
            let __hitl_kind = ::hitl::__private::probe(&__hitl_step).kind();
            __hitl_kind.step("ctx.sleep(Duration::from_secs(60))", __hitl_step).await;
            Ok(id)
        };
        #[allow(unreachable_code)] __hitl_ret
    };
    ::hitl::__private::fallible_orchestration(
        "deploy_with_approval",
        __hitl_input,
        788155509u32,
        __hitl_body,
    )
}
