//! The form each kind of request calls for, and reading a submitted form back into a
//! [`Response`].
//!
//! A typed input's form is generated from its JSON Schema: object properties become fields
//! named by JSON pointer (`value/address/city`), enums become selects, integers and numbers
//! number inputs, booleans checkboxes, strings text inputs; whatever a plain field cannot
//! express (arrays, maps, unions) becomes a JSON text area. Defaults — the request's default
//! value, else the schema's `default` — are pre-filled. A submitted form is turned back into
//! JSON, checked here against the same JSON Schema so that each problem is a sentence at
//! its field (`Size is required`, `Must be at most 20 characters`), and validated by the
//! engine like any other answer.

mod problems;
mod render;
mod schema;
#[cfg(test)]
mod tests;

use maud::{Markup, html};
use serde_json::Value;

pub(crate) use problems::problems;
use schema::Field;

use super::error::ApiError;
use crate::feedback::FeedbackKind;
use crate::{Request, Response};

/// Submitted (or pre-filled) form fields, in order.
pub(crate) type Pairs = Vec<(String, String)>;

/// Problems of a typed-input form: the field name (`value/size`) and a sentence.
pub(crate) type Problems = Vec<(String, String)>;

/// Fields that carry credentials, not the answer.
const CREDENTIAL_FIELDS: [&str; 4] = ["csrf", "as", "exp", "sig"];

/// The answer fields of a submission (credentials removed), to re-render a form.
pub(crate) fn answer_fields(pairs: &[(String, String)]) -> Pairs {
    pairs
        .iter()
        .filter(|(key, _)| !CREDENTIAL_FIELDS.contains(&key.as_str()))
        .cloned()
        .collect()
}

pub(super) fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn all<'a>(pairs: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    pairs
        .iter()
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The fields a request's form starts with: its default answer.
pub(crate) fn initial_values(request: &Request) -> Pairs {
    let mut pairs = Pairs::new();
    match request.kind {
        FeedbackKind::Approval => {}
        FeedbackKind::Text | FeedbackKind::Selection => {
            if let Some(Value::String(text)) = &request.default {
                let name = if request.kind == FeedbackKind::Text {
                    "text"
                } else {
                    "selected"
                };
                pairs.push((name.to_owned(), text.clone()));
            }
        }
        FeedbackKind::MultiSelection => {
            if let Some(Value::Array(items)) = &request.default {
                for item in items.iter().filter_map(Value::as_str) {
                    pairs.push(("selected".to_owned(), item.to_owned()));
                }
            }
        }
        FeedbackKind::Input => {
            let schema = request.schema.clone().unwrap_or(Value::Bool(true));
            let field = Field::of(&schema, &schema, 0);
            field.defaults("value", request.default.as_ref(), &mut pairs);
        }
    }
    pairs
}

/// The answer inputs of `request`'s form, showing `values` and, at their fields, `problems`.
pub(crate) fn inputs(
    request: &Request,
    values: &[(String, String)],
    problems: &[(String, String)],
) -> Markup {
    let constraints = &request.constraints;
    match request.kind {
        FeedbackKind::Approval => html! {
            label for="comment" { "Comment " span.hint { "(optional)" } }
            textarea #comment name="comment" rows="3" { (first(values, "comment").unwrap_or("")) }
            div.actions {
                button.approve type="submit" name="decision" value="approve" { "Approve" }
                button.reject type="submit" name="decision" value="reject" { "Reject" }
            }
        },
        FeedbackKind::Text => {
            let mut hints = Vec::new();
            match (constraints.min_len, constraints.max_len) {
                (Some(min), Some(max)) => hints.push(format!("{min} to {max} characters")),
                (Some(min), None) => hints.push(format!("at least {min} characters")),
                (None, Some(max)) => hints.push(format!("at most {max} characters")),
                (None, None) => {}
            }
            if let Some(pattern) = &constraints.pattern {
                hints.push(format!("must match `{pattern}`"));
            }
            html! {
                label for="text" { "Your answer" }
                @if !hints.is_empty() { p.hint #text-hint { (hints.join("; ")) } }
                textarea #text name="text" rows="5" { (first(values, "text").unwrap_or("")) }
                div.actions { button type="submit" { "Send" } }
            }
        }
        FeedbackKind::Selection => html! {
            fieldset {
                legend { "Choose one" }
                @for (index, option) in request.options.iter().enumerate() {
                    @let id = format!("option-{index}");
                    div.choice {
                        input type="radio" id=(id) name="selected" value=(option)
                            checked[first(values, "selected") == Some(option.as_str())];
                        label for=(id) { (option) }
                    }
                }
            }
            div.actions { button type="submit" { "Send" } }
        },
        FeedbackKind::MultiSelection => {
            let hint = match (constraints.min_count, constraints.max_count) {
                (Some(min), Some(max)) => Some(format!("Choose {min} to {max}")),
                (Some(min), None) => Some(format!("Choose at least {min}")),
                (None, Some(max)) => Some(format!("Choose at most {max}")),
                (None, None) => None,
            };
            html! {
                fieldset {
                    legend { "Choose any" @if let Some(hint) = &hint { " " span.hint { "(" (hint) ")" } } }
                    @for (index, option) in request.options.iter().enumerate() {
                        @let id = format!("option-{index}");
                        div.choice {
                            input type="checkbox" id=(id) name="selected" value=(option)
                                checked[all(values, "selected").any(|selected| selected == option)];
                            label for=(id) { (option) }
                        }
                    }
                }
                div.actions { button type="submit" { "Send" } }
            }
        }
        FeedbackKind::Input => {
            let schema = request.schema.clone().unwrap_or(Value::Bool(true));
            let field = Field::of(&schema, &schema, 0);
            html! {
                (field.render("value", "Value", true, values, problems))
                div.actions { button type="submit" { "Send" } }
            }
        }
    }
}

/// Reads a submitted form as an answer to `request`. A form that is not one of this
/// request's forms is 400; a value that cannot be what the field asks for is 422.
pub(crate) fn parse(request: &Request, pairs: &[(String, String)]) -> Result<Response, ApiError> {
    match request.kind {
        FeedbackKind::Approval => {
            let approved = match first(pairs, "decision") {
                Some("approve") => true,
                Some("reject") => false,
                _ => return Err(ApiError::bad_request("the form must say `approve` or `reject`")),
            };
            let comment = first(pairs, "comment")
                .map(str::trim)
                .filter(|comment| !comment.is_empty())
                .map(str::to_owned);
            Ok(Response::Approval { approved, comment })
        }
        FeedbackKind::Text => match first(pairs, "text") {
            Some(text) => Ok(Response::text(text.replace("\r\n", "\n"))),
            None => Err(ApiError::bad_request("the form has no `text` field")),
        },
        FeedbackKind::Selection => match first(pairs, "selected") {
            Some(selected) => Ok(Response::select(selected)),
            None => Err(ApiError::invalid_answer("choose one of the options")),
        },
        FeedbackKind::MultiSelection => Ok(Response::select_all(all(pairs, "selected"))),
        FeedbackKind::Input => {
            let schema = request.schema.clone().unwrap_or(Value::Bool(true));
            let field = Field::of(&schema, &schema, 0);
            let mut problems = Problems::new();
            let value = field
                .read("value", true, pairs, &mut problems)
                .unwrap_or(Value::Null);
            match problems.first() {
                None => Ok(Response::value(value)),
                Some((_, sentence)) => Err(ApiError::invalid_answer(sentence.clone())),
            }
        }
    }
}
