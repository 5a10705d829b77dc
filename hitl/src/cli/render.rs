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

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// Whether `c` must not reach a terminal raw: a C0 or C1 control character (ESC starts
/// the sequences that retitle, clear or move the cursor; CR and BS overwrite what is shown)
/// or a bidirectional embedding, override or isolate (which reorder what is shown).
fn is_hostile(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character but newline and tab (and every bidirectional
/// control) written as a visible Rust-style escape, `\u{1b}` for ESC. What a human reads of
/// responder- or workflow-supplied text goes through this; `--json` output does not.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    escape_where(text, |c| is_hostile(c) && c != '\n' && c != '\t')
}

/// Like [`escape_controls`], newline and tab included: a table cell stays on its line.
fn escape_cell(text: &str) -> Cow<'_, str> {
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

/// Columns padded to their widest cell; the last column is not padded.
struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&'static str]) -> Self {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|cell| escape_cell(&cell).into_owned())
                .collect(),
        );
    }

    fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|title| title.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|title| (*title).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let last = row.len().saturating_sub(1);
            let mut line = String::new();
            for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if index == last {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<width$}  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `hitl pending`.
pub(crate) fn requests_table(requests: &Value, now: SystemTime) -> String {
    let requests = as_array(requests);
    if requests.is_empty() {
        return "No pending requests.\n".to_owned();
    }
    let mut table = Table::new(&["ID", "WORKFLOW", "RUN", "KIND", "ASKED", "EXPIRES", "PROMPT"]);
    for request in requests {
        table.row(vec![
            text(&request["id"]),
            text(&request["workflow"]),
            text(&request["run_id"]),
            text(&request["kind"]),
            time(&request["created_at"]).map_or_else(String::new, |at| relative(at, now)),
            time(&request["expires_at"]).map_or_else(|| "-".to_owned(), |at| deadline(at, now)),
            truncate(&one_line(&text(&request["prompt"])), 60),
        ]);
    }
    table.render()
}

/// `hitl show`; `command` starts the `respond` line it suggests (`hitl`, or
/// `hitl --db DIR --as NAME` in database mode).
pub(crate) fn request_detail(request: &Value, command: &str, now: SystemTime) -> String {
    let mut out = String::new();
    let id = text(&request["id"]);
    let kind = text(&request["kind"]);
    let status = text(&request["status"]);
    let _ = writeln!(out, "Request   {id}");
    let _ = writeln!(out, "Status    {status}");
    let _ = writeln!(out, "Kind      {}", kind.replace('_', "-"));
    let _ = writeln!(out, "Workflow  {}", text(&request["workflow"]));
    let _ = writeln!(out, "Run       {}", text(&request["run_id"]));
    let mut asked = time(&request["created_at"]).map_or_else(String::new, |at| stamp(at, now));
    if let Some(location) = string(&request["location"]).filter(|location| !location.is_empty()) {
        let _ = write!(asked, " at {location}");
    }
    let _ = writeln!(out, "Asked     {asked}");
    if let Some(at) = time(&request["expires_at"]) {
        let _ = writeln!(out, "Expires   {}", stamp(at, now));
    }
    let responders = strings(&request["responders"]);
    if !responders.is_empty() {
        let _ = writeln!(out, "Who       {}", responders.join(", "));
    }
    let quorum = request["quorum"].as_u64().unwrap_or(1);
    if quorum > 1 {
        let votes: Vec<String> = as_array(&request["votes"])
            .iter()
            .map(|vote| {
                let verdict = if vote["approved"].as_bool() == Some(true) {
                    "approved"
                } else {
                    "rejected"
                };
                format!("{} {verdict}", text(&vote["responder"]))
            })
            .collect();
        let votes = if votes.is_empty() {
            "no votes yet".to_owned()
        } else {
            votes.join(", ")
        };
        let _ = writeln!(out, "Quorum    {quorum} approvals ({votes})");
    }
    let _ = writeln!(out, "\n{}", indent(&text(&request["prompt"])));
    if let Some(details) = string(&request["details"]).filter(|details| !details.is_empty()) {
        let _ = writeln!(out, "\n{}", indent(&details));
    }
    let options = strings(&request["options"]);
    if !options.is_empty() {
        let _ = writeln!(out, "\nOptions");
        for option in &options {
            let _ = writeln!(out, "  - {option}");
        }
    }
    let constraints = constraints(&request["constraints"]);
    if !constraints.is_empty() {
        let _ = writeln!(out, "\nConstraints  {}", constraints.join(", "));
    }
    if let Some(schema) = request.get("schema").filter(|schema| !schema.is_null()) {
        let _ = writeln!(out, "\nInput schema");
        let pretty = serde_json::to_string_pretty(schema).unwrap_or_default();
        let _ = writeln!(out, "{}", indent(&escape_controls(&pretty)));
    }
    if let Some(default) = request.get("default").filter(|default| !default.is_null()) {
        let _ = writeln!(out, "\nDefault   {}", compact(default, 200));
    }
    if let Some(answer) = request.get("answer").filter(|answer| answer.is_object()) {
        let _ = writeln!(
            out,
            "\nAnswer    {} by {}, {}",
            describe_response(answer),
            text(&answer["responder"]),
            time(&answer["answered_at"]).map_or_else(String::new, |at| stamp(at, now)),
        );
    }
    if status == "pending" {
        let _ = writeln!(
            out,
            "\nAnswer with:\n  {command} respond {id} {}",
            answer_hint(&kind, &options)
        );
    }
    out
}

