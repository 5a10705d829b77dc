//! The inbox: the requests a responder may answer, newest first.

use std::time::SystemTime;

use maud::{Markup, html};

use super::{Paths, Viewer, ago, id_text, kind_label, layout, timestamp, until};
use crate::{Request, RunInfo};

pub(crate) fn inbox(
    paths: Paths<'_>,
    viewer: &Viewer<'_>,
    requests: &[Request],
    blocked: &[RunInfo],
    now: SystemTime,
) -> Markup {
    let body = html! {
        h1 { "Inbox" }
        @if !blocked.is_empty() {
            div.error #blocked-runs {
                p { (blocked.len()) " " (if blocked.len() == 1 { "run is" } else { "runs are" })
                    " blocked: the deployed code cannot resume them (their requests can still be answered)." }
                ul { @for run in blocked {
                    li { a href=(paths.run(&run.id)) { (id_text(&run.id)) } " (" (run.workflow) "): "
                        (run.blocked.as_ref().map_or("", |blocked| blocked.reason.as_str())) }
                } }
            }
        }
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
