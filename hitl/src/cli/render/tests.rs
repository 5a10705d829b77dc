//! Tables, answers in words, and that nothing hostile reaches the terminal.

use std::borrow::Cow;

use super::escape::{escape_cell, is_hostile};
use super::table::Table;
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
