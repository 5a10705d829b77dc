//! Runs: `hitl runs`, `hitl history` and `hitl cancel`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::table::Table;
use super::{as_array, compact, describe_response, one_line, relative, short, string, text, time, truncate};

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
        Some("blocked") => format!(
            "cannot resume on this code: {}",
            string(&run["blocked"]["reason"]).unwrap_or_default()
        ),
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
    for problem in as_array(&run["blocked"]["problems"]) {
        let _ = writeln!(out, "  - {}", one_line(&text(&problem["detail"])));
    }
    if run["status"] == "blocked" {
        let _ = writeln!(
            out,
            "  Decide with `hitl decide {} --resume-anyway --reason …` or `--cancel`, or deploy code that can resume it.",
            text(&run["id"])
        );
    }
    for decision in as_array(&run["decisions"]) {
        let _ = writeln!(
            out,
            "  Decided {} by {}: {}",
            text(&decision["action"]).replace('_', " "),
            text(&decision["by"]),
            one_line(&text(&decision["reason"]))
        );
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

/// `hitl decide`: what became of the run.
pub(crate) fn decided(run: &Value) -> String {
    let id = text(&run["id"]);
    match run["status"].as_str() {
        Some("cancelled") => format!("Cancelled run {id} ({}).\n", text(&run["cancel_reason"])),
        Some("blocked") => format!(
            "Recorded the decision on run {id}; it resumes when the application drives it (at once on PostgreSQL, at its next start on a database directory).\n"
        ),
        Some(status) => format!("Run {id} resumes on the current code; it is {status} now.\n"),
        None => format!("Recorded the decision on run {id}.\n"),
    }
}
