//! Expansion snapshots: they stand in for `cargo expand` in CI.
//!
//! Each `tests/expand/<name>.rs` holds annotated fns; the test expands every `#[task]` and
//! `#[workflow]` in it, formats the result with prettyplease, and compares it with
//! `tests/expand/<name>.expanded.rs`. Regenerate with `HITL_BLESS=1 cargo test -p hitl-macros`.
//!
//! prettyplease leaves macro arguments as a run of tokens; the arguments of `join!` and
//! `try_join!` (which the macros rewrite) are formatted as the arguments of a call, as
//! `cargo expand` does with rustfmt.

use std::path::Path;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};

/// Marks a `join!`-like macro turned into a call for printing; `!` is put back afterwards.
const MACRO_MARK: &str = "__snapshot_macro";

/// Turns `join!(a, b)` into the call `join__snapshot_macro(a, b)` so prettyplease formats it.
struct JoinAsCall;

impl VisitMut for JoinAsCall {
    fn visit_expr_mut(&mut self, expr: &mut syn::Expr) {
        visit_mut::visit_expr_mut(self, expr);
        if let syn::Expr::Macro(mac) = expr
            && let Some(call) = join_call(&mac.mac)
        {
            *expr = call;
        }
    }
}

fn join_call(mac: &syn::Macro) -> Option<syn::Expr> {
    let last = mac.path.segments.last()?;
    if last.ident != "join" && last.ident != "try_join" {
        return None;
    }
    let parser = Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
    let mut args = syn::parse::Parser::parse2(parser, mac.tokens.clone()).ok()?;
    for arg in args.iter_mut() {
        JoinAsCall.visit_expr_mut(arg);
    }
    let mut path = mac.path.clone();
    let last = path.segments.last_mut()?;
    last.ident = quote::format_ident!("{}{MACRO_MARK}", last.ident);
    Some(syn::parse_quote!(#path(#args)))
}

fn expand_file(source: &str) -> String {
    let file: syn::File = syn::parse_str(source).expect("snapshot input parses");
    let mut items = Vec::new();
    for item in file.items {
        let syn::Item::Fn(mut function) = item else {
            items.push(item);
            continue;
        };
        let Some(index) = function
            .attrs
            .iter()
            .position(|attr| attr.path().is_ident("task") || attr.path().is_ident("workflow"))
        else {
            items.push(syn::Item::Fn(function));
            continue;
        };
        let attr = function.attrs.remove(index);
        let args = match &attr.meta {
            syn::Meta::List(list) => list.tokens.clone(),
            _ => TokenStream::new(),
        };
        let tokens = function.to_token_stream();
        let expanded = if attr.path().is_ident("task") {
            crate::expand_task(args, tokens)
        } else {
            crate::expand_workflow(args, tokens)
        };
        let expanded: syn::File = syn::parse2(expanded).expect("the expansion parses");
        items.extend(expanded.items);
    }
    let mut file = syn::File {
        shebang: None,
        attrs: file.attrs,
        items,
    };
    JoinAsCall.visit_file_mut(&mut file);
    prettyplease::unparse(&file).replace(&format!("{MACRO_MARK}("), "!(")
}

#[test]
fn expansions_match_their_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expand");
    let bless = std::env::var_os("HITL_BLESS").is_some();
    let mut checked = 0;
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter(|path| !path.to_string_lossy().ends_with(".expanded.rs"))
        .collect();
    inputs.sort();
    for input in inputs {
        let expanded = expand_file(&std::fs::read_to_string(&input).unwrap());
        let snapshot = input.with_extension("expanded.rs");
        if bless || !snapshot.exists() {
            std::fs::write(&snapshot, &expanded).unwrap();
        }
        let expected = std::fs::read_to_string(&snapshot).unwrap();
        assert_eq!(
            expanded,
            expected,
            "{} changed; review the diff and run `HITL_BLESS=1 cargo test -p hitl-macros`",
            input.display()
        );
        checked += 1;
    }
    assert!(checked >= 3, "expected snapshot inputs in {}", dir.display());
}
