//! The typed view of an annotated fn, and every semantic check made on it.
//!
//! Each check fails with a `syn::Error` on the offending token that says how to fix it.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{
    Attribute, Block, FnArg, GenericArgument, Ident, Item, Pat, PathArguments, ReturnType, Signature, Type,
    Visibility,
};

/// Which macro is looking at the fn; used in messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Macro {
    Task,
    Workflow,
}

impl Macro {
    fn attr(self) -> &'static str {
        match self {
            Macro::Task => "`#[task]`",
            Macro::Workflow => "`#[workflow]`",
        }
    }
}

/// An annotated fn, checked.
pub(crate) struct FnItem {
    /// Outer attributes (`#[doc]`, `#[allow]`, …), re-emitted on the generated item.
    pub attrs: Vec<Attribute>,
    /// Inner attributes (`#![allow(..)]` opening the body), re-emitted inside its braces.
    pub inner_attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub sig: Signature,
    pub block: Box<Block>,
    /// The injected context parameter (`ctx: &TaskContext`), removed from `sig`.
    pub context: Option<ContextParam>,
    /// The remaining parameters.
    pub params: Vec<Param>,
    /// The declared return type (`()` when none).
    pub output: Type,
    /// The `Ok` type when the return type is a `Result`.
    pub ok: Option<Type>,
    /// The error type when the return type is spelled `Result<T, E>` (not for one-parameter
    /// aliases such as `anyhow::Result<T>`).
    pub err: Option<Type>,
}

pub(crate) struct ContextParam {
    pub pat: Box<Pat>,
    pub ty: Box<Type>,
}

pub(crate) struct Param {
    pub mutability: Option<syn::token::Mut>,
    pub ident: Ident,
    pub ty: Box<Type>,
}

impl FnItem {
    pub(crate) fn is_async(&self) -> bool {
        self.sig.asyncness.is_some()
    }

    /// The fn's name without `r#`, as it appears in strings.
    pub(crate) fn name(&self) -> String {
        let name = self.sig.ident.to_string();
        name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
    }
}

