//! Rewriting an orchestration body into journaled steps.
//!
//! * `expr.await` becomes a step (see [`await_step`]): a task call or a context call
//!   journals itself and is left as it is; any other future is journaled as one step.
//! * `async { … }` gets its own child scope, fixed where the block is created.
//! * The arguments of `join!` / `try_join!` / `select!` (tokio's or futures') are parsed as
//!   expressions and rewritten like the rest of the body; other macros are left alone.
//!
//! Nested items (fns, impls) are not orchestration code and are left untouched.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Item, Macro, Pat, Stmt, Token};

/// One step site found in a body, for the workflow's site table.
pub(crate) struct SiteEntry {
    /// `await` or `async`.
    pub kind: &'static str,
    /// The step (or scope) name.
    pub name: String,
    /// Span of the site, for `line!()`.
    pub span: Span,
}

/// Rewrites `block` in place and returns its step sites in source order.
pub(crate) fn rewrite(block: &mut Block) -> Vec<SiteEntry> {
    let mut rewriter = Rewriter::default();
    rewriter.visit_block_mut(block);
    rewriter.sites
}

#[derive(Default)]
struct Rewriter {
    sites: Vec<SiteEntry>,
    async_blocks: usize,
}

impl VisitMut for Rewriter {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Await(awaited) => {
                self.visit_expr_mut(&mut awaited.base);
                let name = step_name(&awaited.base);
                self.sites.push(SiteEntry {
                    kind: "await",
                    name: name.clone(),
                    span: awaited.base.span(),
                });
                *expr = await_step(&awaited.base, &name);
            }
            Expr::Async(block) => {
                visit_mut::visit_expr_async_mut(self, block);
                let name = format!("async{}", self.async_blocks);
                self.async_blocks += 1;
                self.sites.push(SiteEntry {
                    kind: "async",
                    name: name.clone(),
                    span: block.async_token.span,
                });
                let span = block.async_token.span;
                *expr = syn::parse_quote_spanned! {span=>
                    ::hitl::__private::scope(#name).run(#block)
                };
            }
            Expr::Macro(mac) => self.visit_join_macro(&mut mac.mac),
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        match stmt {
            Stmt::Macro(mac) => self.visit_join_macro(&mut mac.mac),
            // `deploy(plan);` or `ctx.sleep(d);` without `.await` never runs: a deploy or a
            // durable delay would silently not happen. The future's `must_use` warning
            // becomes an error on that statement (unless the user set a level there).
            Stmt::Expr(expr @ (Expr::Call(_) | Expr::MethodCall(_)), Some(_)) => {
                visit_mut::visit_expr_mut(self, expr);
                let attrs = match expr {
                    Expr::Call(call) => &mut call.attrs,
                    Expr::MethodCall(call) => &mut call.attrs,
                    _ => return,
                };
                if attrs.is_empty() {
                    let span = expr.span();
                    let attrs = match expr {
                        Expr::Call(call) => &mut call.attrs,
                        Expr::MethodCall(call) => &mut call.attrs,
                        _ => return,
                    };
                    attrs.push(syn::parse_quote_spanned!(span=> #[deny(unused_must_use)]));
                }
            }
            _ => visit_mut::visit_stmt_mut(self, stmt),
        }
    }

    fn visit_block_mut(&mut self, block: &mut Block) {
        visit_mut::visit_block_mut(self, block);
        splice_steps(block);
    }

    fn visit_item_mut(&mut self, _item: &mut Item) {}
}

/// Lifts the two `let`s of a step that is a whole `let` initializer, statement or tail
/// (possibly under `?`) into the enclosing block, so `let plan = f(x).await;` reads as three
/// statements instead of a nested block. Evaluation order and drops are unchanged: the
/// step's `let`s ran first in its block too, and their names are hygienic.
fn splice_steps(block: &mut Block) {
    for mut stmt in std::mem::take(&mut block.stmts) {
        let target = match &mut stmt {
            Stmt::Local(local) => local.init.as_mut().map(|init| &mut *init.expr),
            Stmt::Expr(expr, _) => Some(expr),
            _ => None,
        };
        if let Some(expr) = target {
            let slot = match expr {
                Expr::Try(try_expr) if try_expr.attrs.is_empty() => &mut *try_expr.expr,
                other => other,
            };
            if let Some(lets) = take_step(slot) {
                block.stmts.extend(lets);
            }
        }
        block.stmts.push(stmt);
    }
}

/// If `expr` is a step block made by [`await_step`], replaces it with its final
/// `.step(..).await` and returns its two `let`s.
fn take_step(expr: &mut Expr) -> Option<Vec<Stmt>> {
    let Expr::Block(step) = expr else { return None };
    let is_step = step.attrs.is_empty()
        && step.label.is_none()
        && step.block.stmts.len() == 3
        && matches!(&step.block.stmts[0], Stmt::Local(local)
            if matches!(&local.pat, Pat::Ident(pat) if pat.ident == "__hitl_step"));
    if !is_step {
        return None;
    }
    let mut stmts = std::mem::take(&mut step.block.stmts);
    let Some(Stmt::Expr(tail, None)) = stmts.pop() else {
        return None;
    };
    *expr = tail;
    Some(stmts)
}

impl Rewriter {
    /// Rewrites the arguments of `join!`, `try_join!` and `select!`; leaves other macros.
    fn visit_join_macro(&mut self, mac: &mut Macro) {
        let Some(last) = mac.path.segments.last() else {
            return;
        };
        let rewritten = match last.ident.to_string().as_str() {
            "join" | "try_join" => JoinArgs::parse.parse2(mac.tokens.clone()).ok().map(|mut args| {
                for expr in args.exprs.iter_mut() {
                    self.visit_expr_mut(expr);
                }
                args.into_token_stream()
            }),
            "select" => SelectArgs::parse.parse2(mac.tokens.clone()).ok().map(|mut args| {
                for branch in &mut args.branches {
                    self.visit_expr_mut(&mut branch.future);
                    if let Some(guard) = &mut branch.guard {
                        self.visit_expr_mut(guard);
                    }
                    self.visit_expr_mut(&mut branch.handler);
                }
                if let Some(otherwise) = &mut args.otherwise {
                    self.visit_expr_mut(otherwise);
                }
                args.into_token_stream()
            }),
            _ => None,
        };
        if let Some(tokens) = rewritten {
            mac.tokens = tokens;
        }
    }
}

/// The step replacing `base.await`.
///
/// ```text
/// // Input:  fetch(url).await
/// // Output:
/// {
///     let __hitl_step = fetch(url);
///     let __hitl_kind = ::hitl::__private::probe(&__hitl_step).kind();
///     __hitl_kind.step("fetch(url)", __hitl_step).await
/// }
/// ```
///
/// Method resolution on `probe(..)`, a `&&&Probe<F>`, picks the first kind that applies
/// (autoref specialization; the traits are in scope through `use ::hitl::__private::steps::*`
/// at the top of the body): a future that journals itself (task and context calls) is
/// awaited as it is; one returning `Result` is journaled when `Ok`; anything else is
/// journaled as it is. `step` is `#[track_caller]` (the step records this line) and carries
/// the span of the user's expression, so "cannot be journaled" errors point at it.
fn await_step(base: &Expr, name: &str) -> Expr {
    let user_span = base.span();
    let local = Span::mixed_site().located_at(user_span);
    let future = quote_spanned!(local=> __hitl_step);
    let kind = quote_spanned!(local=> __hitl_kind);
    syn::parse_quote_spanned! {user_span=>
        {
            let #future = #base;
            let #kind = ::hitl::__private::probe(&#future).kind();
            #kind.step(#name, #future).await
        }
    }
}

/// The step name of an awaited expression: its source text, normalized (`fetch(url)`).
pub(crate) fn step_name(expr: &Expr) -> String {
    let text = expr.to_token_stream().to_string();
    let mut name = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            let previous = name.chars().last();
            let next = chars.peek().copied();
            let glue = |c: Option<char>| {
                matches!(
                    c,
                    Some('(' | ')' | '[' | ']' | '.' | ',' | ':' | '&' | '!' | '?' | '<' | '>')
                )
            };
            if glue(previous) || glue(next) {
                if previous == Some(',') {
                    name.push(' ');
                }
                continue;
            }
        }
        name.push(match c {
            '/' => '∕',
            '#' => '♯',
            c => c,
        });
    }
    if name.chars().count() > 80 {
        name = name.chars().take(79).collect::<String>() + "…";
    }
    name
}

