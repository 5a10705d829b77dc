//! The frame of every page (head, style sheet, header with who is signed in), and the
//! pages that are nothing but the frame and a card: sign-in and messages.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{Paths, Viewer};

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
.badge.expired,.badge.cancelled,.badge.failed,.badge.blocked{background:#ffebe9;color:#a40e26}
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
