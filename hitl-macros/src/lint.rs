//! The determinism lint for orchestration bodies.
//!
//! Code between steps runs again on every replay, so it must compute the same thing each
//! time. This lint rejects the common literal forms of nondeterminism, naming the replay-safe
//! replacement. It is a lint over tokens, not a proof: a `use` alias or a helper fn escapes
//! it. Activity bodies (plain `#[task]`) are not linted: they run once and are journaled.
//!
//! | written                                   | use instead                          |
//! |-------------------------------------------|--------------------------------------|
//! | `SystemTime::now`, `Instant::now`         | `ctx.now()`                          |
//! | `thread::sleep`, `tokio::time::sleep`     | `ctx.sleep(d).await`                 |
//! | `tokio::time::sleep_until`                | `ctx.sleep(deadline - ctx.now())`    |
//! | `tokio::time::timeout`                    | `select!` the step against `ctx.sleep(d)` |
//! | `tokio::time::interval`                   | `ctx.sleep(period).await` in a loop  |
//! | `rand::…`, `thread_rng`                   | `ctx.random()`                       |
//! | `Uuid::new_v4`                            | `ctx.uuid()`                         |
//! | `tokio::spawn`, `thread::spawn`           | `tokio::join!` of task calls         |
//! | `std::fs::…`, `std::net::…` (and tokio's) | a plain `#[task]`                    |
//! | `std::env::var`, `std::process::Command`  | a workflow argument, or a plain `#[task]` |

use proc_macro2::{Ident, TokenStream, TokenTree};

/// Every forbidden path in `tokens`, as one combined error (or `Ok`).
pub(crate) fn check(tokens: TokenStream) -> syn::Result<()> {
    let mut errors: Option<syn::Error> = None;
    let mut report = |path: &[Ident], message: String| {
        // The whole path is underlined, not only its first segment.
        let tokens: TokenStream = path
            .iter()
            .enumerate()
            .flat_map(|(index, ident)| {
                let separator = (index > 0).then(|| quote::quote!(::));
                separator
                    .into_iter()
                    .flatten()
                    .chain(std::iter::once(TokenTree::Ident(ident.clone())))
            })
            .collect();
        let error = syn::Error::new_spanned(tokens, message);
        match &mut errors {
            Some(errors) => errors.combine(error),
            None => errors = Some(error),
        }
    };
    for path in paths(tokens) {
        if let Some(message) = forbidden(&path) {
            report(&path, message);
        }
    }
    errors.map_or(Ok(()), Err)
}

/// The `a::b::c` paths in a token stream, nested groups included (so macro arguments too).
fn paths(tokens: TokenStream) -> Vec<Vec<Ident>> {
    let mut found = Vec::new();
    collect(tokens, &mut found);
    found
}

fn collect(tokens: TokenStream, found: &mut Vec<Vec<Ident>>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut index = 0;
    while index < trees.len() {
        match &trees[index] {
            TokenTree::Group(group) => {
                collect(group.stream(), found);
                index += 1;
            }
            TokenTree::Ident(first) => {
                let mut path = vec![first.clone()];
                index += 1;
                while let (
                    Some(TokenTree::Punct(a)),
                    Some(TokenTree::Punct(b)),
                    Some(TokenTree::Ident(next)),
                ) = (trees.get(index), trees.get(index + 1), trees.get(index + 2))
                {
                    if a.as_char() != ':' || b.as_char() != ':' {
                        break;
                    }
                    path.push(next.clone());
                    index += 3;
                }
                found.push(path);
            }
            _ => index += 1,
        }
    }
}

