//! The layering rules of `hitl/src`, checked on the source text (ARCHITECTURE.md §1.1).
//!
//! **The surfaces rule**: `server/` and `cli/` use only the public API, plus `sign`. Every
//! crate path a file under `hitl/src/server/` or `hitl/src/cli/` names — `use crate::…`,
//! `crate::x::y(…)` inline, `super::…` that climbs out of the surface, `hitl::…` in the CLI
//! (which is compiled into the `hitl` binary, a separate crate) — must be one an external
//! crate could write as `hitl::…`: each segment a `pub` item (not `pub(crate)`, not
//! `#[doc(hidden)]`) of a public module, found by reading `lib.rs` and the files of its
//! `pub mod`s. The surface's own modules and `crate::sign` are allowed too.
//!
//! **L0**: `sign.rs` imports nothing of the crate.
//!
//! **No cycles**: the graph between top-level modules of `hitl/src` (an arrow A → B when a
//! file of A names `crate::B`, also inside a string such as `#[serde(with = "crate::b")]`)
//! has no cycle, and the never-rules of the layers written in `lib.rs` hold: `model` names
//! only `clock`, `time_format` and `util`; `store` never names `journal`, `engine`,
//! `feedback`, `notify` or `context`; `journal` never names `engine`; nothing names
//! `__private`; only `engine/builder.rs` names `store::sled`.
//!
//! What this cannot see: methods and fields reached through a value (`engine.some_method()`),
//! which only the compiler checks once the surfaces move out of the crate. To add a rule,
//! add a [`Rule`] to [`RULES`] (or a test beside these) using [`paths_in`] and [`Api`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One lexical token; comments and the insides of char literals are dropped.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Colons,
    Punct(char),
    Str(String),
}

/// `(token, line)` pairs of a Rust source file.
fn lex(source: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let (mut at, mut line) = (0, 1);
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        if c == '\n' {
            line += 1;
            at += 1;
        } else if c.is_whitespace() {
            at += 1;
        } else if c == '/' && next == Some('/') {
            while at < chars.len() && chars[at] != '\n' {
                at += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while at < chars.len() {
                if chars[at] == '/' && chars.get(at + 1) == Some(&'*') {
                    depth += 1;
                    at += 2;
                } else if chars[at] == '*' && chars.get(at + 1) == Some(&'/') {
                    depth -= 1;
                    at += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[at] == '\n');
                    at += 1;
                }
            }
        } else if c == '"' || ((c == 'r' || c == 'b') && raw_or_byte_string_at(&chars, at)) {
            let start_line = line;
            // `b` / `r` / `br` prefix, then `#`s for a raw string.
            let mut raw = false;
            while chars[at] != '"' && chars[at] != '#' {
                raw |= chars[at] == 'r';
                at += 1;
            }
            let mut hashes = 0;
            while chars[at] == '#' {
                hashes += 1;
                at += 1;
            }
            at += 1; // the opening quote
            let mut text = String::new();
            while let Some(&c) = chars.get(at) {
                if c == '\\' && !raw {
                    text.push(c);
                    text.extend(chars.get(at + 1));
                    at += 2;
                    continue;
                }
                if c == '"' && (0..hashes).all(|k| chars.get(at + 1 + k) == Some(&'#')) {
                    at += 1 + hashes;
                    break;
                }
                line += usize::from(c == '\n');
                text.push(c);
                at += 1;
            }
            tokens.push((Tok::Str(text), start_line));
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1b}') or a lifetime ('a).
            if next == Some('\\') {
                at += 3; // the quote, the backslash and the escaped character
                while at < chars.len() && chars[at] != '\'' {
                    at += 1;
                }
                at += 1;
            } else if chars.get(at + 2) == Some(&'\'') {
                at += 3;
            } else {
                at += 1;
            }
        } else if ident_char(c) {
            let start = at;
            while at < chars.len() && ident_char(chars[at]) {
                at += 1;
            }
            tokens.push((Tok::Ident(chars[start..at].iter().collect()), line));
        } else if c == ':' && next == Some(':') {
            tokens.push((Tok::Colons, line));
            at += 2;
        } else {
            tokens.push((Tok::Punct(c), line));
            at += 1;
        }
    }
    tokens
}

