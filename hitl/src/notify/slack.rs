//! The Slack Block Kit message of a request, and the opt-in shared signed link.

use super::mrkdwn::{escape, mrkdwn};
use crate::model::outbox::OutboxRecord;
use crate::model::view::Request;

/// A Block Kit message: headline, prompt, details (as mrkdwn), and an "Answer" button to
/// the request's page; with [`Notify::signed_link_as`], a second button with the shared
/// signed link.
pub(super) fn slack_message(
    record: &OutboxRecord,
    request: &Request,
    message: Option<&str>,
    link: Option<&str>,
    shared: Option<&crate::links::SignedLink>,
) -> serde_json::Value {
    let headline = message.unwrap_or("Feedback needed");
    let mut blocks = vec![
        serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": headline}}),
        serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", escape(&request.prompt))}}),
    ];
    if let Some(details) = &request.details {
        blocks.push(
            serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn(details)}}),
        );
    }
    blocks.push(
        serde_json::json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": format!("workflow `{}` · run `{}` · request `{}`",
            escape(&request.workflow), escape(&request.run_id), escape(&request.id))}]}),
    );
    if let Some(link) = link {
        // The request's page: whoever clicks signs in as themselves and comes back to it.
        let mut elements = vec![serde_json::json!({
            "type": "button", "text": {"type": "plain_text", "text": "Answer"},
            "style": "primary", "url": link, "action_id": format!("open-{}", request.id)})];
        if let Some(shared) = shared {
            elements.push(serde_json::json!({
                "type": "button",
                "text": {"type": "plain_text", "text": format!("Answer as {} (shared link)", shared.responder)},
                "url": shared.url,
                "action_id": format!("answer-{}-{}", request.id, shared.responder)}));
        }
        blocks.push(serde_json::json!({"type": "actions", "elements": elements}));
    }
    serde_json::json!({
        "text": format!("{headline}: {}", escape(&request.prompt)),
        "blocks": blocks,
        "metadata": {"event_type": "hitl_feedback_requested", "event_payload": {"idempotency_id": record.id}},
    })
}
