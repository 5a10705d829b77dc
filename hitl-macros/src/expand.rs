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

/// The input fingerprint, one argument per `.arg(..)`, each spanned at the argument's type
/// so that a non-serializable argument is reported there:
/// `let __hitl_input = ::hitl::__private::InputHasher::new().arg(&plan).finish();`
fn input_hash(item: &FnItem) -> TokenStream {
    let args = item.params.iter().map(|param| {
        let ident = &param.ident;
        quote_spanned!(param.ty.span()=> .arg(&#ident))
    });
    quote! {
        let __hitl_input = ::hitl::__private::InputHasher::new()#(#args)*.finish();
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

/// The user's block with the context bound (`inject_context` only) and the return type
/// pinned, so that type errors land on the user's code:
///
/// ```text
/// use ::hitl::__private::steps::*;                       // inject_context only
/// let Some(__hitl_context) = ::hitl::__private::context() else {
///     return ::hitl::__private::probe_type::<Ret>().no_context("name");
/// };
/// let ctx: &TaskContext = &__hitl_context;
/// #[allow(clippy::diverging_sub_expression)]              // a body may be a bare panic
/// let __hitl_ret: Ret = { user body };
/// #[allow(unreachable_code)] __hitl_ret                  // a body may end in `loop { return … }`
/// ```
fn pinned_body(item: &FnItem, name: &str) -> TokenStream {
    let output = &item.output;
    let block: &Block = &item.block;
    let context = context_binding(item, name);
    let ret = format_ident!("__hitl_ret", span = Span::mixed_site());
    // A body that diverges (a panic macro standing in for code not written yet) is the
    // user's choice, not a sub-expression clippy should flag inside the binding.
    quote! {
        #context
        #[allow(clippy::diverging_sub_expression)]
        let #ret: #output = #block;
        #[allow(unreachable_code)]
        #ret
    }
}

/// For `inject_context`: the step traits in scope, and the context bound to the user's
/// parameter, or `Err(Error::NoContext)` / a panic outside a running workflow.
fn context_binding(item: &FnItem, name: &str) -> Option<TokenStream> {
    let output = &item.output;
    item.context.as_ref().map(|context| {
        let pat = &context.pat;
        let ty = &context.ty;
        let local = format_ident!("__hitl_context", span = Span::mixed_site());
        quote! {
            use ::hitl::__private::steps::*;
            let ::core::option::Option::Some(#local) = ::hitl::__private::context() else {
                return ::hitl::__private::probe_type::<#output>().no_context(#name);
            };
            let #pat: #ty = &#local;
        }
    })
}

// Input:
//     #[task] async fn deploy(plan: Plan) -> Result<Id, DeployError> { body }
// Output:
//     #[track_caller]
//     fn deploy(plan: Plan) -> impl Future<Output = Result<Id, DeployError>> + SelfJournaling {
//         let __hitl_input = ::hitl::__private::InputHasher::new().arg(&plan).finish();
//         let __hitl_body = async move {
//             let __hitl_ret: Result<Id, DeployError> = { body };
//             #[allow(unreachable_code)] __hitl_ret
//         };
//         ::hitl::__private::fallible_activity("deploy", __hitl_input, __hitl_body)
//     }
fn async_task(args: &TaskArgs, item: &FnItem, name: &str) -> TokenStream {
    let output = &item.output;
    let output_span = item.output.span();
    // An opaque `impl Future` (not a named hitl type): a task call used without `.await`
    // reads "expected `T`, found future" with rustc's "consider `.await`ing" suggestion.
    let signature = outer_signature(
        item,
        quote_spanned!(output_span=> impl ::core::future::Future<Output = #output> + ::hitl::__private::SelfJournaling),
    );
    let input = input_hash(item);
    let body = pinned_body(item, name);
    let constructor = match (item.context.is_some(), item.ok.is_some()) {
        (false, false) => quote_spanned!(output_span=> ::hitl::__private::activity),
        (false, true) => quote_spanned!(output_span=> ::hitl::__private::fallible_activity),
        (true, false) => quote_spanned!(output_span=> ::hitl::__private::orchestration),
        (true, true) => quote_spanned!(output_span=> ::hitl::__private::fallible_orchestration),
    };
    let (attempt, future) = match &args.retries {
        Some((_, retries)) => {
            let clones = item.params.iter().map(|param| {
                let ident = &param.ident;
                quote!(let #ident = ::core::clone::Clone::clone(&#ident);)
            });
            // The attempt is bound first so that the call reads as one line.
            (
                quote! {
                    let __hitl_attempt = move || {
                        #(#clones)*
                        async move { #body }
                    };
                },
                quote!(::hitl::__private::retrying(#name, #retries, __hitl_attempt)),
            )
        }
        None => (TokenStream::new(), quote!(async move { #body })),
    };
    let types = types_fingerprint(item);
    let call = quote_spanned!(output_span=> #constructor(#name, __hitl_input, #types, __hitl_body));
    with_user_braces(
        item,
        signature,
        quote!(#input #attempt let __hitl_body = #future; #call),
    )
}

/// `signature { #![inner attributes] body }` with the user's braces, so the fn's spans are
/// the user's and inner attributes stay inner.
fn with_user_braces(item: &FnItem, signature: TokenStream, body: TokenStream) -> TokenStream {
    let inner = &item.inner_attrs;
    let mut tokens = signature;
    item.block.brace_token.surround(&mut tokens, |tokens| {
        tokens.extend(quote!(#(#inner)*));
        tokens.extend(body);
    });
    tokens
}

// Input:
//     #[task] fn parse(text: String) -> u32 { body }
// Output:
//     #[track_caller]
//     fn parse(text: String) -> u32 {
//         let __hitl_input = ::hitl::__private::InputHasher::new().arg(&text).finish();
//         let __hitl_body = move || -> u32 { body };
//         ::hitl::__private::sync_activity("parse", __hitl_input, __hitl_body)
//     }
fn sync_task(item: &FnItem, name: &str) -> TokenStream {
    let output = &item.output;
    let signature = outer_signature(item, quote!(#output));
    let input = input_hash(item);
    let block = &item.block;
    let constructor = if item.ok.is_some() {
        quote_spanned!(output.span()=> ::hitl::__private::fallible_sync_activity)
    } else {
        quote_spanned!(output.span()=> ::hitl::__private::sync_activity)
    };
    let types = types_fingerprint(item);
    let call = quote_spanned!(output.span()=> #constructor(#name, __hitl_input, #types, __hitl_body));
    with_user_braces(
        item,
        signature,
        quote!(#input let __hitl_body = move || -> #output #block; #call),
    )
}

// Input:
//     #[workflow] async fn release(service: String) -> Result<Id, DeployError> { body }
// Output:
//     #[derive(Clone, Copy, Debug, Default)]
//     struct release;                                   // the value you register and start
//     impl release {
//         async fn run(service: String) -> Result<Id, DeployError> {
//             use ::hitl::__private::steps::*;          // when the body has steps
//             body, awaits rewritten
//         }
//     }
//     impl ::hitl::Workflow for release {
//         type Input = (String,);
//         type Output = Id;
//         const DEFINITION: &WorkflowDefinition = &WorkflowDefinition { name, params, sites, fingerprint, file };
//         fn encode_input(__hitl_input) -> Result<Value> { InputBuilder::new().arg("service", &__hitl_input.0).finish() }
//         fn start(input: Value) -> Result<WorkflowFuture> {
//             let service: String = InputReader::of::<Self>(input)?.arg("service")?;
//             fallible_workflow(release::run(service), <DeployError as WorkflowError>::describe)
//         }
//     }
pub(crate) fn workflow(args: WorkflowArgs, mut item: FnItem) -> TokenStream {
    let sites = rewrite::rewrite(&mut item.block);
    let name = args.name.as_ref().map_or_else(|| item.name(), LitStr::value);
    let version = args
        .version
        .as_ref()
        .map_or(1, |version| version.base10_parse::<u32>().unwrap_or(1));
    let FnItem { attrs, vis, sig, .. } = &item;
    let ident = &sig.ident;
    let output = &item.output;
    let steps = match context_binding(&item, &name) {
        Some(binding) => Some(binding),
        None => (!sites.is_empty()).then(|| {
            quote! {
                use ::hitl::__private::steps::*;
            }
        }),
    };
    let inner = &item.inner_attrs;
    let stmts = &item.block.stmts;
    let mut body = TokenStream::new();
    item.block.brace_token.surround(&mut body, |tokens| {
        tokens.extend(quote!(#(#inner)* #steps #(#stmts)*))
    });
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
    let run_call = quote!(#ident::run(#(#params),*));
    let (output_type, wrap) = match &item.ok {
        // The error type must be `Display`: checked once, at the error type as written
        // (or at the return type for a one-parameter alias such as `anyhow::Result<T>`).
        Some(ok) => {
            let describe = match &item.err {
                Some(err) => {
                    quote_spanned!(err.span()=> <#err as ::hitl::__private::WorkflowError>::describe)
                }
                None => quote_spanned!(output.span()=> <_ as ::hitl::__private::WorkflowError>::describe),
            };
            (
                quote!(#ok),
                quote_spanned!(output.span()=> ::hitl::__private::fallible_workflow(#run_call, #describe)),
            )
        }
        None => (
            quote!(#output),
            quote_spanned!(output.span()=> ::hitl::__private::workflow(#run_call)),
        ),
    };
    let site_entries = sites.iter().map(|SiteEntry { kind, name, span }| {
        let entry = if *kind == "async" {
            quote!(::hitl::__private::async_site)
        } else {
            quote!(::hitl::__private::await_site)
        };
        quote_spanned!(*span=> #entry(#name, ::core::line!()))
    });
    let fingerprint = fingerprint(&sites);
    // Both the encoding and the decoding check carry the span of the argument's type only,
    // so a non-serializable argument is reported once (rustc merges equal errors at one span).
    let encode_args = item
        .params
        .iter()
        .zip(&param_names)
        .enumerate()
        .map(|(index, (param, name))| {
            let span = param.ty.span();
            let input = syn::Ident::new("__hitl_input", span);
            let index = syn::Index {
                index: index as u32,
                span,
            };
            quote_spanned!(span=> .arg(#name, &#input.#index, ::hitl::__private::ArgCodec::of()))
        });
    let reader = format_ident!("__hitl_reader", span = Span::mixed_site());
    let decode_args = item.params.iter().zip(&param_names).map(|(param, name)| {
        let ident = &param.ident;
        let ty = &param.ty;
        quote_spanned!(param.ty.span()=> let #ident: #ty = #reader.arg(#name, ::hitl::__private::ArgCodec::of())?;)
    });
    let doc_run = format!(
        "Runs the body of `{name}` without the engine (nothing is journaled); `engine.start` runs it durably."
    );
    quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(::core::clone::Clone, ::core::marker::Copy)]
        #[derive(::core::fmt::Debug, ::core::default::Default)]
        #vis struct #ident;

        impl #ident {
            #[doc = #doc_run]
            #vis async fn run(#(#run_params),*) -> #output #body
        }

        impl ::hitl::Workflow for #ident {
                type Input = (#(#types,)*);
                type Output = #output_type;

                const DEFINITION: &'static ::hitl::__private::WorkflowDefinition = &::hitl::__private::WorkflowDefinition {
                    name: #name,
                    version: #version,
                    params: &[#(#param_names),*],
                    sites: &[#(#site_entries),*],
                    fingerprint: #fingerprint,
                    file: ::core::file!(),
                };

                fn encode_input(__hitl_input: Self::Input) -> ::hitl::Result<::hitl::__private::Value> {
                    ::hitl::__private::InputBuilder::new()#(#encode_args)*.finish()
                }

                fn start(input: ::hitl::__private::Value) -> ::hitl::Result<::hitl::__private::WorkflowFuture> {
                    let #reader = ::hitl::__private::InputReader::of::<Self>(input)?;
                    #(#decode_args)*
                    #wrap
                }
        }
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

/// A fingerprint of a task's argument and output types, journaled with each of its steps:
/// FNV-1a (folded to 32 bits, never 0) over the types as written, each path reduced to its
/// last segment so that `std::string::String` and `String` are the same type.
fn types_fingerprint(item: &FnItem) -> syn::LitInt {
    let mut text = String::new();
    for param in &item.params {
        text.push_str(&type_text(&param.ty));
        text.push(',');
    }
    text.push_str("->");
    // What is journaled: `T` of a fallible task (its error is never stored), else the output.
    text.push_str(&type_text(item.ok.as_ref().unwrap_or(&item.output)));
    let hash = fnv(text.bytes());
    let folded = ((hash >> 32) ^ hash) as u32;
    syn::LitInt::new(&format!("{}u32", folded.max(1)), Span::call_site())
}

/// A type's tokens with every path reduced to its last segment.
fn type_text(ty: &syn::Type) -> String {
    struct LastSegments;
    impl syn::visit_mut::VisitMut for LastSegments {
        fn visit_type_path_mut(&mut self, path: &mut syn::TypePath) {
            syn::visit_mut::visit_type_path_mut(self, path);
            if path.qself.is_none() && path.path.segments.len() > 1 {
                let last = path.path.segments.pop().map(syn::punctuated::Pair::into_value);
                path.path.segments.clear();
                path.path.segments.extend(last);
                path.path.leading_colon = None;
            }
        }
    }
    let mut ty = ty.clone();
    syn::visit_mut::VisitMut::visit_type_mut(&mut LastSegments, &mut ty);
    // The tokens' text without the printer's spacing, which is not a stable format.
    fn flatten(tokens: proc_macro2::TokenStream, out: &mut String) {
        for tree in tokens {
            match tree {
                proc_macro2::TokenTree::Group(group) => {
                    out.push_str(match group.delimiter() {
                        proc_macro2::Delimiter::Parenthesis => "(",
                        proc_macro2::Delimiter::Bracket => "[",
                        proc_macro2::Delimiter::Brace => "{",
                        proc_macro2::Delimiter::None => "",
                    });
                    flatten(group.stream(), out);
                    out.push_str(match group.delimiter() {
                        proc_macro2::Delimiter::Parenthesis => ")",
                        proc_macro2::Delimiter::Bracket => "]",
                        proc_macro2::Delimiter::Brace => "}",
                        proc_macro2::Delimiter::None => "",
                    });
                }
                proc_macro2::TokenTree::Ident(ident) => {
                    out.push_str(&ident.to_string());
                    out.push(' ');
                }
                proc_macro2::TokenTree::Punct(punct) => out.push(punct.as_char()),
                proc_macro2::TokenTree::Literal(literal) => out.push_str(&literal.to_string()),
            }
        }
    }
    let mut text = String::new();
    flatten(quote::ToTokens::to_token_stream(&ty), &mut text);
    text
}

fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// FNV-1a over `kind name` of every site: stored with each run to detect changed code.
fn fingerprint(sites: &[SiteEntry]) -> String {
    let bytes = sites.iter().flat_map(|site| {
        site.kind
            .bytes()
            .chain([b' '])
            .chain(site.name.bytes())
            .chain([b'\n'])
    });
    format!("{:016x}", fnv(bytes))
}
