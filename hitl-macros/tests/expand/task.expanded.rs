#[track_caller]
fn build_plan(
    service: String,
) -> ::hitl::__private::TaskFuture<impl ::core::future::Future<Output = Plan>> {
    static __HITL_SITE: ::hitl::__private::Site = ::hitl::__private::Site {
        name: "build_plan",
        file: ::core::file!(),
        line: ::core::line!(),
    };
    let __hitl_input = {
        let mut __hitl_hasher = ::hitl::__private::InputHasher::new();
        __hitl_hasher.add(&service);
        __hitl_hasher.finish()
    };
    ::hitl::__private::activity(
        &__HITL_SITE,
        __hitl_input,
        async move {
            let __hitl_ret: Plan = { Plan { service, replicas: 3 } };
            __hitl_ret
        },
    )
}
#[track_caller]
fn deploy_plan(
    plan: Plan,
) -> ::hitl::__private::TaskFuture<
    impl ::core::future::Future<Output = Result<DeploymentId, DeployError>>,
> {
    static __HITL_SITE: ::hitl::__private::Site = ::hitl::__private::Site {
        name: "deploy",
        file: ::core::file!(),
        line: ::core::line!(),
    };
    let __hitl_input = {
        let mut __hitl_hasher = ::hitl::__private::InputHasher::new();
        __hitl_hasher.add(&plan);
        __hitl_hasher.finish()
    };
    ::hitl::__private::fallible_activity(
        &__HITL_SITE,
        __hitl_input,
        ::hitl::__private::retrying(
            "deploy",
            2,
            move || {
                let plan = ::core::clone::Clone::clone(&plan);
                async move {
                    let __hitl_ret: Result<DeploymentId, DeployError> = {
                        client().deploy(&plan).await
                    };
                    __hitl_ret
                }
            },
        ),
    )
}
#[track_caller]
fn parse_id(text: &str) -> u64 {
    static __HITL_SITE: ::hitl::__private::Site = ::hitl::__private::Site {
        name: "parse_id",
        file: ::core::file!(),
        line: ::core::line!(),
    };
    let __hitl_input = {
        let mut __hitl_hasher = ::hitl::__private::InputHasher::new();
        __hitl_hasher.add(&text);
        __hitl_hasher.finish()
    };
    ::hitl::__private::sync_activity(
        &__HITL_SITE,
        __hitl_input,
        move || -> u64 { text.parse().unwrap_or(0) },
    )
}
