//! Attribute arguments: `#[task(inject_context, name = "…", retries = n)]` and
//! `#[workflow(inject_context, name = "…")]`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{LitInt, LitStr, Token};

mod kw {
    syn::custom_keyword!(inject_context);
    syn::custom_keyword!(name);
    syn::custom_keyword!(retries);
    syn::custom_keyword!(version);
}

/// Arguments of `#[task]`.
#[derive(Default)]
pub(crate) struct TaskArgs {
    /// `inject_context`: the first parameter is `ctx: &TaskContext`, supplied by the engine.
    pub inject_context: Option<Span>,
    /// `name = "…"`: the step name (default: the fn's name).
    pub name: Option<LitStr>,
    /// `retries = n`: retry an `Err` this many times with backoff (and the key's span).
    pub retries: Option<(Span, LitInt)>,
}

/// Arguments of `#[workflow]`.
#[derive(Default)]
pub(crate) struct WorkflowArgs {
    /// `inject_context`.
    pub inject_context: Option<Span>,
    /// `name = "…"`: the registered name (default: the fn's name).
    pub name: Option<LitStr>,
    /// `version = n`: the workflow version, 1 or more (default 1).
    pub version: Option<LitInt>,
}

/// Sets an argument once; a second occurrence is an error on its key.
fn set_once<T>(slot: &mut Option<T>, value: T, span: Span, key: &str) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            span,
            format!("duplicate `{key}` argument; give it once"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses `key` or `key = value` items separated by commas, handing each to `item`.
fn parse_list(
    input: ParseStream<'_>,
    mut item: impl FnMut(ParseStream<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    while !input.is_empty() {
        item(input)?;
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

fn value<T: Parse>(input: ParseStream<'_>) -> syn::Result<T> {
    input.parse::<Token![=]>()?;
    input.parse()
}

impl Parse for TaskArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = TaskArgs::default();
        parse_list(input, |input| {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::inject_context) {
                let key: kw::inject_context = input.parse()?;
                set_once(&mut args.inject_context, key.span, key.span, "inject_context")
            } else if lookahead.peek(kw::name) {
                let key: kw::name = input.parse()?;
                let name: LitStr = value(input)?;
                if name.value().is_empty() || name.value().contains(['/', '#']) {
                    return Err(syn::Error::new(
                        name.span(),
                        "a task name must be non-empty and contain no `/` or `#`",
                    ));
                }
                set_once(&mut args.name, name, key.span, "name")
            } else if lookahead.peek(kw::retries) {
                let key: kw::retries = input.parse()?;
                let retries: LitInt = value(input)?;
                retries.base10_parse::<u32>()?;
                set_once(&mut args.retries, (key.span, retries), key.span, "retries")
            } else {
                Err(unknown(input, "`inject_context`, `name = \"…\"`, `retries = n`"))
            }
        })?;
        Ok(args)
    }
}

impl Parse for WorkflowArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = WorkflowArgs::default();
        parse_list(input, |input| {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::inject_context) {
                let key: kw::inject_context = input.parse()?;
                set_once(&mut args.inject_context, key.span, key.span, "inject_context")
            } else if lookahead.peek(kw::name) {
                let key: kw::name = input.parse()?;
                let name: LitStr = value(input)?;
                if name.value().trim().is_empty() {
                    return Err(syn::Error::new(name.span(), "a workflow name must not be empty"));
                }
                set_once(&mut args.name, name, key.span, "name")
            } else if lookahead.peek(kw::version) {
                let key: kw::version = input.parse()?;
                let version: LitInt = value(input).map_err(|error| {
                    syn::Error::new(error.span(), "`version` takes a whole number: `version = 2`")
                })?;
                match version.base10_parse::<u32>() {
                    Ok(0) | Err(_) => {
                        return Err(syn::Error::new(
                            version.span(),
                            "a workflow version is a whole number from 1 (the version of runs started before versions were given)",
                        ));
                    }
                    Ok(_) if !version.suffix().is_empty() => {
                        return Err(syn::Error::new(
                            version.span(),
                            "write the version without a suffix: `version = 2`",
                        ));
                    }
                    Ok(_) => {}
                }
                set_once(&mut args.version, version, key.span, "version")
            } else {
                Err(unknown(input, "`inject_context`, `name = \"…\"`, `version = n`"))
            }
        })?;
        Ok(args)
    }
}

fn unknown(input: ParseStream<'_>, accepted: &str) -> syn::Error {
    let span = input
        .cursor()
        .token_tree()
        .map_or(input.span(), |(tree, _)| tree.span());
    syn::Error::new(
        span,
        format!("unknown argument; accepted arguments are {accepted}"),
    )
}
