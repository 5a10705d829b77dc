//! What of someone else's text may reach the terminal: control and bidirectional characters
//! written as visible escapes, in human output and in `--json` output alike.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;

/// Whether `c` must not reach a terminal raw: a C0 or C1 control character (ESC starts
/// the sequences that retitle, clear or move the cursor; CR and BS overwrite what is shown)
/// or a bidirectional embedding, override or isolate (which reorder what is shown).
pub(super) fn is_hostile(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character but newline and tab (and every bidirectional
/// control) written as a visible Rust-style escape, `\u{1b}` for ESC. What a human reads of
/// responder- or workflow-supplied text goes through this; `--json` output does not.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    escape_where(text, |c| is_hostile(c) && c != '\n' && c != '\t')
}

/// Like [`escape_controls`], newline and tab included: a table cell stays on its line.
pub(super) fn escape_cell(text: &str) -> Cow<'_, str> {
    escape_where(text, is_hostile)
}

fn escape_where(text: &str, escape: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escape(c) {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Pretty JSON for `--json`: the same values, exactly, with every control character (and
/// bidirectional control) inside a string written as a JSON `\u` escape — `serde_json`
/// writes DEL, C1 and the bidirectional controls raw, and a terminal would act on them.
pub(crate) fn json(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    // Outside strings JSON text is ASCII punctuation, digits, letters and whitespace, so
    // every hostile character here is inside a string, where `\uXXXX` means the same.
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if is_hostile(c) && c != '\n' {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    out
}
