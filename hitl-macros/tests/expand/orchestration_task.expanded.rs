#[track_caller]
fn deploy_with_approval(
    plan: Plan,
) -> ::hitl::__private::TaskFuture<
    impl ::core::future::Future<Output = Result<DeploymentId, DeployError>>,
> {
    static __HITL_SITE: ::hitl::__private::Site = ::hitl::__private::Site {
        name: "deploy_with_approval",
        file: ::core::file!(),
        line: ::core::line!(),
    };
    let __hitl_input = {
        let mut __hitl_hasher = ::hitl::__private::InputHasher::new();
        __hitl_hasher.add(&plan);
        __hitl_hasher.finish()
    };
    ::hitl::__private::fallible_orchestration(
        &__HITL_SITE,
        __hitl_input,
        async move {
            let __hitl_context = ::hitl::__private::current_context(
                "deploy_with_approval",
            );
            let ctx: &TaskContext = &__hitl_context;
            let __hitl_ret: Result<DeploymentId, DeployError> = {
                let id = {
                    #[allow(unused_imports)]
                    use ::hitl::__private::{
                        KindFallible as _, KindPlain as _, KindSelfJournaling as _,
                    };
                    static __HITL_SITE: ::hitl::__private::Site = ::hitl::__private::Site {
                        name: "deploy(plan.clone())",
                        file: ::core::file!(),
                        line: ::core::line!(),
                    };
                    let __hitl_future = ::hitl::__private::into_future(
                        deploy(plan.clone()),
                    );
                    let __hitl_step = (&&&::hitl::__private::Probe::new(&__hitl_future))
                        .__hitl_kind()
                        .step(&__HITL_SITE, __hitl_future);
                    __hitl_step.await
                }?;
                {
                    #[allow(unused_imports)]
                    use ::hitl::__private::{
                        KindFallible as _, KindPlain as _, KindSelfJournaling as _,
                    };
                    static __HITL_SITE: ::hitl::__private::Site = ::hitl::__private::Site {
                        name: "ctx.sleep(Duration::from_secs(60))",
                        file: ::core::file!(),
                        line: ::core::line!(),
                    };
                    let __hitl_future = ::hitl::__private::into_future(
                        ctx.sleep(Duration::from_secs(60)),
                    );
                    let __hitl_step = (&&&::hitl::__private::Probe::new(&__hitl_future))
                        .__hitl_kind()
                        .step(&__HITL_SITE, __hitl_future);
                    __hitl_step.await
                };
                Ok(id)
            };
            __hitl_ret
        },
    )
}
