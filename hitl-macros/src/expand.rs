//! Token generation for `#[task]` and `#[workflow]`. No error paths here: everything was
//! checked in `item` and `args`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, LitStr};

use crate::args::{TaskArgs, WorkflowArgs};
use crate::item::FnItem;
use crate::rewrite::{self, SiteEntry};

/// Expands `#[task]`.
pub(crate) fn task(args: TaskArgs, mut item: FnItem) -> TokenStream {
    let name = args.name.as_ref().map_or_else(|| item.name(), LitStr::value);
    if item.context.is_some() {
        rewrite::rewrite(&mut item.block);
    }
    if item.is_async() {
        async_task(&args, &item, &name)
    } else {
        sync_task(&item, &name)
    }
}

/// The parts every task expansion shares: the site static and the input fingerprint.
fn task_prelude(item: &FnItem, name: &str) -> TokenStream {
    let span = item.sig.ident.span();
    let hasher = format_ident!("__hitl_hasher", span = Span::mixed_site());
    let adds = item.params.iter().map(|param| {
        let ident = &param.ident;
        quote_spanned!(param.ty.span()=> #hasher.add(&#ident);)
    });
    quote_spanned! {span=>
        static __HITL_SITE: ::hitl::__private::Site = ::hitl::__private::Site {
            name: #name,
            file: ::core::file!(),
            line: ::core::line!(),
        };
        let __hitl_input = {
            let mut #hasher = ::hitl::__private::InputHasher::new();
            #(#adds)*
            #hasher.finish()
        };
    }
}

/// The signature as the user wrote it, less `async`, the context parameter and the return
/// type (which the caller supplies).
fn outer_signature(item: &FnItem, output: TokenStream) -> TokenStream {
    let FnItem { attrs, vis, sig, .. } = item;
    let constness = &sig.constness;
    let abi = &sig.abi;
    let fn_token = &sig.fn_token;
    let ident = &sig.ident;
    let params = outer_params(item);
    // `#[track_caller]` lets the step record where the task was called, not defined. The
    // user's own `fn` token keeps lints such as `dead_code` pointed at their fn.
    quote! {
        #(#attrs)*
        #[track_caller]
        #vis #constness #abi #fn_token #ident(#(#params),*) -> #output
    }
}

/// The user's block with the context bound and the return type pinned:
///
/// ```text
/// {
///     let __hitl_context = ::hitl::__private::current_context("name");   // inject_context only
///     let ctx: &TaskContext = &__hitl_context;
///     let __hitl_ret: Ret = { user body };
///     __hitl_ret
/// }
/// ```
fn pinned_body(item: &FnItem) -> TokenStream {
    let output = &item.output;
    let block: &Block = &item.block;
    let context = item.context.as_ref().map(|context| {
        let pat = &context.pat;
        let ty = &context.ty;
        let name = item.name();
        let local = format_ident!("__hitl_context", span = Span::mixed_site());
        quote! {
            let #local = ::hitl::__private::current_context(#name);
            let #pat: #ty = &#local;
        }
    });
    let ret = format_ident!("__hitl_ret", span = Span::mixed_site());
    quote! {
        #context
        let #ret: #output = #block;
        #ret
    }
}

// Input:
//     #[task] async fn deploy(plan: Plan) -> Result<Id, DeployError> { body }
// Output:
//     fn deploy(plan: Plan) -> ::hitl::__private::TaskFuture<impl Future<Output = Result<Id, DeployError>>> {
//         static __HITL_SITE: Site = Site { name: "deploy", file: file!(), line: line!() };
//         let __hitl_input = { hash of (&plan,) };
//         ::hitl::__private::fallible_activity(&__HITL_SITE, __hitl_input, async move {
//             let __hitl_ret: Result<Id, DeployError> = { body };
//             __hitl_ret
//         })
//     }
fn async_task(args: &TaskArgs, item: &FnItem, name: &str) -> TokenStream {
    let output = &item.output;
    let output_span = item.output.span();
    let signature = outer_signature(
        item,
        quote_spanned!(output_span=> ::hitl::__private::TaskFuture<impl ::core::future::Future<Output = #output>>),
    );
    let prelude = task_prelude(item, name);
    let body = pinned_body(item);
    let constructor = match (item.context.is_some(), item.ok.is_some()) {
        (false, false) => quote_spanned!(output_span=> ::hitl::__private::activity),
        (false, true) => quote_spanned!(output_span=> ::hitl::__private::fallible_activity),
        (true, false) => quote_spanned!(output_span=> ::hitl::__private::orchestration),
        (true, true) => quote_spanned!(output_span=> ::hitl::__private::fallible_orchestration),
    };
    let future = match &args.retries {
        Some((_, retries)) => {
            let clones = item.params.iter().map(|param| {
                let ident = &param.ident;
                quote!(let #ident = ::core::clone::Clone::clone(&#ident);)
            });
            quote! {
                ::hitl::__private::retrying(#name, #retries, move || {
                    #(#clones)*
                    async move { #body }
                })
            }
        }
        None => quote!(async move { #body }),
    };
    let call = quote_spanned!(output_span=> #constructor(&__HITL_SITE, __hitl_input, #future));
    with_user_braces(item, signature, quote!(#prelude #call))
}

/// `signature { body }` with the user's braces, so the fn's spans are the user's.
fn with_user_braces(item: &FnItem, signature: TokenStream, body: TokenStream) -> TokenStream {
    let mut tokens = signature;
    item.block
        .brace_token
        .surround(&mut tokens, |tokens| tokens.extend(body));
    tokens
}

// Input:
//     #[task] fn parse(text: String) -> u32 { body }
// Output:
//     fn parse(text: String) -> u32 {
//         static __HITL_SITE: Site = …; let __hitl_input = …;
//         ::hitl::__private::sync_activity(&__HITL_SITE, __hitl_input, move || -> u32 { body })
//     }
fn sync_task(item: &FnItem, name: &str) -> TokenStream {
    let output = &item.output;
    let signature = outer_signature(item, quote!(#output));
    let prelude = task_prelude(item, name);
    let block = &item.block;
    let constructor = if item.ok.is_some() {
        quote_spanned!(output.span()=> ::hitl::__private::fallible_sync_activity)
    } else {
        quote_spanned!(output.span()=> ::hitl::__private::sync_activity)
    };
    let call =
        quote_spanned!(output.span()=> #constructor(&__HITL_SITE, __hitl_input, move || -> #output #block));
    with_user_braces(item, signature, quote!(#prelude #call))
}

// Input:
//     #[workflow] async fn release(service: String) -> Result<Id, DeployError> { body }
// Output:
//     #[derive(Clone, Copy, Debug, Default)]
//     struct release;                                   // the value you register and start
//     impl release {
//         async fn run(service: String) -> Result<Id, DeployError> { body, awaits rewritten }
//     }
//     const _: () = {
//         impl ::hitl::Workflow for release {
//             type Input = (String,);
//             type Output = Id;
//             const DEFINITION: &WorkflowDefinition = &WorkflowDefinition { name, params, sites, fingerprint, file };
//             fn encode_input(input) -> Result<Value> { {"service": input.0} }
//             fn start(input: Value) -> Result<WorkflowFuture> { decode fields; fallible_workflow(release::run(service)) }
//         }
//     };
pub(crate) fn workflow(args: WorkflowArgs, mut item: FnItem) -> TokenStream {
    let sites = rewrite::rewrite(&mut item.block);
    let name = args.name.as_ref().map_or_else(|| item.name(), LitStr::value);
    let FnItem { attrs, vis, sig, .. } = &item;
    let ident = &sig.ident;
    let output = &item.output;
    let body = pinned_body(&item);
    let params: Vec<_> = item.params.iter().map(|param| &param.ident).collect();
    let types: Vec<_> = item.params.iter().map(|param| &param.ty).collect();
    let param_names: Vec<_> = params
        .iter()
        .map(|ident| {
            let name = ident.to_string();
            name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
        })
        .collect();
    let run_params = outer_params(&item);
    let (output_type, wrap) = match &item.ok {
        Some(ok) => (
            quote!(#ok),
            quote_spanned!(output.span()=> ::hitl::__private::fallible_workflow),
        ),
        None => (
            quote!(#output),
            quote_spanned!(output.span()=> ::hitl::__private::workflow),
        ),
    };
    let site_entries = sites.iter().map(|SiteEntry { kind, name, span }| {
        quote_spanned! {*span=>
            ::hitl::__private::SiteEntry { kind: #kind, name: #name, line: ::core::line!() }
        }
    });
    let fingerprint = fingerprint(&sites);
    // Argument checks carry the span of each argument's type.
    let encode_args = item.params.iter().zip(&param_names).map(|(param, name)| {
        let ident = &param.ident;
        quote_spanned!(param.ty.span()=> .arg(#name, &#ident)?)
    });
    let reader = format_ident!("__hitl_reader", span = Span::mixed_site());
    let decode_args = item.params.iter().zip(&param_names).map(|(param, name)| {
        let ident = &param.ident;
        let ty = &param.ty;
        quote_spanned!(param.ty.span()=> let #ident: #ty = #reader.arg(#name)?;)
    });
    let doc_run = format!(
        "Runs the body of workflow `{name}` directly, without the engine: nothing is journaled.\n\n\
         Start durable runs with `engine.start({ident}, (…))`."
    );
    quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug, ::core::default::Default)]
        #vis struct #ident;

        impl #ident {
            #[doc = #doc_run]
            #vis async fn run(#(#run_params),*) -> #output {
                #body
            }
        }

        const _: () = {
            impl ::hitl::Workflow for #ident {
                type Input = (#(#types,)*);
                type Output = #output_type;

                const DEFINITION: &'static ::hitl::__private::WorkflowDefinition = &::hitl::__private::WorkflowDefinition {
                    name: #name,
                    params: &[#(#param_names),*],
                    sites: &[#(#site_entries),*],
                    fingerprint: #fingerprint,
                    file: ::core::file!(),
                };

                fn encode_input(input: Self::Input) -> ::hitl::Result<::hitl::__private::serde_json::Value> {
                    let (#(#params,)*) = input;
                    ::core::result::Result::Ok(
                        ::hitl::__private::InputBuilder::new()
                            #(#encode_args)*
                            .finish(),
                    )
                }

                fn start(
                    input: ::hitl::__private::serde_json::Value,
                ) -> ::hitl::Result<::hitl::__private::WorkflowFuture> {
                    #[allow(unused_mut)]
                    let mut #reader = ::hitl::__private::InputReader::new(Self::DEFINITION, input)?;
                    #(#decode_args)*
                    #reader.finish()?;
                    ::core::result::Result::Ok(#wrap(#ident::run(#(#params),*)))
                }
            }
        };
    }
}

/// The parameters as declared (`mut` kept), less the context.
fn outer_params(item: &FnItem) -> Vec<TokenStream> {
    item.params
        .iter()
        .map(|param| {
            let ident = &param.ident;
            let ty = &param.ty;
            let mutability = &param.mutability;
            quote!(#mutability #ident: #ty)
        })
        .collect()
}

/// FNV-1a over `kind name` of every site: stored with each run to detect changed code.
fn fingerprint(sites: &[SiteEntry]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for site in sites {
        for byte in site
            .kind
            .bytes()
            .chain([b' '])
            .chain(site.name.bytes())
            .chain([b'\n'])
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}
