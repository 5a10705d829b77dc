#[allow(non_camel_case_types)]
#[derive(::core::clone::Clone, ::core::marker::Copy)]
#[derive(::core::fmt::Debug, ::core::default::Default)]
struct release;
impl release {
    ///Runs the body of `release` without the engine (nothing is journaled); `engine.start` runs it durably.
    async fn run(service: String, replicas: u32) -> Result<String, DeployError> {
        use ::hitl::__private::steps::*;
        let __hitl_step = build_plan(service);
        let __hitl_kind = ::hitl::__private::probe(&__hitl_step).kind();
        let plan = __hitl_kind.step("build_plan(service)", __hitl_step).await;
        let (a, b) = tokio::join!(
            ::hitl::__private::scope("async0")
                .run(async {
                    let __hitl_step = check(1);
                    let __hitl_kind = ::hitl::__private::probe(&__hitl_step).kind();
                    __hitl_kind.step("check(1)", __hitl_step).await
                }),
            ::hitl::__private::scope("async1")
                .run(async {
                    let __hitl_step = check(2);
                    let __hitl_kind = ::hitl::__private::probe(&__hitl_step).kind();
                    __hitl_kind.step("check(2)", __hitl_step).await
                }),
        );
        let __hitl_step = fetch_status(&plan);
        let __hitl_kind = ::hitl::__private::probe(&__hitl_step).kind();
        let status = __hitl_kind.step("fetch_status(&plan)", __hitl_step).await?;
        Ok(format!("{status} {a} {b} {replicas}"))
    }
}
impl ::hitl::Workflow for release {
    type Input = (String, u32);
    type Output = String;
    const DEFINITION: &'static ::hitl::__private::WorkflowDefinition = &::hitl::__private::WorkflowDefinition {
        name: "release",
        version: 1u32,
        params: &["service", "replicas"],
        sites: &[
            ::hitl::__private::await_site("build_plan(service)", ::core::line!()),
            ::hitl::__private::await_site("check(1)", ::core::line!()),
            ::hitl::__private::async_site("async0", ::core::line!()),
            ::hitl::__private::await_site("check(2)", ::core::line!()),
            ::hitl::__private::async_site("async1", ::core::line!()),
            ::hitl::__private::await_site("fetch_status(&plan)", ::core::line!()),
        ],
        fingerprint: "830e9df3791895e4",
        file: ::core::file!(),
    };
    fn encode_input(
        __hitl_input: Self::Input,
    ) -> ::hitl::Result<::hitl::__private::Value> {
        ::hitl::__private::InputBuilder::new()
            .arg("service", &__hitl_input.0, ::hitl::__private::ArgCodec::of())
            .arg("replicas", &__hitl_input.1, ::hitl::__private::ArgCodec::of())
            .finish()
    }
    fn start(
        input: ::hitl::__private::Value,
    ) -> ::hitl::Result<::hitl::__private::WorkflowFuture> {
        let __hitl_reader = ::hitl::__private::InputReader::of::<Self>(input)?;
        let service: String = __hitl_reader
            .arg("service", ::hitl::__private::ArgCodec::of())?;
        let replicas: u32 = __hitl_reader
            .arg("replicas", ::hitl::__private::ArgCodec::of())?;
        ::hitl::__private::fallible_workflow(
            release::run(service, replicas),
            <DeployError as ::hitl::__private::WorkflowError>::describe,
        )
    }
}