/// Parses the item and checks what both macros require.
pub(crate) fn parse(item: TokenStream, which: Macro, inject_context: Option<Span>) -> syn::Result<FnItem> {
    let item: Item = syn::parse2(item)?;
    let Item::Fn(function) = item else {
        return Err(syn::Error::new(
            item_span(&item),
            format!(
                "{} can only be applied to a fn; write `async fn name(..)`",
                which.attr()
            ),
        ));
    };
    let sig = function.sig;
    if which == Macro::Workflow && sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            "`#[workflow]` requires an async fn; add the `async` keyword",
        ));
    }
    if let (Some(span), None) = (inject_context, sig.asyncness) {
        return Err(syn::Error::new(
            span,
            "`inject_context` requires an async fn: a body that uses the context is replayed step by step; add the `async` keyword",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            format!(
                "{} fns cannot be generic: their inputs and outputs are stored as JSON under a fixed name; use concrete types",
                which.attr()
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(variadic.span(), "variadic fns are not supported"));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(syn::Error::new(
            unsafety.span,
            format!("{} fns cannot be `unsafe`", which.attr()),
        ));
    }

    let mut inputs = sig.inputs.iter().peekable();
    let mut context = None;
    if let Some(FnArg::Receiver(receiver)) = inputs.peek() {
        return Err(syn::Error::new(
            receiver.span(),
            format!(
                "{} fns cannot take `self`; write a free fn and pass the data it needs as arguments",
                which.attr()
            ),
        ));
    }
    if let Some(FnArg::Typed(first)) = inputs.peek() {
        let names_context = type_names_context(&first.ty);
        match inject_context {
            Some(_) if is_context_reference(&first.ty) => {
                context = Some(ContextParam {
                    pat: first.pat.clone(),
                    ty: first.ty.clone(),
                });
                inputs.next();
            }
            Some(_) if names_context || !mentions_context(&sig) => {
                return Err(syn::Error::new_spanned(
                    &first.ty,
                    "the first parameter of an `inject_context` fn is the injected context; it must have type `&TaskContext`",
                ));
            }
            None if names_context => {
                return Err(syn::Error::new_spanned(
                    &first.ty,
                    format!(
                        "a `TaskContext` parameter is supplied by the engine only with `inject_context`; write `{}`",
                        match which {
                            Macro::Task => "#[task(inject_context)]",
                            Macro::Workflow => "#[workflow(inject_context)]",
                        }
                    ),
                ));
            }
            _ => {}
        }
    }
    if let (Some(span), None) = (inject_context, &context)
        && !mentions_context(&sig)
    {
        return Err(syn::Error::new(
            span,
            "`inject_context` requires a first parameter `ctx: &TaskContext`; add it, or remove `inject_context`",
        ));
    }

    let mut params = Vec::new();
    for input in inputs {
        let FnArg::Typed(typed) = input else {
            return Err(syn::Error::new(
                input.span(),
                "`self` must be the first parameter",
            ));
        };
        let Pat::Ident(pat) = &*typed.pat else {
            return Err(syn::Error::new_spanned(
                &typed.pat,
                "parameters must be plain names (`name: Type`): they are hashed and stored by name",
            ));
        };
        if pat.by_ref.is_some() || pat.subpat.is_some() {
            return Err(syn::Error::new(
                pat.span(),
                "parameters must be plain names (`name: Type`)",
            ));
        }
        if type_names_context(&typed.ty) {
            return Err(syn::Error::new_spanned(
                &typed.ty,
                "the context must be the first parameter, with `inject_context`",
            ));
        }
        if let (Macro::Workflow, Type::Reference(reference)) = (which, &*typed.ty) {
            return Err(syn::Error::new_spanned(
                reference,
                "workflow arguments are stored as JSON with the run; take an owned type (`String`, not `&str`)",
            ));
        }
        params.push(Param {
            mutability: pat.mutability,
            ident: pat.ident.clone(),
            ty: typed.ty.clone(),
        });
    }

    let output = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let (ok, err) = result_types(&output);
    let (inner_attrs, attrs) = function
        .attrs
        .into_iter()
        .partition(|attr| matches!(attr.style, syn::AttrStyle::Inner(_)));
    Ok(FnItem {
        attrs,
        inner_attrs,
        vis: function.vis,
        sig,
        block: function.block,
        context,
        params,
        output,
        ok,
        err,
    })
}

/// Whether any parameter's type names `TaskContext`.
fn mentions_context(sig: &Signature) -> bool {
    sig.inputs
        .iter()
        .any(|input| matches!(input, FnArg::Typed(typed) if type_names_context(&typed.ty)))
}

fn item_span(item: &Item) -> Span {
    match item {
        Item::Struct(item) => item.struct_token.span,
        Item::Enum(item) => item.enum_token.span,
        Item::Impl(item) => item.impl_token.span,
        Item::Mod(item) => item.mod_token.span,
        Item::Trait(item) => item.trait_token.span,
        Item::Const(item) => item.const_token.span,
        Item::Static(item) => item.static_token.span,
        Item::Type(item) => item.type_token.span,
        Item::Use(item) => item.use_token.span,
        other => other.span(),
    }
}

/// `&TaskContext` (any path ending in `TaskContext`), the only accepted context type.
fn is_context_reference(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) => reference.mutability.is_none() && is_context_path(&reference.elem),
        _ => false,
    }
}

/// Whether the type mentions `TaskContext` at its top (by value, by reference, boxed…).
fn type_names_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) => type_names_context(&reference.elem),
        Type::Paren(paren) => type_names_context(&paren.elem),
        _ => is_context_path(ty),
    }
}

fn is_context_path(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path.path.segments.last().is_some_and(|segment| {
            segment.ident == "TaskContext"
                || matches!(&segment.arguments, PathArguments::AngleBracketed(args)
                    if args.args.iter().any(|arg| matches!(arg, GenericArgument::Type(inner) if is_context_path(inner))))
        }),
        _ => false,
    }
}

/// The `T` (and, when spelled, the `E`) of a return type spelled `…Result<T, …>`; aliases
/// such as `io::Result<T>` and `anyhow::Result<T>` count too. A return type is fallible by
/// its spelling.
fn result_types(ty: &Type) -> (Option<Type>, Option<Type>) {
    let Type::Path(path) = ty else { return (None, None) };
    let Some(segment) = path.path.segments.last() else {
        return (None, None);
    };
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return (None, None);
    };
    if segment.ident != "Result" {
        return (None, None);
    }
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    });
    (types.next(), types.next())
}
