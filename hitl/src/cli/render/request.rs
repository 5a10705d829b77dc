//! Requests and answers: `hitl pending`, `hitl show`, `hitl respond`, and an answer in words.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::Value;

use super::table::Table;
use super::{
    as_array, compact, deadline, escape_controls, indent, one_line, quoted, relative, stamp, string, strings,
    text, time, truncate,
};

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