fn forbidden(path: &[Ident]) -> Option<String> {
    let names: Vec<String> = path.iter().map(|ident| ident.to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let has = |pair: [&str; 2]| names.windows(2).any(|window| window == pair);
    let replay = "orchestration bodies run again on replay and must be deterministic";
    if has(["SystemTime", "now"]) || has(["Instant", "now"]) || has(["Utc", "now"]) || has(["Local", "now"]) {
        return Some(format!(
            "`{}` in an orchestration body: {replay}; use `ctx.now()` (journaled), or read the clock inside a plain `#[task]`",
            names.join("::")
        ));
    }
    if has(["thread", "sleep"]) || has(["time", "sleep"]) {
        return Some(format!(
            "`{}` in an orchestration body: {replay}; use `ctx.sleep(duration).await`, a durable timer that survives restarts",
            names.join("::")
        ));
    }
    if has(["time", "sleep_until"]) {
        return Some(format!(
            "`{}` in an orchestration body: {replay}; use `ctx.sleep(deadline.duration_since(ctx.now()).unwrap_or_default()).await`, a durable timer",
            names.join("::")
        ));
    }
    if has(["time", "timeout"]) {
        return Some(format!(
            "`{}` in an orchestration body: {replay}, and its deadline is lost on a restart; race the step against a durable timer: `tokio::select! {{ v = step() => Some(v), _ = ctx.sleep(d) => None }}`",
            names.join("::")
        ));
    }
    if has(["time", "interval"]) {
        return Some(format!(
            "`{}` in an orchestration body: {replay}; call `ctx.sleep(period).await` in a loop, a durable timer that survives restarts",
            names.join("::")
        ));
    }
    if has(["env", "var"]) || has(["env", "var_os"]) || has(["env", "vars"]) {
        return Some(format!(
            "`{}` in an orchestration body: {replay}, and the environment may differ when the run resumes; pass the value as a workflow argument, or read it inside a plain `#[task]`",
            names.join("::")
        ));
    }
    if has(["process", "Command"]) {
        return Some(format!(
            "`{}` in an orchestration body: running a program is a side effect that would repeat on replay; move it into a plain `#[task]`, whose output is journaled",
            names.join("::")
        ));
    }
    if names.first() == Some(&"rand") || names.contains(&"thread_rng") {
        return Some(format!(
            "`{}` in an orchestration body: {replay}; use `ctx.random()` (journaled)",
            names.join("::")
        ));
    }
    if has(["Uuid", "new_v4"]) || has(["Uuid", "now_v7"]) {
        return Some(format!(
            "`{}` in an orchestration body: {replay}; use `ctx.uuid()` (journaled)",
            names.join("::")
        ));
    }
    if has(["tokio", "spawn"])
        || has(["task", "spawn"])
        || has(["task", "spawn_blocking"])
        || has(["thread", "spawn"])
    {
        return Some(format!(
            "`{}` in an orchestration body: the spawned task leaves the run and is not journaled; run branches with `tokio::join!` of task calls, or move the work into a plain `#[task]`",
            names.join("::")
        ));
    }
    if matches!(names.as_slice(), ["std" | "tokio", "fs" | "net", ..]) {
        return Some(format!(
            "`{}` in an orchestration body: I/O is a side effect that would repeat on replay; move it into a plain `#[task]`, whose output is journaled",
            names.join("::")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::check;

    fn message(tokens: proc_macro2::TokenStream) -> String {
        check(tokens).unwrap_err().to_string()
    }

    #[test]
    fn each_forbidden_form_names_its_replacement() {
        assert!(
            message(quote!({
                let t = std::time::SystemTime::now();
            }))
            .contains("ctx.now()")
        );
        assert!(message(quote!({ Instant::now() })).contains("ctx.now()"));
        assert!(message(quote!({ std::thread::sleep(d) })).contains("ctx.sleep"));
        assert!(message(quote!({ tokio::time::sleep(d).await })).contains("ctx.sleep"));
        assert!(message(quote!({ rand::random::<u8>() })).contains("ctx.random()"));
        assert!(
            message(quote!({
                let mut r = thread_rng();
            }))
            .contains("ctx.random()")
        );
        assert!(message(quote!({ uuid::Uuid::new_v4() })).contains("ctx.uuid()"));
        assert!(message(quote!({ tokio::spawn(async {}) })).contains("tokio::join!"));
        assert!(message(quote!({ std::fs::read("x") })).contains("plain `#[task]`"));
        assert!(message(quote!({ std::net::TcpStream::connect("x") })).contains("plain `#[task]`"));
        assert!(message(quote!({ format!("{:?}", SystemTime::now()) })).contains("ctx.now()"));
        assert!(message(quote!({ std::thread::spawn(|| ()) })).contains("tokio::join!"));
        assert!(message(quote!({ tokio::time::timeout(d, f).await })).contains("ctx.sleep(d)"));
        assert!(message(quote!({ tokio::time::interval(d) })).contains("ctx.sleep(period)"));
        assert!(message(quote!({ tokio::time::sleep_until(t).await })).contains("ctx.sleep("));
        assert!(message(quote!({ std::env::var("X") })).contains("workflow argument"));
        assert!(message(quote!({ std::process::Command::new("ls") })).contains("plain `#[task]`"));
    }

    #[test]
    fn ordinary_code_passes() {
        assert!(
            check(quote!({
                let plan = build_plan(service).await?;
                ctx.sleep(d).await;
                now();
            }))
            .is_ok()
        );
        assert!(
            check(quote!({
                let s = my::sleep_counter;
                let r = random_name();
            }))
            .is_ok()
        );
    }
}
