//! A request's page: its header, the form for its kind, the page once it is closed, and the
//! confirmation after an answer.

use std::time::SystemTime;

use maud::{Markup, PreEscaped, html};

use super::{Paths, Viewer, ago, describe, id_code, kind_label, layout, status_name, timestamp, until};
use crate::server::{auth, form, markdown};
use crate::{Request, RequestStatus};

/// The hidden fields that carry a form's credentials.
pub(crate) struct Hidden<'a> {
    pub csrf: &'a str,
    pub link: Option<&'a auth::Link>,
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