/// Whether a `b"…"`, `r"…"`, `r#"…"#` or `br"…"` literal starts at `at` (and not an
/// identifier that merely begins with `b` or `r`).
fn raw_or_byte_string_at(chars: &[char], at: usize) -> bool {
    if at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_') {
        return false;
    }
    let mut k = at;
    if chars[k] == 'b' {
        k += 1;
    }
    if chars.get(k) == Some(&'r') {
        k += 1;
        while chars.get(k) == Some(&'#') {
            k += 1;
        }
    }
    k > at && chars.get(k) == Some(&'"')
}

fn ident(tok: Option<&(Tok, usize)>) -> Option<&str> {
    match tok {
        Some((Tok::Ident(name), _)) => Some(name),
        _ => None,
    }
}

fn is_punct(tok: Option<&(Tok, usize)>, c: char) -> bool {
    matches!(tok, Some((Tok::Punct(p), _)) if *p == c)
}

/// The index after the bracket group opening at `open` (`{…}`, `[…]` or `(…)`).
fn skip_group(tokens: &[(Tok, usize)], open: usize) -> usize {
    let mut depth = 0i32;
    let mut at = open;
    while at < tokens.len() {
        match tokens[at].0 {
            Tok::Punct('{' | '[' | '(') => depth += 1,
            Tok::Punct('}' | ']' | ')') => {
                depth -= 1;
                if depth == 0 {
                    return at + 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    at
}

/// One leaf of a use tree (or an inline path): its full path, and its `as` name if any.
struct UsePath {
    path: Vec<String>,
    alias: Option<String>,
}

/// Parses a use tree at `at` (just after a `::`, or at the start of a `use`), pushing each
/// full path (`prefix` + its segments; a glob ends in `*`). Also reads an inline path
/// (`crate::sign::hex(…)`, `crate::x::<T>`). Returns the index after it.
fn use_tree(tokens: &[(Tok, usize)], mut at: usize, prefix: &[String], out: &mut Vec<UsePath>) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match tokens.get(at) {
            Some((Tok::Punct('{'), _)) => {
                at += 1;
                while at < tokens.len() && !is_punct(tokens.get(at), '}') {
                    let before = at;
                    at = use_tree(tokens, at, &path, out);
                    if is_punct(tokens.get(at), ',') {
                        at += 1;
                    }
                    at = at.max(before + 1);
                }
                return at + 1;
            }
            Some((Tok::Punct('*'), _)) => {
                path.push("*".to_owned());
                out.push(UsePath { path, alias: None });
                return at + 1;
            }
            // `{self, …}`: the module itself (a leading `self::` is a root, pushed as a segment).
            Some((Tok::Ident(name), _))
                if name == "self"
                    && path.len() == prefix.len()
                    && !path.is_empty()
                    && tokens.get(at + 1).map(|t| &t.0) != Some(&Tok::Colons) =>
            {
                return leaf(tokens, at + 1, path, out);
            }
            Some((Tok::Ident(name), _)) => {
                path.push(name.clone());
                at += 1;
            }
            _ => {
                if path.len() > prefix.len() {
                    out.push(UsePath { path, alias: None });
                }
                return at;
            }
        }
        if tokens.get(at).map(|t| &t.0) == Some(&Tok::Colons) {
            at += 1;
        } else {
            return leaf(tokens, at, path, out);
        }
    }
}

/// Pushes `path`, with the alias of an `as name` at `at`; returns the index after it.
fn leaf(tokens: &[(Tok, usize)], at: usize, path: Vec<String>, out: &mut Vec<UsePath>) -> usize {
    if ident(tokens.get(at)) == Some("as") {
        let alias = ident(tokens.get(at + 1)).map(str::to_owned);
        out.push(UsePath { path, alias });
        at + 2
    } else {
        out.push(UsePath { path, alias: None });
        at
    }
}

/// A path a file names, made absolute: `["crate", …]` or `["hitl", …]`.
#[derive(Debug, Clone, PartialEq)]
struct Named {
    path: Vec<String>,
    line: usize,
}

/// Every path rooted at `crate`, `super`, `self` or `hitl` that a file names, in `use`
/// trees and inline, resolved against `module` (the file's module path below its crate
/// root, e.g. `["server", "views", "request"]`; inline `mod name { … }` blocks are
/// followed). Paths that stay inside the file's own module (`self::x`, a child's name) and
/// std/dependency paths are left out except when they leave through `super`.
fn paths_in(source: &str, module: &[&str]) -> Vec<Named> {
    let tokens = lex(source);
    let mut named = Vec::new();
    // The module path at each brace depth where an inline module opened.
    let mut modules: Vec<Vec<String>> = vec![module.iter().map(|s| (*s).to_owned()).collect()];
    let mut opened_at: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut at = 0;
    while at < tokens.len() {
        let (tok, line) = &tokens[at];
        match tok {
            Tok::Punct('{') => {
                depth += 1;
                at += 1;
                continue;
            }
            Tok::Punct('}') => {
                if opened_at.last() == Some(&depth) {
                    opened_at.pop();
                    modules.pop();
                }
                depth = depth.saturating_sub(1);
                at += 1;
                continue;
            }
            Tok::Ident(word) if word == "mod" => {
                if let (Some(name), true) = (ident(tokens.get(at + 1)), is_punct(tokens.get(at + 2), '{')) {
                    let mut inner = modules.last().cloned().unwrap_or_default();
                    inner.push(name.to_owned());
                    modules.push(inner);
                    depth += 1;
                    opened_at.push(depth);
                    at += 3;
                    continue;
                }
            }
            Tok::Ident(root) if ["crate", "super", "self", "hitl"].contains(&root.as_str()) => {
                let after_colons = at > 0 && tokens[at - 1].0 == Tok::Colons;
                let continues = tokens.get(at + 1).map(|t| &t.0) == Some(&Tok::Colons);
                // `::hitl::x` is a root; `a::crate` is not a path we care about.
                let leading = after_colons && (at < 2 || !matches!(tokens[at - 2].0, Tok::Ident(_)));
                if continues && (!after_colons || leading) {
                    let mut raw = Vec::new();
                    let end = use_tree(&tokens, at, &[], &mut raw);
                    let here = modules.last().cloned().unwrap_or_default();
                    for UsePath { path, .. } in raw {
                        if let Some(path) = absolute(&path, &here) {
                            named.push(Named { path, line: *line });
                        }
                    }
                    at = end.max(at + 1);
                    continue;
                }
            }
            _ => {}
        }
        at += 1;
    }
    named
}

/// `path` (rooted at `crate`, `hitl`, `self` or `super`) as an absolute path, or `None`
/// when it stays inside `module` (then it is the module's own business).
fn absolute(path: &[String], module: &[String]) -> Option<Vec<String>> {
    match path.first().map(String::as_str) {
        Some("crate" | "hitl") => Some(path.to_vec()),
        Some("self") => None,
        Some("super") => {
            let ups = path.iter().take_while(|segment| *segment == "super").count();
            if ups < module.len() {
                // Still inside the file's top-level module: e.g. `super::auth` in
                // `server/pages.rs` is `crate::server::auth`.
                let mut full = vec!["crate".to_owned()];
                full.extend(module[..module.len() - ups].iter().cloned());
                full.extend(path[ups..].iter().cloned());
                Some(full)
            } else {
                let mut full = vec!["crate".to_owned()];
                full.extend(path[ups..].iter().cloned());
                Some(full)
            }
        }
        _ => None,
    }
}

/// The public API of a crate as its source declares it: each public module's `pub` items.
#[derive(Debug, Default)]
struct Api {
    items: HashMap<String, Entry>,
    /// A `pub use …::*` makes every name possible.
    open: bool,
}

#[derive(Debug)]
enum Entry {
    Module(Api),
    /// A type, function, constant, macro or re-export: what follows it (`Engine::now`,
    /// `RunStatus::Completed`) is an associated item the text cannot check.
    Item,
}

impl Api {
    /// The API of the crate whose root file is `root`; `read` gives a file's text (`None`:
    /// no such file).
    fn of(root: &Path, read: &dyn Fn(&Path) -> Option<String>) -> Api {
        let source = read(root).unwrap_or_else(|| panic!("cannot read {}", root.display()));
        let tokens = lex(&source);
        let dir = root.parent().unwrap_or(Path::new("")).to_path_buf();
        Api::of_tokens(&tokens, &dir, root, read)
    }

    /// `dir`: where the children of this module live (`foo/` for `foo.rs` and `foo/mod.rs`).
    fn of_tokens(
        tokens: &[(Tok, usize)],
        dir: &Path,
        file: &Path,
        read: &dyn Fn(&Path) -> Option<String>,
    ) -> Api {
        let mut api = Api::default();
        let (mut hidden, mut path_attr) = (false, None::<String>);
        let mut at = 0;
        while at < tokens.len() {
            match &tokens[at].0 {
                Tok::Punct('#') => {
                    let open = if is_punct(tokens.get(at + 1), '!') {
                        at + 2
                    } else {
                        at + 1
                    };
                    let end = skip_group(tokens, open);
                    let attr = &tokens[open..end];
                    let words: Vec<&str> = attr.iter().filter_map(|t| ident(Some(t))).collect();
                    hidden |= words.starts_with(&["doc", "hidden"]);
                    if words.first() == Some(&"path")
                        && let Some((Tok::Str(value), _)) = attr.iter().find(|t| matches!(t.0, Tok::Str(_)))
                    {
                        path_attr = Some(value.clone());
                    }
                    at = end;
                    continue;
                }
                Tok::Punct('{' | '(' | '[') => {
                    at = skip_group(tokens, at);
                    (hidden, path_attr) = (false, None);
                    continue;
                }
                Tok::Ident(word) if word == "pub" && !is_punct(tokens.get(at + 1), '(') && !hidden => {
                    at = api.public_item(tokens, at + 1, dir, file, path_attr.take(), read);
                    hidden = false;
                    continue;
                }
                Tok::Punct(';') => (hidden, path_attr) = (false, None),
                _ => {}
            }
            at += 1;
        }
        api
    }

    /// Records the `pub` item starting at `at` (after `pub`); returns where to go on.
    fn public_item(
        &mut self,
        tokens: &[(Tok, usize)],
        mut at: usize,
        dir: &Path,
        file: &Path,
        path_attr: Option<String>,
        read: &dyn Fn(&Path) -> Option<String>,
    ) -> usize {
        loop {
            let Some(word) = ident(tokens.get(at)) else {
                if matches!(tokens.get(at), Some((Tok::Str(_), _))) {
                    at += 1; // `extern "C"`
                    continue;
                }
                return at;
            };
            match word {
                "async" | "unsafe" | "extern" => at += 1,
                "const"
                    if matches!(
                        ident(tokens.get(at + 1)),
                        Some("fn" | "unsafe" | "async" | "extern")
                    ) =>
                {
                    at += 1
                }
                "fn" | "struct" | "enum" | "trait" | "type" | "static" | "union" | "const" | "macro" => {
                    let mut name_at = at + 1;
                    if ident(tokens.get(name_at)) == Some("mut") {
                        name_at += 1;
                    }
                    if let Some(name) = ident(tokens.get(name_at)) {
                        self.items.entry(name.to_owned()).or_insert(Entry::Item);
                    }
                    return name_at + 1;
                }
                "mod" => {
                    let Some(name) = ident(tokens.get(at + 1)) else {
                        return at + 1;
                    };
                    let module = if is_punct(tokens.get(at + 2), '{') {
                        let end = skip_group(tokens, at + 2);
                        let inner = Api::of_tokens(&tokens[at + 3..end - 1], &dir.join(name), file, read);
                        self.items.insert(name.to_owned(), Entry::Module(inner));
                        return end;
                    } else {
                        let candidates = match &path_attr {
                            Some(path) => vec![file.parent().unwrap_or(Path::new("")).join(path)],
                            None => vec![dir.join(format!("{name}.rs")), dir.join(name).join("mod.rs")],
                        };
                        let found = candidates
                            .iter()
                            .find_map(|path| read(path).map(|source| (path.clone(), source)));
                        let Some((path, source)) = found else {
                            panic!(
                                "`pub mod {name}` in {}: none of {candidates:?} exists",
                                file.display()
                            )
                        };
                        let child_dir = if path.file_name().is_some_and(|f| f == "mod.rs") {
                            path.parent().unwrap_or(Path::new("")).to_path_buf()
                        } else {
                            path.with_extension("")
                        };
                        Api::of_tokens(&lex(&source), &child_dir, &path, read)
                    };
                    // A module wins over a macro or function of the same name: its path is
                    // the one to check deeper.
                    self.items.insert(name.to_owned(), Entry::Module(module));
                    return at + 2;
                }
                "use" => {
                    let mut paths = Vec::new();
                    let end = use_tree(tokens, at + 1, &[], &mut paths);
                    // Each leaf is known by its alias, else by its last segment.
                    for UsePath { path, alias } in paths {
                        match (alias, path.last().map(String::as_str)) {
                            (_, Some("*")) => self.open = true,
                            (Some(alias), _) => {
                                self.items.entry(alias).or_insert(Entry::Item);
                            }
                            (None, Some(name)) => {
                                self.items.entry(name.to_owned()).or_insert(Entry::Item);
                            }
                            (None, None) => {}
                        }
                    }
                    return end;
                }
                _ => return at,
            }
        }
    }

    /// `Ok` if an external crate can name `path` (the segments after `hitl::`), else why not.
    fn check(&self, path: &[String]) -> Result<(), String> {
        let mut module = self;
        for (index, segment) in path.iter().enumerate() {
            let shown = || {
                format!("hitl::{}", path[..index].join("::"))
                    .trim_end_matches("::")
                    .to_owned()
            };
            if segment == "*" {
                return Err(format!(
                    "a glob import of `{}` brings in crate-internal items too; name the public items",
                    shown()
                ));
            }
            match module.items.get(segment) {
                Some(Entry::Module(inner)) => module = inner,
                Some(Entry::Item) => return Ok(()),
                None if module.open => return Ok(()),
                None => {
                    return Err(format!(
                        "`{segment}` is not public in `{}` (private, `pub(crate)` or `#[doc(hidden)]`)",
                        shown()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Where a surface's files live and which paths they may name besides the public API.
struct Rule {
    /// The folder under `hitl/src`.
    folder: &'static str,
    /// Its module path below its crate's root: `server` in the library; the CLI is
    /// `crate::cli` of the `hitl` binary (`src/bin/hitl.rs`).
    module: &'static str,
    /// How the library's API is spelled in it: `crate` in the library, `hitl` in the binary.
    api_root: &'static str,
    /// First segments after `crate::` it may name freely (itself, `sign`).
    allowed: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        folder: "server",
        module: "server",
        api_root: "crate",
        allowed: &["server", "sign"],
    },
    Rule {
        folder: "cli",
        module: "cli",
        api_root: "hitl",
        allowed: &["cli"],
    },
];

/// The violations of `rule` in one file (`relative`: its path below the rule's folder).
fn violations(api: &Api, rule: &Rule, relative: &Path, source: &str) -> Vec<String> {
    let mut module = vec![rule.module];
    let stem: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    module.extend(stem.iter().map(String::as_str).filter(|part| *part != "mod"));
    let shown = Path::new(rule.folder).join(relative);
    let mut found = Vec::new();
    for Named { path, line } in paths_in(source, &module) {
        let (root, rest) = (path[0].as_str(), &path[1..]);
        let verdict = if root == "crate"
            && rest
                .first()
                .is_some_and(|first| rule.allowed.contains(&first.as_str()))
        {
            Ok(())
        } else if root == rule.api_root {
            api.check(rest)
        } else {
            Err(format!(
                "`{root}::` here is not the library (`{}::…` is)",
                rule.api_root
            ))
        };
        if let Err(why) = verdict {
            found.push(format!(
                "{}:{line}: `{}`: {why}",
                shown.display(),
                path.join("::")
            ));
        }
    }
    found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn read_real(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[test]
fn server_and_cli_name_only_the_public_api_and_sign() {
    let api = Api::of(&src().join("lib.rs"), &read_real);
    let mut found = Vec::new();
    for rule in RULES {
        let folder = src().join(rule.folder);
        let mut files = Vec::new();
        rust_files(&folder, &mut files);
        assert!(!files.is_empty(), "no files under {}", folder.display());
        let mut checked = 0;
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            let relative = file.strip_prefix(&folder).unwrap();
            checked += paths_in(&source, &[rule.module]).len();
            found.extend(violations(&api, rule, relative, &source));
        }
        // The check must have something to check: each surface names the API somewhere.
        assert!(checked > 0, "no crate paths found under {}", folder.display());
    }
    assert!(
        found.is_empty(),
        "server/ and cli/ may name only what an external crate can name as `hitl::…` \
         (prefer the crate-root re-exports, `crate::Engine`, `crate::Request`, …) plus \
         `crate::sign`. Give what they need a documented public home, or move a pure \
         primitive into sign.rs:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn sign_imports_nothing_of_the_crate() {
    let source = std::fs::read_to_string(src().join("sign.rs")).unwrap();
    let named: Vec<Named> = paths_in(&source, &["sign"])
        .into_iter()
        .filter(|named| !named.path.starts_with(&["crate".to_owned(), "sign".to_owned()]))
        .collect();
    assert!(
        named.is_empty(),
        "sign.rs is L0: it may import std and its dependencies only, found {named:?}"
    );
}

/// The module path of a file below `src/`: `journal/frame.rs` → `journal::frame`,
/// `engine/mod.rs` → `engine`, `private.rs` → `__private` (its `#[path]` name in lib.rs).
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    if parts.first().is_some_and(|first| first == "private") {
        parts[0] = "__private".to_owned();
    }
    parts
}

/// Every crate path each file of `files` names (module path, the paths), with the crate
/// paths written inside strings (`#[serde(with = "crate::time_format")]`) as well.
fn crate_paths(files: &[(PathBuf, String)]) -> Vec<(PathBuf, Vec<Named>)> {
    files
        .iter()
        .map(|(relative, source)| {
            let module = module_of(relative);
            let module: Vec<&str> = module.iter().map(String::as_str).collect();
            let mut named = paths_in(source, &module);
            for (tok, line) in lex(source) {
                if let Tok::Str(text) = tok
                    && let Some(rest) = text.strip_prefix("crate::")
                {
                    let mut path = vec!["crate".to_owned()];
                    path.extend(rest.split("::").map(str::to_owned));
                    named.push(Named { path, line });
                }
            }
            (relative.clone(), named)
        })
        .collect()
}

/// The arrows between top-level modules: `from → to`, with one `file:line` naming it.
fn module_graph(files: &[(PathBuf, String)]) -> std::collections::BTreeMap<(String, String), String> {
    let tops: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|(relative, _)| module_of(relative).into_iter().next())
        .filter(|top| top != "lib" && top != "bin")
        .collect();
    let mut arrows = std::collections::BTreeMap::new();
    for (relative, named) in crate_paths(files) {
        let Some(from) = module_of(&relative).into_iter().next() else {
            continue;
        };
        if !tops.contains(&from) {
            continue;
        }
        for Named { path, line } in named {
            if path.first().map(String::as_str) != Some("crate") {
                continue;
            }
            if let Some(to) = path.get(1)
                && tops.contains(to)
                && *to != from
            {
                arrows
                    .entry((from.clone(), to.clone()))
                    .or_insert_with(|| format!("{}:{line}", relative.display()));
            }
        }
    }
    arrows
}

/// A cycle of the graph, as the modules along it (first repeated at the end), if any.
fn find_cycle(arrows: &std::collections::BTreeMap<(String, String), String>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        arrows: &std::collections::BTreeMap<(String, String), String>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|on| on == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for (_, to) in arrows.keys().filter(|(from, _)| from == node) {
            if let Some(cycle) = visit(to, arrows, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    let nodes: std::collections::BTreeSet<&String> = arrows.keys().map(|(from, _)| from).collect();
    nodes
        .into_iter()
        .find_map(|node| visit(node, arrows, &mut Vec::new(), &mut done))
}

fn real_files() -> Vec<(PathBuf, String)> {
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let source = std::fs::read_to_string(&path).unwrap();
            (path.strip_prefix(src()).unwrap().to_owned(), source)
        })
        .collect()
}

#[test]
fn the_top_level_modules_form_no_cycle() {
    let arrows = module_graph(&real_files());
    // The graph is real: the engine sits on the journal, the journal on the store.
    assert!(arrows.contains_key(&("engine".to_owned(), "journal".to_owned())));
    assert!(arrows.contains_key(&("journal".to_owned(), "store".to_owned())));
    if let Some(cycle) = find_cycle(&arrows) {
        let shown: Vec<String> = cycle
            .windows(2)
            .map(|pair| {
                format!(
                    "{} → {} ({})",
                    pair[0],
                    pair[1],
                    arrows[&(pair[0].clone(), pair[1].clone())]
                )
            })
            .collect();
        panic!(
            "the top-level modules of hitl/src form a cycle; imports must point down the layers \
             listed in lib.rs:\n  {}",
            shown.join("\n  ")
        );
    }
}

#[test]
fn each_layer_names_only_what_is_below_it() {
    let arrows = module_graph(&real_files());
    let allowed_below_model = ["clock", "time_format", "util"];
    let forbidden: &[(&str, &[&str])] = &[
        (
            "store",
            &[
                "journal", "engine", "feedback", "notify", "context", "links", "workflow",
            ],
        ),
        (
            "journal",
            &["engine", "notify", "context", "feedback", "links", "workflow"],
        ),
        ("feedback", &["engine", "journal", "store", "context", "notify"]),
    ];
    let mut found = Vec::new();
    for ((from, to), at) in &arrows {
        if from == "model" && !allowed_below_model.contains(&to.as_str()) {
            found.push(format!(
                "model → {to} ({at}): model names only {allowed_below_model:?}"
            ));
        }
        if to == "__private" {
            found.push(format!(
                "{from} → __private ({at}): only lib.rs declares the macros' façade"
            ));
        }
        for (layer, never) in forbidden {
            if from == layer && never.contains(&to.as_str()) {
                found.push(format!("{from} → {to} ({at}): {layer} never names {never:?}"));
            }
        }
    }
    for (relative, named) in crate_paths(&real_files()) {
        let in_store = relative.starts_with("store");
        for Named { path, line } in named {
            if path.starts_with(&["crate".to_owned(), "store".to_owned(), "sled".to_owned()])
                && !in_store
                && relative != Path::new("engine/builder.rs")
            {
                found.push(format!(
                    "{}:{line}: only engine/builder.rs names store::sled",
                    relative.display()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "layering rules broken:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle_through_a_string_path_and_none_in_a_ladder() {
    let file = |path: &str, source: &str| (PathBuf::from(path), source.to_owned());
    let ladder = [
        file("lib.rs", "mod a; mod b; mod c;"),
        file("a/mod.rs", "use crate::b::X; mod inner;"),
        file("a/inner.rs", "use super::super::c::Y;"),
        file("b.rs", "use crate::{c::Z};"),
        file("c.rs", "use std::fmt;"),
    ];
    let arrows = module_graph(&ladder);
    let pairs: Vec<(&str, &str)> = arrows.keys().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(pairs, [("a", "b"), ("a", "c"), ("b", "c")]);
    assert_eq!(find_cycle(&arrows), None);

    let mut cyclic = ladder.to_vec();
    cyclic[4] = file("c.rs", "#[serde(with = \"crate::a\")] struct S;");
    let cycle = find_cycle(&module_graph(&cyclic)).expect("c → a closes a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert!(
        cycle.contains(&"c".to_owned()) && cycle.contains(&"a".to_owned()),
        "{cycle:?}"
    );
}

// The checker itself, on a small crate of its own.

fn fake_crate() -> HashMap<PathBuf, String> {
    let files = [
        (
            "lib.rs",
            "pub mod engine;\nmod store;\npub mod feedback;\nmod sign;\n#[cfg(feature = \"server\")]\npub mod server;\n\
             #[doc(hidden)]\n#[path = \"private.rs\"]\npub mod __private;\n\
             pub use engine::Engine;\npub use feedback::{Request, Responder as Who};\npub(crate) use store::Store;\n\
             pub mod prelude { pub use crate::engine::Engine; }\n",
        ),
        (
            "engine.rs",
            "pub struct Engine;\npub(crate) struct Shared;\nimpl Engine { pub fn now(&self) {} }\n",
        ),
        (
            "feedback/mod.rs",
            "mod request;\npub use request::Request;\npub(crate) use request::RequestRecord;\n\
             pub struct Responder(pub String);\npub const EXPIRY: &str = \"x\";\n",
        ),
        ("private.rs", "pub fn run_step() {}\n"),
        ("server/mod.rs", "mod auth;\npub fn router() {}\n"),
    ];
    files
        .into_iter()
        .map(|(path, text)| (PathBuf::from(path), text.to_owned()))
        .collect()
}

fn fake_api() -> Api {
    let files = fake_crate();
    Api::of(Path::new("lib.rs"), &|path| files.get(path).cloned())
}

fn server_violations(file: &str, source: &str) -> Vec<String> {
    violations(&fake_api(), &RULES[0], Path::new(file), source)
}

#[test]
fn the_checker_accepts_public_paths_sign_and_the_surface_itself() {
    let source = r##"
        use crate::{Engine, Request, Who};
        use crate::feedback::{EXPIRY, Responder};
        use crate::sign::{self, hex};
        use super::auth::Link;          // server/pages.rs: crate::server::auth
        use crate::server::form;
        use crate::prelude::Engine as E;
        fn f(engine: &crate::Engine) -> crate::engine::Engine { crate::Engine::now(engine); todo!() }
        // crate::store::Store in a comment, "crate::store::Store" in a string
        const CSS: &str = r#"a::b { crate::store::Shared }"#;
        fn lifetimes<'a>(x: &'a str, c: char) -> bool { c == '{' || c == '\'' }
        #[cfg(test)]
        mod tests { use super::*; use super::super::form::Pairs; }
    "##;
    assert_eq!(server_violations("pages.rs", source), Vec::<String>::new());
}

#[test]
fn the_checker_refuses_internal_paths_wherever_they_are_named() {
    let cases = [
        ("use crate::store::Store;", "`store` is not public in `hitl`"),
        ("use crate::Store;", "`Store` is not public in `hitl`"),
        ("use crate::Responder;", "`Responder` is not public in `hitl`"),
        (
            "use crate::engine::Shared;",
            "`Shared` is not public in `hitl::engine`",
        ),
        (
            "use crate::{Engine, feedback::RequestRecord};",
            "`RequestRecord` is not public",
        ),
        ("use crate::__private::run_step;", "`__private` is not public"),
        ("fn f() { crate::store::open(); }", "`store` is not public"),
        ("use crate::feedback::*;", "glob import of `hitl::feedback`"),
        ("use super::super::super::store::Store;", "`store` is not public"),
    ];
    for (source, expected) in cases {
        // `views/run.rs` is `crate::server::views::run`: three `super`s leave the server.
        let found = server_violations("views/run.rs", source);
        assert!(
            found.len() == 1 && found[0].contains(expected),
            "{source}: expected one violation saying {expected:?}, got {found:?}"
        );
    }
    let found = server_violations("mod.rs", "mod tests {}\nuse super::store::Store;");
    assert_eq!(
        found.len(),
        1,
        "`super` in server/mod.rs is the crate root: {found:?}"
    );
}

#[test]
fn the_cli_names_the_library_as_hitl() {
    let cli = &RULES[1];
    let check = |source: &str| violations(&fake_api(), cli, Path::new("render/mod.rs"), source);
    assert_eq!(
        check("use hitl::{Engine, Request}; use super::error::CliError; use crate::cli::x;"),
        Vec::<String>::new()
    );
    assert_eq!(
        check("fn f() -> hitl::Result<()> { ::hitl::engine::Engine::now(); }").len(),
        1
    );
    assert_eq!(check("use hitl::sign::hex;").len(), 1);
    assert_eq!(check("use crate::main;").len(), 1);
}
