//! The HTML pages, as maud templates: server-rendered, no JavaScript, every value escaped.

use std::time::{Duration, SystemTime};

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::form;
use super::markdown;
use crate::feedback::FeedbackKind;
use crate::run::StepStatus;
use crate::{HistoryEntry, Request, RequestStatus, Response, RunInfo, RunStatus, StepKind};

const STYLE: &str = r#"
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:.6rem 1.5rem;display:flex;gap:1.2rem;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
header .who{margin-left:auto;color:#d0d7de;font-size:.9rem}
header form{margin:0}
header button{background:none;border:1px solid #57606a;color:#d0d7de;border-radius:6px;padding:.15rem .6rem;cursor:pointer}
main{max-width:60rem;margin:1.5rem auto;padding:0 1.5rem}
h1{font-size:1.5rem;margin:.2rem 0 1rem}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:1.2rem 1.5rem;margin-bottom:1rem}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #d0d7de;border-radius:8px}
th,td{text-align:left;padding:.55rem .8rem;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-size:.8rem;text-transform:uppercase;color:#57606a;letter-spacing:.03em}
td a{font-weight:600;color:#0969da;text-decoration:none}
.meta{color:#57606a;font-size:.9rem}
.hint{color:#57606a;font-size:.85rem;margin:.1rem 0 .3rem}
.badge{display:inline-block;border-radius:999px;padding:0 .55rem;font-size:.8rem;font-weight:600;background:#eaeef2;color:#24292f}
.badge.pending,.badge.paused,.badge.running{background:#fff8c5;color:#7d4e00}
.badge.answered,.badge.completed{background:#dafbe1;color:#116329}
.badge.expired,.badge.cancelled,.badge.failed{background:#ffebe9;color:#a40e26}
label{display:block;font-weight:600;margin:.8rem 0 .2rem}
.choice{display:flex;gap:.5rem;align-items:center;margin:.3rem 0}
.choice label{display:inline;font-weight:400;margin:0}
input[type=text],input[type=number],input[type=password],select,textarea{width:100%;padding:.45rem .6rem;border:1px solid #d0d7de;border-radius:6px;font:inherit;background:#fff}
textarea.json{font-family:ui-monospace,monospace}
fieldset{border:1px solid #d0d7de;border-radius:6px;padding:.4rem 1rem .8rem;margin:.8rem 0}
legend{font-weight:600;padding:0 .3rem}
.actions{margin-top:1rem;display:flex;gap:.6rem}
button{font:inherit;font-weight:600;padding:.45rem 1.1rem;border-radius:6px;border:1px solid #1f883d;background:#1f883d;color:#fff;cursor:pointer}
button.reject{background:#cf222e;border-color:#cf222e}
.field-error{color:#82071e;font-size:.9rem;font-weight:600;margin:.2rem 0 0}
[aria-invalid=true]{border-color:#cf222e}
.error{background:#ffebe9;border:1px solid #ff8182;border-radius:6px;padding:.6rem .9rem;margin:.6rem 0;color:#82071e}
.notice{background:#ddf4ff;border:1px solid #54aeff;border-radius:6px;padding:.6rem .9rem;margin:.6rem 0}
.details{border-left:3px solid #d0d7de;padding-left:1rem;margin:1rem 0}
.details pre,pre.json{background:#f6f8fa;padding:.6rem;border-radius:6px;overflow:auto}
ol.timeline{list-style:none;padding-left:1.2rem;border-left:2px solid #d0d7de;margin-left:.4rem}
ol.timeline li{position:relative;margin:0 0 .9rem .6rem}
ol.timeline ol.timeline{margin:.6rem 0 0 .4rem}
ol.timeline li::before{content:"";position:absolute;left:-1.45rem;top:.45rem;width:.7rem;height:.7rem;border-radius:50%;background:#8c959f}
ol.timeline li.completed::before{background:#1f883d}
ol.timeline li.waiting::before{background:#bf8700}
ol.timeline li.failed::before{background:#cf222e}
code{font-family:ui-monospace,monospace;font-size:.88em;background:#eaeef2;border-radius:4px;padding:0 .25rem}
"#;

/// Who is looking, for the header.
pub(crate) enum Viewer<'a> {
    /// Nobody signed in (the login page, errors before credentials).
    Anonymous,
    /// A signed-in browser; its CSRF token for the sign-out form.
    Session { responder: &'a str, csrf: &'a str },
    /// A signed link, valid for one request.
    Link { responder: &'a str },
}

/// Paths under the server's base path.
#[derive(Clone, Copy)]
pub(crate) struct Paths<'a> {
    pub base: &'a str,
}

impl Paths<'_> {
    /// `path` under the base path (the root of a nested router is the base path itself).
    pub(crate) fn to(&self, path: &str) -> String {
        match (self.base, path) {
            ("", _) => path.to_owned(),
            (base, "/") => base.to_owned(),
            (base, _) => format!("{base}{path}"),
        }
    }

    fn request(&self, id: &str) -> String {
        self.to(&format!("/requests/{}", crate::sign::percent_encode(id)))
    }

    fn run(&self, id: &str) -> String {
        self.to(&format!("/runs/{}", crate::sign::percent_encode(id)))
    }
}

pub(crate) fn layout(paths: Paths<'_>, title: &str, viewer: &Viewer<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · hitl" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    @match viewer {
                        Viewer::Session { responder, csrf } => {
                            a href=(paths.to("/")) { "Inbox" }
                            a href=(paths.to("/runs")) { "Runs" }
                            span.who { "Signed in as " strong { (responder) } }
                            form method="post" action=(paths.to("/logout")) {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                        Viewer::Link { responder } => {
                            span { "hitl" }
                            span.who { "Answering as " strong { (responder) } " through a signed link" }
                        }
                        Viewer::Anonymous => { span { "hitl" } }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub(crate) fn login(paths: Paths<'_>, next: &str, csrf: &str, error: Option<&str>) -> Markup {
    let body = html! {
        div.card style="max-width:26rem;margin:3rem auto" {
            h1 { "Sign in" }
            p.meta { "Use the token your operator gave you (" code { "HITL_TOKENS" } " or " code { "HITL_TOKEN" } ")." }
            @if let Some(error) = error { div.error role="alert" { (error) } }
            form method="post" action=(paths.to("/login")) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" autofocus;
                div.actions { button type="submit" { "Sign in" } }
            }
        }
    };
    layout(paths, "Sign in", &Viewer::Anonymous, body)
}

pub(crate) fn inbox(paths: Paths<'_>, viewer: &Viewer<'_>, requests: &[Request], now: SystemTime) -> Markup {
    let body = html! {
        h1 { "Inbox" }
        @if requests.is_empty() {
            div.card { p { "Nothing is waiting for an answer." } }
        } @else {
            p.meta { (requests.len()) " pending " (if requests.len() == 1 { "request" } else { "requests" }) }
            table {
                thead { tr { th { "Workflow" } th { "Request" } th { "Age" } th { "Deadline" } } }
                tbody {
                    @for request in requests {
                        tr {
                            td { (request.workflow) br; a.meta href=(paths.run(&request.run_id)) title=(request.run_id) { (id_text(&request.run_id)) } }
                            td {
                                a href=(paths.request(&request.id)) { (request.prompt) }
                                br;
                                span.meta { (kind_label(request.kind))
                                    @if !request.responders.is_empty() { " · for " (request.responders.join(", ")) }
                                    @if request.quorum > 1 { " · " (request.votes.iter().filter(|vote| vote.approved).count()) " of " (request.quorum) " approvals" }
                                }
                            }
                            td { (timestamp(request.created_at, &ago(now, request.created_at))) }
                            td {
                                @match request.expires_at {
                                    Some(deadline) => { (timestamp(deadline, &until(now, deadline))) }
                                    None => { span.meta { "—" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(paths, "Inbox", viewer, body)
}

/// The hidden fields that carry a form's credentials.
pub(crate) struct Hidden<'a> {
    pub csrf: &'a str,
    pub link: Option<&'a super::auth::Link>,
}

fn request_header(paths: Paths<'_>, viewer: &Viewer<'_>, request: &Request, now: SystemTime) -> Markup {
    html! {
        p.meta {
            span class=(format!("badge {}", status_name(request.status))) { (status_name(request.status)) }
            " " (kind_label(request.kind)) " · workflow " code { (request.workflow) } " · run "
            @if matches!(viewer, Viewer::Session { .. }) {
                a href=(paths.run(&request.run_id)) { (id_code(&request.run_id)) }
            } @else {
                (id_code(&request.run_id))
            }
            " · asked " (timestamp(request.created_at, &ago(now, request.created_at)))
            @if let Some(deadline) = request.expires_at { " · deadline " (timestamp(deadline, &until(now, deadline))) }
        }
        h1 { (request.prompt) }
        @if let Some(details) = &request.details {
            div.details { (PreEscaped(markdown::render(details))) }
        }
    }
}

/// What a form shows: the values in its fields, a message above it, problems at fields.
pub(crate) struct Filled<'a> {
    pub values: &'a [(String, String)],
    pub error: Option<&'a str>,
    pub problems: &'a [(String, String)],
}

pub(crate) fn request_form(
    paths: Paths<'_>,
    viewer: &Viewer<'_>,
    request: &Request,
    hidden: &Hidden<'_>,
    filled: &Filled<'_>,
    now: SystemTime,
) -> Markup {
    let Filled {
        values,
        error,
        problems,
    } = *filled;
    let body = html! {
        div.card {
            (request_header(paths, viewer, request, now))
            @if !request.responders.is_empty() {
                p.meta { "May be answered by " (request.responders.join(", "))
                    @if request.quorum > 1 { "; needs " (request.quorum) " approvals" } }
            }
            @if !request.votes.is_empty() {
                ul.meta { @for vote in &request.votes {
                    li { (vote.responder) (if vote.approved { " approved" } else { " rejected" })
                        @if let Some(comment) = &vote.comment { ": " (comment) } }
                } }
            }
            @if let Some(error) = error { div.error role="alert" #form-error { (error) } }
            form method="post" action=(paths.request(&request.id)) {
                input type="hidden" name="csrf" value=(hidden.csrf);
                @if let Some(link) = hidden.link {
                    input type="hidden" name="as" value=(link.responder);
                    input type="hidden" name="exp" value=(link.expires);
                    input type="hidden" name="sig" value=(link.signature);
                }
                (form::inputs(request, values, problems))
            }
        }
    };
    layout(paths, &request.prompt, viewer, body)
}

/// A request that cannot take this viewer's answer: answered, expired, cancelled, not theirs.
pub(crate) fn request_closed(
    paths: Paths<'_>,
    viewer: &Viewer<'_>,
    request: &Request,
    heading: &str,
    explanation: &str,
    now: SystemTime,
) -> Markup {
    let body = html! {
        div.card {
            (request_header(paths, viewer, request, now))
            div.notice role="status" #closed {
                strong { (heading) } br; (explanation)
            }
            (answer_summary(request))
        }
    };
    layout(paths, heading, viewer, body)
}

pub(crate) fn confirmation(
    paths: Paths<'_>,
    viewer: &Viewer<'_>,
    request: &Request,
    responder: &str,
    now: SystemTime,
) -> Markup {
    let still_open = request.status == RequestStatus::Pending;
    let body = html! {
        div.card #confirmation {
            h1 { @if still_open { "Vote recorded" } @else { "Answer recorded" } }
            p { "Thank you, " strong { (responder) } ". "
                @if still_open {
                    "Your vote on “" (request.prompt) "” was recorded; "
                    (request.votes.iter().filter(|vote| vote.approved).count()) " of " (request.quorum)
                    " approvals so far."
                } @else {
                    "Your answer to “" (request.prompt) "” was recorded and the run resumes."
                }
            }
            (answer_summary(request))
            p.meta { "Recorded " (timestamp(now, "just now")) }
            @if let Viewer::Session { .. } = viewer {
                p { a href=(paths.to("/")) { "Back to the inbox" } " · " a href=(paths.run(&request.run_id)) { "See the run" } }
            }
        }
    };
    layout(paths, "Answer recorded", viewer, body)
}

fn answer_summary(request: &Request) -> Markup {
    let Some(answer) = &request.answer else {
        return html! {};
    };
    html! {
        dl.meta {
            dt { "Answer" }
            dd { (describe(&answer.response)) }
            dt { "By" }
            dd { (answer.responder) " · " (timestamp(answer.answered_at, &humantime::format_rfc3339_seconds(answer.answered_at).to_string())) }
        }
    }
}

fn describe(response: &Response) -> Markup {
    match response {
        Response::Approval { approved, comment } => html! {
            strong { (if *approved { "Approved" } else { "Rejected" }) }
            @if let Some(comment) = comment { " — " (comment) }
        },
        Response::Text { text } => html! { pre.json { (text) } },
        Response::Selection { selected } => html! { strong { (selected) } },
        Response::MultiSelection { selected } => html! { strong { (selected.join(", ")) } },
        Response::Input { value } => {
            html! { pre.json { (serde_json::to_string_pretty(value).unwrap_or_default()) } }
        }
    }
}

pub(crate) fn message(paths: Paths<'_>, viewer: &Viewer<'_>, title: &str, text: &str) -> Markup {
    let body = html! {
        div.card #message {
            h1 { (title) }
            p { (text) }
            @if let Viewer::Session { .. } = viewer { p { a href=(paths.to("/")) { "Back to the inbox" } } }
        }
    };
    layout(paths, title, viewer, body)
}

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
                            span.meta { (step_kind(entry.kind)) " · " (step_status(entry.status)) " · line " (entry.line) " · "
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

fn step_kind(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Task => "task",
        StepKind::Orchestration => "orchestration",
        StepKind::Await => "await",
        StepKind::Named => "step",
        StepKind::Sleep => "sleep",
        StepKind::Channel => "channel",
        StepKind::Value => "value",
        StepKind::Feedback => "feedback",
        StepKind::Notification => "notification",
    }
}

fn step_status(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Completed => "completed",
        StepStatus::Waiting => "waiting",
        StepStatus::Failed => "failed",
    }
}

pub(crate) fn status_name(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Pending => "pending",
        RequestStatus::Answered => "answered",
        RequestStatus::Expired => "expired",
        RequestStatus::Cancelled => "cancelled",
    }
}

fn kind_label(kind: FeedbackKind) -> &'static str {
    match kind {
        FeedbackKind::Approval => "approval",
        FeedbackKind::Text => "text",
        FeedbackKind::Selection => "selection",
        FeedbackKind::MultiSelection => "multiple choice",
        FeedbackKind::Input => "form",
    }
}

/// A `<time>` element: machine-readable RFC 3339, human text.
fn timestamp(time: SystemTime, text: &str) -> Markup {
    let iso = humantime::format_rfc3339_seconds(time).to_string();
    html! { time datetime=(iso) title=(iso) { (text) } }
}

fn ago(now: SystemTime, then: SystemTime) -> String {
    format!("{} ago", span(now.duration_since(then).unwrap_or_default()))
}

fn until(now: SystemTime, then: SystemTime) -> String {
    match then.duration_since(now) {
        Ok(left) => format!("in {}", span(left)),
        Err(_) => "passed".to_owned(),
    }
}

/// `42 s`, `5 min`, `3 h`, `2 d`.
fn span(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86400 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86400),
    }
}

/// Ids up to this many characters are shown whole.
const ID_WHOLE: usize = 24;

/// An id as text: whole if it is short enough, else its start and end around a middle
/// ellipsis (`3f2a1b0c…9e8d`). Never a silent cut: [`id_code`] puts the full id in a title.
fn id_text(id: &str) -> String {
    let count = id.chars().count();
    if count <= ID_WHOLE {
        return id.to_owned();
    }
    let head: String = id.chars().take(12).collect();
    let tail: String = id.chars().skip(count - 6).collect();
    format!("{head}…{tail}")
}

/// An id in `<code>`, with the full id as its title when the text is shortened.
fn id_code(id: &str) -> Markup {
    html! { code title=(id) { (id_text(id)) } }
}