/// `join!` / `try_join!` arguments: `[biased;] expr, expr, …`.
struct JoinArgs {
    biased: Option<TokenStream>,
    exprs: Punctuated<Expr, Token![,]>,
}

impl Parse for JoinArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let biased = parse_biased(input)?;
        Ok(JoinArgs {
            biased,
            exprs: Punctuated::parse_terminated(input)?,
        })
    }
}

impl ToTokens for JoinArgs {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.biased.to_tokens(tokens);
        self.exprs.to_tokens(tokens);
    }
}

fn parse_biased(input: ParseStream<'_>) -> syn::Result<Option<TokenStream>> {
    if input.peek(syn::Ident) && input.peek2(Token![;]) {
        let fork = input.fork();
        let ident: syn::Ident = fork.parse()?;
        if ident == "biased" {
            let ident: syn::Ident = input.parse()?;
            let semi: Token![;] = input.parse()?;
            return Ok(Some(quote!(#ident #semi)));
        }
    }
    Ok(None)
}

/// `select!` arguments: `[biased;] pattern = future [, if guard] => handler, … [else => e]`.
struct SelectArgs {
    biased: Option<TokenStream>,
    branches: Vec<SelectBranch>,
    otherwise: Option<Expr>,
}

struct SelectBranch {
    pat: Pat,
    future: Expr,
    guard: Option<Expr>,
    handler: Expr,
}

impl Parse for SelectArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let biased = parse_biased(input)?;
        let mut branches = Vec::new();
        let mut otherwise = None;
        while !input.is_empty() {
            if input.peek(Token![else]) {
                input.parse::<Token![else]>()?;
                input.parse::<Token![=>]>()?;
                otherwise = Some(input.parse()?);
            } else {
                let pat = Pat::parse_single(input)?;
                input.parse::<Token![=]>()?;
                let future = Expr::parse_without_eager_brace(input)?;
                let guard = if input.peek(Token![,]) && input.peek2(Token![if]) {
                    input.parse::<Token![,]>()?;
                    input.parse::<Token![if]>()?;
                    Some(input.parse()?)
                } else {
                    None
                };
                input.parse::<Token![=>]>()?;
                let handler = input.parse()?;
                branches.push(SelectBranch {
                    pat,
                    future,
                    guard,
                    handler,
                });
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(SelectArgs {
            biased,
            branches,
            otherwise,
        })
    }
}

impl ToTokens for SelectArgs {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.biased.to_tokens(tokens);
        for SelectBranch {
            pat,
            future,
            guard,
            handler,
        } in &self.branches
        {
            let guard = guard.as_ref().map(|guard| quote!(, if #guard));
            tokens.extend(quote!(#pat = #future #guard => #handler,));
        }
        if let Some(otherwise) = &self.otherwise {
            tokens.extend(quote!(else => #otherwise,));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_normalized_source() {
        let name = |tokens: TokenStream| step_name(&syn::parse2(tokens).unwrap());
        assert_eq!(name(quote!(fetch(url))), "fetch(url)");
        assert_eq!(name(quote!(client.get(&url).send())), "client.get(&url).send()");
        assert_eq!(name(quote!(reqwest::get(a, b))), "reqwest::get(a, b)");
    }

    #[test]
    fn join_and_select_arguments_are_rewritten() {
        let mut block: Block = syn::parse_quote!({
            tokio::join!(async { a().await }, b());
            tokio::select! { x = c() => x, else => 0 };
            let v = inner.await;
        });
        let sites = rewrite(&mut block);
        let kinds: Vec<_> = sites.iter().map(|s| (s.kind, s.name.as_str())).collect();
        assert_eq!(kinds, [("await", "a()"), ("async", "async0"), ("await", "inner")]);
        // `let v = inner.await;` is spliced: its two lets, then `let v = kind.step(..).await`.
        assert_eq!(block.stmts.len(), 5);
        assert!(matches!(&block.stmts[4], Stmt::Local(_)));
        let text = block.to_token_stream().to_string();
        assert!(text.contains("scope (\"async0\") . run"), "{text}");
        assert!(
            text.contains("select ! { x = c () => x , else => 0 , }"),
            "{text}"
        );
    }
}