/// The flags that answer a request of `kind`.
pub(crate) fn answer_hint(kind: &str, options: &[String]) -> String {
    let option = options.first().map_or("OPTION", String::as_str);
    match kind {
        "approval" => "--approve | --reject [--comment TEXT]".to_owned(),
        "text" => "--text TEXT".to_owned(),
        "selection" => format!("--select {}", quote(option)),
        "multi_selection" => {
            let second = options.get(1).map_or("OTHER", String::as_str);
            format!("--select {} --select {} …", quote(option), quote(second))
        }
        "input" => "--value JSON".to_owned(),
        _ => "--approve | --reject | --text … | --select … | --value …".to_owned(),
    }
}

/// `option` as one shell word (single-quoted when it needs to be).
pub(crate) fn quote(option: &str) -> String {
    if option
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c))
    {
        option.to_owned()
    } else {
        format!("'{}'", option.replace('\'', r"'\''"))
    }
}

/// `hitl runs`.
pub(crate) fn runs_table(runs: &Value, now: SystemTime) -> String {
    let mut runs: Vec<&Value> = as_array(runs).iter().collect();
    if runs.is_empty() {
        return "No runs.\n".to_owned();
    }
    runs.sort_by_key(|run| time(&run["created_at"]));
    let mut table = Table::new(&["ID", "WORKFLOW", "STATUS", "CREATED", "UPDATED", "NOTE"]);
    for run in runs {
        table.row(vec![
            text(&run["id"]),
            text(&run["workflow"]),
            text(&run["status"]),
            time(&run["created_at"]).map_or_else(String::new, |at| relative(at, now)),
            time(&run["updated_at"]).map_or_else(String::new, |at| relative(at, now)),
            truncate(&one_line(&run_note(run)), 60),
        ]);
    }
    table.render()
}

/// What a run's row says beyond its status.
fn run_note(run: &Value) -> String {
    let mut note = match run["status"].as_str() {
        Some("failed") => string(&run["failure"]["message"]).unwrap_or_default(),
        Some("cancelled") => string(&run["cancel_reason"]).unwrap_or_default(),
        Some("completed") => run
            .get("output")
            .map(|output| format!("→ {}", compact(output, 60)))
            .unwrap_or_default(),
        _ => String::new(),
    };
    if run["definition_changed"].is_object() {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str("code changed since it started");
    }
    note
}

