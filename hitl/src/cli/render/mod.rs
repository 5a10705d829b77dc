//! Readable output: tables and detail views drawn from the API's JSON objects.
//!
//! Everything here reads `serde_json::Value`s so that both modes, and a server newer than
//! this CLI, render the same way; a missing field shows as empty rather than failing.
//!
//! Nearly every string shown comes from someone else — responders write comments and text
//! answers, workflows write prompts, details, options and ids — so none reaches the terminal
//! raw: [`escape_controls`] turns control characters into visible `\u{1b}` escapes (tables
//! escape their cells before measuring them, and the CLI passes everything it prints through
//! it once more). `--json` output is left to `serde_json`, which keeps the strings exact.
//!
//! One file per concern: `escape` (what may reach a terminal), `table` (aligned columns),
//! `request` (requests and answers) and `run` (runs and their history); this module holds
//! the field readers and time words they share.

mod escape;
mod request;
mod run;
mod table;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use serde_json::Value;

pub(crate) use escape::{escape_controls, json};
pub(crate) use request::{answer_hint, answered, describe_response, quote, request_detail, requests_table};
pub(crate) use run::{cancelled, decided, history, runs_table};

fn as_array(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn strings(value: &Value) -> Vec<String> {
    as_array(value).iter().map(text).collect()
}

/// A string field with its control characters escaped ([`escape_controls`]); anything else
/// as compact JSON (which escapes them itself); null as empty.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => escape_controls(text).into_owned(),
        other => other.to_string(),
    }
}

/// A string field, escaped like [`text`], if it is one.
fn string(value: &Value) -> Option<String> {
    value.as_str().map(|text| escape_controls(text).into_owned())
}

/// Compact JSON: `serde_json` escapes C0 controls in strings, [`escape_controls`] the rest
/// (DEL, C1, bidirectional controls).
fn compact(value: &Value, max: usize) -> String {
    truncate(&escape_controls(&value.to_string()), max)
}

/// `"text"` on one line, cut at `max` characters, then escaped (so no escape is cut).
fn quoted(text: &str, max: usize) -> String {
    format!("\"{}\"", escape_controls(&truncate(&one_line(text), max)))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}").trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn time(value: &Value) -> Option<SystemTime> {
    value
        .as_str()
        .and_then(|text| humantime::parse_rfc3339_weak(text).ok())
}

/// `2026-05-01T10:00:00Z (5m ago)`.
fn stamp(at: SystemTime, now: SystemTime) -> String {
    format!(
        "{} ({})",
        humantime::format_rfc3339_seconds(at),
        relative(at, now)
    )
}

/// `5m ago` or `in 2h`.
fn relative(at: SystemTime, now: SystemTime) -> String {
    match now.duration_since(at) {
        Ok(ago) => format!("{} ago", short(ago)),
        Err(ahead) => format!("in {}", short(ahead.duration())),
    }
}

/// A deadline: `in 2h`, or `overdue` once passed.
fn deadline(at: SystemTime, now: SystemTime) -> String {
    if at <= now {
        "overdue".to_owned()
    } else {
        relative(at, now)
    }
}

/// The largest unit that fits: `850ms`, `12s`, `5m`, `3h`, `2d`.
fn short(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => format!("{}ms", duration.as_millis()),
        1..60 => format!("{secs}s"),
        60..3_600 => format!("{}m", secs / 60),
        3_600..86_400 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}
