//! A typed-input form's [`Field`]s as HTML inputs, each with its problems beside it.

use maud::{Markup, html};

use super::first;
use super::schema::{Field, child, humanize, option_text};

impl Field {
    /// The input of the field named `name`, showing `values` and, at the field, `problems`.
    pub(super) fn render(
        &self,
        name: &str,
        label: &str,
        required: bool,
        values: &[(String, String)],
        problems: &[(String, String)],
    ) -> Markup {
        let current = first(values, name).unwrap_or("");
        let id = field_id(name);
        let errors = html! {
            @for (index, (_, sentence)) in problems.iter().filter(|(at, _)| at == name).enumerate() {
                p.field-error id=(format!("{id}-error-{index}")) { (sentence) }
            }
        };
        let invalid = problems.iter().any(|(at, _)| at == name);
        let label_markup = html! {
            label for=(id) {
                (label)
                @if !required { " " span.hint { "(optional)" } }
            }
        };
        match self {
            Field::Object { description, fields } => html! {
                fieldset.object {
                    @if name != "value" { legend { (label) } }
                    @if let Some(description) = description { p.hint { (description) } }
                    (errors)
                    @for (property, field, required) in fields {
                        (field.render(&child(name, property), &humanize(property), *required, values, problems))
                    }
                }
            },
            Field::Text { description, .. } => html! {
                div.field {
                    (label_markup)
                    @if let Some(description) = description { p.hint { (description) } }
                    input type="text" id=(id) name=(name) value=(current) aria-invalid=[invalid.then_some("true")];
                    (errors)
                }
            },
            Field::Number {
                integer, description, ..
            } => html! {
                div.field {
                    (label_markup)
                    @if let Some(description) = description { p.hint { (description) } }
                    input type="number" id=(id) name=(name) value=(current) step=(if *integer { "1" } else { "any" })
                        aria-invalid=[invalid.then_some("true")];
                    (errors)
                }
            },
            Field::Bool { description, .. } => html! {
                div.field.choice {
                    input type="checkbox" id=(id) name=(name) value="true" checked[current == "true" || current == "on"];
                    label for=(id) { (label) }
                    @if let Some(description) = description { p.hint { (description) } }
                    (errors)
                }
            },
            Field::Choice {
                options,
                nullable,
                description,
                ..
            } => html! {
                div.field {
                    (label_markup)
                    @if let Some(description) = description { p.hint { (description) } }
                    select id=(id) name=(name) aria-invalid=[invalid.then_some("true")] {
                        @if *nullable || !required || current.is_empty() {
                            option value="" selected[current.is_empty()] { "—" }
                        }
                        @for option in options.iter().filter(|option| !option.is_null()) {
                            @let text = option_text(option);
                            option value=(text) selected[current == text] { (text) }
                        }
                    }
                    (errors)
                }
            },
            Field::Json { description, .. } => html! {
                div.field {
                    (label_markup)
                    p.hint { (description.as_deref().unwrap_or("")) @if description.is_some() { " — " } "JSON" }
                    textarea.json id=(id) name=(name) rows="4" aria-invalid=[invalid.then_some("true")] { (current) }
                    (errors)
                }
            },
        }
    }
}

/// An HTML id for a field name.
fn field_id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