/// `hitl history`: the run's summary, then one row per step.
pub(crate) fn history(run: &Value, steps: &Value, now: SystemTime) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Run {} of `{}`: {}{}",
        text(&run["id"]),
        text(&run["workflow"]),
        text(&run["status"]),
        time(&run["created_at"]).map_or_else(String::new, |at| format!(", started {}", relative(at, now))),
    );
    let note = run_note(run);
    if !note.is_empty() {
        let _ = writeln!(out, "  {}", one_line(&note));
    }
    out.push('\n');
    let steps = as_array(steps);
    if steps.is_empty() {
        out.push_str("No journaled steps yet.\n");
        return out;
    }
    let mut table = Table::new(&["#", "STEP", "KIND", "STATUS", "STARTED", "TOOK", "DETAIL"]);
    for (index, step) in steps.iter().enumerate() {
        let started = time(&step["started_at"]);
        let took = match (started, time(&step["finished_at"])) {
            (Some(start), Some(end)) => short(end.duration_since(start).unwrap_or_default()),
            _ => "-".to_owned(),
        };
        let mut name = text(&step["step_id"]);
        if let Some(line) = step["line"].as_u64().filter(|line| *line > 0) {
            let _ = write!(name, " (line {line})");
        }
        table.row(vec![
            (index + 1).to_string(),
            name,
            text(&step["kind"]),
            text(&step["status"]),
            started.map_or_else(String::new, |at| relative(at, now)),
            took,
            truncate(&one_line(&step_detail(step)), 100),
        ]);
    }
    out.push_str(&table.render());
    out
}

fn step_detail(step: &Value) -> String {
    let output = &step["output"];
    match step["kind"].as_str() {
        Some("feedback") => {
            let request = text(&output["request"]);
            let resolution = &output["resolution"];
            let state = match resolution["status"].as_str() {
                Some("answered") => format!(
                    "{} by {}",
                    describe_response(&resolution["response"]),
                    text(&resolution["responder"])
                ),
                Some("cancelled") => format!("cancelled: {}", text(&resolution["reason"])),
                Some(_) => text(&resolution["status"]),
                None => text(&output["status"]),
            };
            format!("request {request}: {state}")
        }
        Some("sleep") => match output["deadline"].as_u64() {
            Some(ms) => {
                let at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
                format!("until {}", humantime::format_rfc3339_seconds(at))
            }
            None => compact(output, 70),
        },
        Some("notification") => {
            let attempts = as_array(&output["attempts"]).len();
            let plural = if attempts == 1 { "" } else { "s" };
            format!("{} ({attempts} attempt{plural})", text(&output["url"]))
        }
        _ => compact(output, 70),
    }
}

