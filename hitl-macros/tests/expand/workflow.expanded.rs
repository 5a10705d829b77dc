#[allow(non_camel_case_types)]
#[derive(
    ::core::clone::Clone,
    ::core::marker::Copy,
    ::core::fmt::Debug,
    ::core::default::Default
)]
struct release;
impl release {
    /**Runs the body of workflow `release` directly, without the engine: nothing is journaled.

Start durable runs with `engine.start(release, (…))`.*/
    async fn run(service: String, replicas: u32) -> Result<String, DeployError> {
        let __hitl_ret: Result<String, DeployError> = {
            let plan = {
                #[allow(unused_imports)]
                use ::hitl::__private::{
                    KindFallible as _, KindPlain as _, KindSelfJournaling as _,
                };
                static __HITL_SITE: ::hitl::__private::Site = ::hitl::__private::Site {
                    name: "build_plan(service)",
                    file: ::core::file!(),
                    line: ::core::line!(),
                };
                let __hitl_future = ::hitl::__private::into_future(build_plan(service));
                let __hitl_step = (&&&::hitl::__private::Probe::new(&__hitl_future))
                    .__hitl_kind()
                    .step(&__HITL_SITE, __hitl_future);
                __hitl_step.await
            };
            let (a, b) = tokio::join!(
                { static __HITL_SITE : ::hitl::__private::Site = ::hitl::__private::Site
                { name : "async0", file : ::core::file!(), line : ::core::line!(), };
                ::hitl::__private::scoped(& __HITL_SITE, async { {
                #[allow(unused_imports)] use ::hitl::__private:: { KindFallible as _,
                KindPlain as _, KindSelfJournaling as _ }; static __HITL_SITE :
                ::hitl::__private::Site = ::hitl::__private::Site { name : "check(1)",
                file : ::core::file!(), line : ::core::line!(), }; let __hitl_future =
                ::hitl::__private::into_future(check(1)); let __hitl_step = (& & &
                ::hitl::__private::Probe::new(& __hitl_future)).__hitl_kind().step(&
                __HITL_SITE, __hitl_future); __hitl_step. await } }) }, { static
                __HITL_SITE : ::hitl::__private::Site = ::hitl::__private::Site { name :
                "async1", file : ::core::file!(), line : ::core::line!(), };
                ::hitl::__private::scoped(& __HITL_SITE, async { {
                #[allow(unused_imports)] use ::hitl::__private:: { KindFallible as _,
                KindPlain as _, KindSelfJournaling as _ }; static __HITL_SITE :
                ::hitl::__private::Site = ::hitl::__private::Site { name : "check(2)",
                file : ::core::file!(), line : ::core::line!(), }; let __hitl_future =
                ::hitl::__private::into_future(check(2)); let __hitl_step = (& & &
                ::hitl::__private::Probe::new(& __hitl_future)).__hitl_kind().step(&
                __HITL_SITE, __hitl_future); __hitl_step. await } }) }
            );
            let status = {
                #[allow(unused_imports)]
                use ::hitl::__private::{
                    KindFallible as _, KindPlain as _, KindSelfJournaling as _,
                };
                static __HITL_SITE: ::hitl::__private::Site = ::hitl::__private::Site {
                    name: "fetch_status(&plan)",
                    file: ::core::file!(),
                    line: ::core::line!(),
                };
                let __hitl_future = ::hitl::__private::into_future(fetch_status(&plan));
                let __hitl_step = (&&&::hitl::__private::Probe::new(&__hitl_future))
                    .__hitl_kind()
                    .step(&__HITL_SITE, __hitl_future);
                __hitl_step.await
            }?;
            Ok(format!("{status} {a} {b} {replicas}"))
        };
        __hitl_ret
    }
}
const _: () = {
    impl ::hitl::Workflow for release {
        type Input = (String, u32);
        type Output = String;
        const DEFINITION: &'static ::hitl::__private::WorkflowDefinition = &::hitl::__private::WorkflowDefinition {
            name: "release",
            params: &["service", "replicas"],
            sites: &[
                ::hitl::__private::SiteEntry {
                    kind: "await",
                    name: "build_plan(service)",
                    line: ::core::line!(),
                },
                ::hitl::__private::SiteEntry {
                    kind: "await",
                    name: "check(1)",
                    line: ::core::line!(),
                },
                ::hitl::__private::SiteEntry {
                    kind: "async",
                    name: "async0",
                    line: ::core::line!(),
                },
                ::hitl::__private::SiteEntry {
                    kind: "await",
                    name: "check(2)",
                    line: ::core::line!(),
                },
                ::hitl::__private::SiteEntry {
                    kind: "async",
                    name: "async1",
                    line: ::core::line!(),
                },
                ::hitl::__private::SiteEntry {
                    kind: "await",
                    name: "fetch_status(&plan)",
                    line: ::core::line!(),
                },
            ],
            fingerprint: "830e9df3791895e4",
            file: ::core::file!(),
        };
        fn encode_input(
            input: Self::Input,
        ) -> ::hitl::Result<::hitl::__private::serde_json::Value> {
            let (service, replicas) = input;
            ::core::result::Result::Ok(
                ::hitl::__private::InputBuilder::new()
                    .arg("service", &service)?
                    .arg("replicas", &replicas)?
                    .finish(),
            )
        }
        fn start(
            input: ::hitl::__private::serde_json::Value,
        ) -> ::hitl::Result<::hitl::__private::WorkflowFuture> {
            #[allow(unused_mut)]
            let mut __hitl_reader = ::hitl::__private::InputReader::new(
                Self::DEFINITION,
                input,
            )?;
            let service: String = __hitl_reader.arg("service")?;
            let replicas: u32 = __hitl_reader.arg("replicas")?;
            __hitl_reader.finish()?;
            ::core::result::Result::Ok(
                ::hitl::__private::fallible_workflow(release::run(service, replicas)),
            )
        }
    }
};
