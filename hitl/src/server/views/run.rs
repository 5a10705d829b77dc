//! The runs list and a run's page: its status and its journaled steps as a nested timeline.

use std::time::SystemTime;

use maud::{Markup, html};

use super::{Paths, Viewer, ago, describe, id_code, layout, status_name, timestamp};
use crate::run::StepStatus;
use crate::{HistoryEntry, Request, RunInfo, RunStatus, StepKind};

pub(crate) fn runs(paths: Paths<'_>, viewer: &Viewer<'_>, runs: &[RunInfo], now: SystemTime) -> Markup {
    let body = html! {
        h1 { "Runs" }
        @if runs.is_empty() {
            div.card { p { "No runs yet." } }
        } @else {
            table {
                thead { tr { th { "Run" } th { "Workflow" } th { "Status" } th { "Updated" } } }
                tbody {
                    @for run in runs {
                        tr {
                            td { a href=(paths.run(&run.id)) { (id_code(&run.id)) } }
                            td { (run.workflow) }
                            td {
                                span class=(format!("badge {}", run.status)) { (run.status) }
                                @if let Some(failure) = &run.failure { br; span.meta.reason { (failure.to_string()) } }
                                @if let Some(reason) = &run.cancel_reason { br; span.meta.reason { "Cancelled: " (reason) } }
                                @if let Some(blocked) = run.blocked.as_ref().filter(|_| run.status == RunStatus::Blocked) { br; span.meta.reason { "Blocked: " (blocked.reason) } }
                            }
                            td { (timestamp(run.updated_at, &ago(now, run.updated_at))) }
                        }
                    }
                }
            }
        }
    };
    layout(paths, "Runs", viewer, body)
}

pub(crate) fn run(
    paths: Paths<'_>,
    viewer: &Viewer<'_>,
    run: &RunInfo,
    history: &[HistoryEntry],
    requests: &[Request],
    now: SystemTime,
) -> Markup {
    let body = html! {
        div.card {
            p.meta { "workflow " code { (run.workflow) } " · run " code { (run.id) } }
            h1 { "Run of " (run.workflow) " " span class=(format!("badge {}", run.status)) #run-status { (run.status) } }
            p.meta { "started " (timestamp(run.created_at, &ago(now, run.created_at)))
                " · last change " (timestamp(run.updated_at, &ago(now, run.updated_at))) }
            @if let Some(failure) = &run.failure { div.error { (failure.to_string()) } }
            @if let Some(reason) = &run.cancel_reason { div.notice { "Cancelled: " (reason) } }
            @if let Some(blocked) = run.blocked.as_ref().filter(|_| run.status == RunStatus::Blocked) {
                div.error #blocked {
                    p { "The deployed code cannot resume this run; nothing of it runs until it can, or an operator decides (its requests can still be answered)." }
                    ul { @for problem in &blocked.problems { li { (problem.detail) } } }
                    @if let Viewer::Session { csrf, .. } = viewer {
                        form method="post" action=(format!("{}/decide", paths.run(&run.id))) #decide {
                            input type="hidden" name="csrf" value=(csrf);
                            label { "Why (recorded with the run) " input type="text" name="reason" required; }
                            button type="submit" name="action" value="resume_anyway" { "Resume on this code anyway" }
                            " "
                            button type="submit" name="action" value="cancel" { "Cancel the run" }
                            br;
                            label { "or rewind to step " input type="text" name="to" placeholder="build#0"; }
                            " "
                            button type="submit" name="action" value="rewind" { "Rewind (later steps run again)" }
                        }
                    }
                    p.meta { "Or " code { "POST /api/runs/" (run.id) "/decide" } ", or " code { "hitl decide " (run.id) " --resume-anyway --reason …" } "." }
                }
            }
            @for decision in &run.decisions {
                div.notice { "Decided " (decision.action) " by " (decision.by) ": " (decision.reason) }
            }
            @if run.version > 1 { p.meta { "version " (run.version) } }
            @if run.status == RunStatus::Completed {
                @if let Some(output) = &run.output { p { "Output" } pre.json { (serde_json::to_string_pretty(output).unwrap_or_default()) } }
            }
            details { summary { "Input" } pre.json { (serde_json::to_string_pretty(&run.input).unwrap_or_default()) } }
        }
        h2 { "Timeline" }
        @if history.is_empty() {
            p.meta { "No step has completed yet." }
        } @else {
            (timeline(paths, &nest(history), requests))
        }
    };
    layout(paths, &format!("Run {}", run.id), viewer, body)
}