/// An answer in words: `approved: "ship it"`, `"some text"`, `a, b`, `{"amount":1}`.
pub(crate) fn describe_response(answer: &Value) -> String {
    if let Some(approved) = answer["approved"].as_bool() {
        let verdict = if approved { "approved" } else { "rejected" };
        return match answer["comment"].as_str() {
            Some(comment) => format!("{verdict} ({})", quoted(comment, 60)),
            None => verdict.to_owned(),
        };
    }
    if let Some(text) = answer["text"].as_str() {
        return quoted(text, 60);
    }
    match &answer["selected"] {
        selected @ Value::String(_) => return text(selected),
        Value::Array(options) => {
            return options
                .iter()
                .map(|option| string(option).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ");
        }
        _ => {}
    }
    match answer.get("value") {
        Some(value) => compact(value, 60),
        None => String::new(),
    }
}

/// `hitl respond`: what was stored.
pub(crate) fn answered(request: &Value) -> String {
    let id = text(&request["id"]);
    match request["status"].as_str() {
        Some("answered") => {
            let answer = &request["answer"];
            format!(
                "Answered request {id}: {} by {}.\n",
                describe_response(answer),
                text(&answer["responder"])
            )
        }
        _ => {
            let quorum = request["quorum"].as_u64().unwrap_or(1);
            let approvals = as_array(&request["votes"])
                .iter()
                .filter(|vote| vote["approved"].as_bool() == Some(true))
                .count();
            format!(
                "Vote recorded on request {id}: {approvals} of {quorum} approvals; the request stays open.\n"
            )
        }
    }
}

/// `hitl cancel`: the run afterwards.
pub(crate) fn cancelled(run: &Value) -> String {
    let id = text(&run["id"]);
    match run["status"].as_str() {
        Some("cancelled") => format!(
            "Cancelled run {id} ({}); its open requests are cancelled.\n",
            text(&run["cancel_reason"])
        ),
        Some(_) => format!("Asked run {id} to stop; it is {} now.\n", text(&run["status"])),
        None => format!("Asked run {id} to stop.\n"),
    }
}

fn constraints(constraints: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let number = |key: &str| constraints[key].as_u64();
    if let Some(min) = number("min_len") {
        out.push(format!("at least {min} characters"));
    }
    if let Some(max) = number("max_len") {
        out.push(format!("at most {max} characters"));
    }
    if let Some(pattern) = string(&constraints["pattern"]) {
        out.push(format!("matches `{pattern}`"));
    }
    if let Some(min) = number("min_count") {
        out.push(format!("pick at least {min}"));
    }
    if let Some(max) = number("max_count") {
        out.push(format!("pick at most {max}"));
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_line_up_and_the_last_is_not_padded() {
        let mut table = Table::new(&["ID", "PROMPT"]);
        table.row(vec!["a".into(), "Deploy?".into()]);
        table.row(vec!["abcdef".into(), "x".into()]);
        assert_eq!(table.render(), "ID      PROMPT\na       Deploy?\nabcdef  x\n");
    }

    #[test]
    fn each_kind_of_answer_reads_as_words() {
        assert_eq!(describe_response(&json!({"approved": true})), "approved");
        assert_eq!(
            describe_response(&json!({"approved": false, "comment": "not now"})),
            "rejected (\"not now\")"
        );
        assert_eq!(describe_response(&json!({"text": "hi\nthere"})), "\"hi there\"");
        assert_eq!(describe_response(&json!({"selected": "eu"})), "eu");
        assert_eq!(describe_response(&json!({"selected": ["a", "b"]})), "a, b");
        assert_eq!(describe_response(&json!({"value": {"n": 1}})), "{\"n\":1}");
    }

    /// Retitles the terminal, clears it, moves the cursor up, rings the bell, overwrites the
    /// line, and uses a C1 CSI, DEL and a right-to-left override.
    const HOSTILE: &str = "ok\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[1A\rfake\u{8}\u{9b}31m\u{7f}\u{202e}end";

    /// Nothing a terminal acts on: no control character but newline (and tab where kept).
    fn assert_inert(out: &str) {
        let raw: Vec<char> = out
            .chars()
            .filter(|&c| is_hostile(c) && c != '\n' && c != '\t')
            .collect();
        assert!(raw.is_empty(), "raw control characters {raw:?} in:\n{out}");
    }

    #[test]
    fn control_characters_are_escaped_visibly_and_newlines_and_tabs_kept() {
        assert_eq!(
            escape_controls(HOSTILE),
            "ok\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{1b}[1A\\u{d}fake\\u{8}\\u{9b}31m\\u{7f}\\u{202e}end"
        );
        assert_eq!(escape_controls("line 1\n\tline 2"), "line 1\n\tline 2");
        assert!(matches!(escape_controls("Déployer l’API ? ✓"), Cow::Borrowed(_)));
        assert_eq!(escape_cell("a\nb\tc"), "a\\u{a}b\\u{9}c");
        assert_eq!(
            escape_controls(&escape_controls(HOSTILE)),
            escape_controls(HOSTILE)
        );
    }

    #[test]
    fn a_hostile_request_shows_inert() {
        let request = json!({
            "id": format!("r-{HOSTILE}"), "run_id": HOSTILE, "workflow": HOSTILE,
            "kind": "selection", "status": "answered", "prompt": format!("Deploy?{HOSTILE}"),
            "details": format!("**bold**\n{HOSTILE}"), "options": [HOSTILE, "eu"],
            "responders": [HOSTILE], "location": HOSTILE,
            "constraints": {"pattern": HOSTILE}, "schema": {"title": HOSTILE}, "default": HOSTILE,
            "quorum": 2, "votes": [{"responder": HOSTILE, "approved": true}],
            "answer": {"selected": HOSTILE, "responder": HOSTILE},
            "created_at": "2026-05-01T10:00:00Z",
        });
        let now = SystemTime::now();
        let detail = request_detail(&request, "hitl", now);
        assert_inert(&detail);
        assert!(detail.contains("Deploy?ok\\u{1b}]0;pwned"), "{detail}");
        assert_inert(&requests_table(&json!([request]), now));
        let comment = json!({"approved": false, "comment": HOSTILE, "responder": HOSTILE});
        assert_inert(&describe_response(&comment));
        assert_inert(&describe_response(&json!({"text": HOSTILE})));
        assert_inert(&describe_response(&json!({"selected": [HOSTILE, HOSTILE]})));
        assert_inert(&describe_response(&json!({"value": {"note": HOSTILE}})));
        assert_inert(&answered(
            &json!({"id": HOSTILE, "status": "answered", "answer": comment}),
        ));
        assert_inert(&answer_hint("selection", &strings(&json!([HOSTILE]))));
    }

    #[test]
    fn hostile_runs_and_history_show_inert_and_tables_stay_aligned() {
        let failed = json!({"id": HOSTILE, "workflow": HOSTILE, "status": "failed",
            "failure": {"message": HOSTILE}, "created_at": "2026-05-01T10:00:00Z"});
        let cancelled = json!({"id": "b", "workflow": "w", "status": "cancelled",
            "cancel_reason": HOSTILE, "created_at": "2026-05-01T10:01:00Z"});
        let completed = json!({"id": "c", "workflow": "w", "status": "completed",
            "output": HOSTILE, "created_at": "2026-05-01T10:02:00Z"});
        let now = SystemTime::now();
        let table = runs_table(&json!([failed, cancelled, completed]), now);
        assert_inert(&table);
        // The status column starts at the same character in every line.
        let column = |line: &str, word: &str| line[..line.find(word).unwrap()].chars().count();
        let lines: Vec<&str> = table.lines().collect();
        let status = column(lines[0], "STATUS");
        for (line, word) in lines[1..].iter().zip(["failed", "cancelled", "completed"]) {
            assert_eq!(column(line, word), status, "{table}");
        }
        assert_inert(&super::cancelled(&cancelled));
        assert_inert(&super::cancelled(&json!({"id": HOSTILE, "status": HOSTILE})));
        let steps = json!([
            {"step_id": HOSTILE, "kind": "feedback", "status": "completed",
             "output": {"request": HOSTILE, "resolution": {"status": "answered",
                 "response": {"approved": true, "comment": HOSTILE}, "responder": HOSTILE}}},
            {"step_id": "n", "kind": "feedback", "status": "completed",
             "output": {"request": "r", "resolution": {"status": "cancelled", "reason": HOSTILE}}},
            {"step_id": "o", "kind": "feedback", "status": "completed",
             "output": {"request": "r", "resolution": {"status": HOSTILE}}},
            {"step_id": "p", "kind": "notification", "status": "completed",
             "output": {"url": HOSTILE, "attempts": [{"error": HOSTILE}]}},
            {"step_id": "q", "kind": "task", "status": "completed", "output": HOSTILE},
        ]);
        assert_inert(&history(&failed, &steps, now));
        assert_inert(&history(&cancelled, &json!([]), now));
    }

    #[test]
    fn json_output_keeps_the_exact_values_with_nothing_raw() {
        let value = json!({"comment": HOSTILE, "nested": [{"text": format!("a\nb\t{HOSTILE}")}]});
        let out = json(&value);
        assert!(!out.chars().any(|c| is_hostile(c) && c != '\n'), "{out:?}");
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), value);
    }

    #[test]
    fn durations_use_the_largest_unit() {
        assert_eq!(short(Duration::from_millis(850)), "850ms");
        assert_eq!(short(Duration::from_secs(59)), "59s");
        assert_eq!(short(Duration::from_secs(300)), "5m");
        assert_eq!(short(Duration::from_secs(7_300)), "2h");
        assert_eq!(short(Duration::from_secs(200_000)), "2d");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
