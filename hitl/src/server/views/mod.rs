//! The HTML pages, as maud templates: server-rendered, no JavaScript, every value escaped.
//!
//! This module holds what every page shares (who is looking, the paths under the base path,
//! how statuses, times and ids read); each page family has its own file: `layout` (the
//! frame, sign-in and message pages), `inbox`, `request` (a request's page, its form and
//! confirmation) and `run` (the runs list and a run's timeline).

mod inbox;
mod layout;
mod request;
mod run;

use std::time::{Duration, SystemTime};

use maud::{Markup, html};

pub(crate) use inbox::inbox;
pub(crate) use layout::{layout, login, message};
pub(crate) use request::{Filled, Hidden, confirmation, request_closed, request_form};
pub(crate) use run::{run, runs};

use crate::feedback::FeedbackKind;
use crate::{RequestStatus, Response};

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

    pub(crate) fn run(&self, id: &str) -> String {
        self.to(&format!("/runs/{}", crate::sign::percent_encode(id)))
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