/// A step of the timeline with the steps nested in it.
struct Node<'a> {
    /// The step id, or the scope of an orchestration that has not completed yet.
    id: &'a str,
    /// `None`: an orchestration still in progress (journaled only when it completes).
    entry: Option<&'a HistoryEntry>,
    children: Vec<Node<'a>>,
}

/// Nests the history by step id (`scope/name#n`): a step goes under the step whose id is
/// its scope (a `#[task(inject_context)]` orchestration, or the ask of a notification).
/// An orchestration is journaled after its children, so it takes the place of its first
/// child. `async` block scopes (`async0#0`) are not steps and do not nest; the scope of an
/// orchestration that has not completed yet gets a placeholder.
fn nest(history: &[HistoryEntry]) -> Vec<Node<'_>> {
    let ids: std::collections::HashSet<&str> = history.iter().map(|entry| entry.step_id.as_str()).collect();
    let mut roots: Vec<Node<'_>> = Vec::new();
    for entry in history {
        let id = entry.step_id.as_str();
        let mut level = &mut roots;
        for (end, _) in id.match_indices('/') {
            let scope = &id[..end];
            let segment = scope.rsplit('/').next().unwrap_or(scope);
            if !ids.contains(scope) && is_async_scope(segment) {
                continue;
            }
            let at = match level.iter().position(|node| node.id == scope) {
                Some(at) => at,
                None => {
                    level.push(Node {
                        id: scope,
                        entry: None,
                        children: Vec::new(),
                    });
                    level.len() - 1
                }
            };
            level = &mut level[at].children;
        }
        match level.iter_mut().find(|node| node.id == id) {
            Some(node) => node.entry = Some(entry),
            None => level.push(Node {
                id,
                entry: Some(entry),
                children: Vec::new(),
            }),
        }
    }
    roots
}

/// `async0#0`: the scope of an `async` block.
fn is_async_scope(segment: &str) -> bool {
    let name = segment.split_once('#').map_or(segment, |(name, _)| name);
    name.strip_prefix("async")
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
}

fn timeline(paths: Paths<'_>, nodes: &[Node<'_>], requests: &[Request]) -> Markup {
    html! {
        ol.timeline {
            @for node in nodes {
                @match node.entry {
                    Some(entry) => {
                        li class=(step_status(entry.status)) data-step=(entry.step_id) {
                            strong { (entry.name) } " "
                            span.meta { (StepKind::as_str(entry.kind)) " · " (step_status(entry.status)) " · line " (entry.line) " · "
                                (timestamp(entry.started_at, &humantime::format_rfc3339_seconds(entry.started_at).to_string())) }
                            br;
                            (step_detail(paths, entry, requests))
                            @if !node.children.is_empty() { (timeline(paths, &node.children, requests)) }
                        }
                    }
                    None => {
                        li.waiting data-step=(node.id) {
                            strong { (scope_name(node.id)) } " "
                            span.meta { "orchestration · in progress" }
                            (timeline(paths, &node.children, requests))
                        }
                    }
                }
            }
        }
    }
}

/// `outer#0/inner#1` → `inner`.
fn scope_name(id: &str) -> &str {
    let last = id.rsplit('/').next().unwrap_or(id);
    last.rsplit_once('#').map_or(last, |(name, _)| name)
}

fn step_detail(paths: Paths<'_>, entry: &HistoryEntry, requests: &[Request]) -> Markup {
    match entry.kind {
        StepKind::Feedback => {
            let id = entry.output["request"].as_str().unwrap_or_default();
            let request = requests.iter().find(|request| request.id == id);
            html! {
                @if let Some(request) = request {
                    a href=(paths.request(id)) { (request.prompt) } " "
                    span class=(format!("badge {}", status_name(request.status))) { (status_name(request.status)) }
                    @if let Some(answer) = &request.answer { " " span.meta { "by " (answer.responder) ": " } (describe(&answer.response)) }
                } @else {
                    code { (id) }
                }
            }
        }
        StepKind::Notification => html! {
            span.meta { "to " code { (entry.output["url"].as_str().unwrap_or_default()) }
                " · " (entry.output["attempts"].as_array().map_or(0, Vec::len)) " attempts" }
        },
        _ => {
            let output = entry.output.to_string();
            let shown: String = output.chars().take(300).collect();
            html! { code { (shown) @if output.chars().count() > 300 { "…" } } }
        }
    }
}

fn step_status(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Completed => "completed",
        StepStatus::Waiting => "waiting",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
    }
}
