//! Readable output: tables and detail views drawn from the API's JSON objects.
//!
//! Everything here reads `serde_json::Value`s so that both modes, and a server newer than
//! this CLI, render the same way; a missing field shows as empty rather than failing.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::Value;

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
        self.rows.push(cells);
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
    if let Some(location) = request["location"]
        .as_str()
        .filter(|location| !location.is_empty())
    {
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
    if let Some(details) = request["details"].as_str().filter(|details| !details.is_empty()) {
        let _ = writeln!(out, "\n{}", indent(details));
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
        let _ = writeln!(out, "{}", indent(&pretty));
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
        Some("failed") => run["failure"]["message"].as_str().unwrap_or_default().to_owned(),
        Some("cancelled") => run["cancel_reason"].as_str().unwrap_or_default().to_owned(),
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
                Some(other) => other.to_owned(),
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
        Value::String(option) => return option.clone(),
        Value::Array(options) => {
            return options
                .iter()
                .map(|option| option.as_str().unwrap_or_default())
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
        Some(status) => format!("Asked run {id} to stop; it is {status} now.\n"),
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
    if let Some(pattern) = constraints["pattern"].as_str() {
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

/// A string field as it is; anything else as compact JSON; null as empty.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn compact(value: &Value, max: usize) -> String {
    truncate(&value.to_string(), max)
}

fn quoted(text: &str, max: usize) -> String {
    format!("\"{}\"", truncate(&one_line(text), max))
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
