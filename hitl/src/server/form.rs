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

use jsonschema::JsonType;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use maud::{Markup, html};
use serde_json::{Map, Value};

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

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
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

/// What is wrong with a submitted typed-input form, each problem at its field as a
/// sentence: values the form cannot read (`Must be a whole number`), then what the
/// request's JSON Schema refuses (`Size is required`, `Must be one of S, M, L`). Empty for
/// the other kinds and for a form the schema accepts.
pub(crate) fn problems(request: &Request, pairs: &[(String, String)]) -> Problems {
    let mut problems = Problems::new();
    if request.kind != FeedbackKind::Input {
        return problems;
    }
    let schema = request.schema.clone().unwrap_or(Value::Bool(true));
    let field = Field::of(&schema, &schema, 0);
    let value = field
        .read("value", true, pairs, &mut problems)
        .unwrap_or(Value::Null);
    if !problems.is_empty() {
        return problems;
    }
    // A schema that does not compile is the engine's to report.
    let Ok(validator) = jsonschema::validator_for(&schema) else {
        return problems;
    };
    let mut names = Vec::new();
    field.names("value", &mut names);
    for error in validator.iter_errors(&value) {
        let at = format!("value{}", error.instance_path().as_str());
        let (at, sentence) = match error.kind() {
            ValidationErrorKind::Required { property } => {
                let property = option_text(property);
                let sentence = format!("{} is required", humanize(&property));
                (child(&at, &property), sentence)
            }
            kind => (at, sentence(kind, &error.to_string())),
        };
        let at = nearest(&names, at);
        if !problems.contains(&(at.clone(), sentence.clone())) {
            problems.push((at, sentence));
        }
    }
    // Top to bottom, as the person reads the form.
    problems.sort_by_key(|(at, _)| names.iter().position(|name| name == at));
    problems
}

/// `at`, or the closest enclosing field the form has (a problem inside a JSON text area
/// goes to the text area).
fn nearest(names: &[String], mut at: String) -> String {
    while !names.contains(&at) {
        match at.rfind('/') {
            Some(end) => at.truncate(end),
            None => return "value".to_owned(),
        }
    }
    at
}

/// A JSON Schema error as a sentence for a person, about the field it is shown at.
fn sentence(kind: &ValidationErrorKind, fallback: &str) -> String {
    use ValidationErrorKind as K;
    let plural = |count: u64, one: &str| {
        if count == 1 {
            format!("{count} {one}")
        } else {
            format!("{count} {one}s")
        }
    };
    match kind {
        K::MaxLength { limit } => format!("Must be at most {}", plural(*limit, "character")),
        K::MinLength { limit: 1 } => "Must not be empty".to_owned(),
        K::MinLength { limit } => format!("Must be at least {}", plural(*limit, "character")),
        K::Maximum { limit } => format!("Must be at most {limit}"),
        K::Minimum { limit } => format!("Must be at least {limit}"),
        K::ExclusiveMaximum { limit } => format!("Must be less than {limit}"),
        K::ExclusiveMinimum { limit } => format!("Must be more than {limit}"),
        K::MultipleOf { multiple_of } => format!("Must be a multiple of {multiple_of}"),
        K::MaxItems { limit } => format!("Must have at most {}", plural(*limit, "item")),
        K::MinItems { limit } => format!("Must have at least {}", plural(*limit, "item")),
        K::UniqueItems => "Must not list the same item twice".to_owned(),
        K::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|options| options.iter().map(option_text).collect())
                .unwrap_or_default();
            format!("Must be one of {}", options.join(", "))
        }
        K::Constant { expected_value } => format!("Must be {}", option_text(expected_value)),
        K::Pattern { pattern } => format!("Must match the pattern `{pattern}`"),
        K::Format { format } => format!("Must be a valid {format}"),
        K::Type { kind } => {
            let types: Vec<JsonType> = match kind {
                TypeKind::Single(single) => vec![*single],
                TypeKind::Multiple(set) => set.iter().collect(),
            };
            let words: Vec<&str> = types
                .iter()
                .filter(|json_type| **json_type != JsonType::Null)
                .map(|json_type| match json_type {
                    JsonType::Integer => "a whole number",
                    JsonType::Number => "a number",
                    JsonType::String => "text",
                    JsonType::Boolean => "yes or no",
                    JsonType::Array => "a list",
                    JsonType::Object => "a set of fields",
                    JsonType::Null => "empty",
                })
                .collect();
            match words.as_slice() {
                [] => "Must be left empty".to_owned(),
                [only] => format!("Must be {only}"),
                many => format!("Must be {}", many.join(" or ")),
            }
        }
        K::AdditionalProperties { unexpected } => {
            format!("Has fields this form does not know: {}", unexpected.join(", "))
        }
        K::AnyOf { .. } | K::OneOfNotValid { .. } => "Does not match any of the accepted forms".to_owned(),
        K::OneOfMultipleValid { .. } => "Matches more than one of the accepted forms".to_owned(),
        _ => capitalize(fallback),
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One input of a schema form.
#[derive(Debug)]
enum Field {
    Text {
        description: Option<String>,
        default: Option<Value>,
    },
    Number {
        integer: bool,
        description: Option<String>,
        default: Option<Value>,
    },
    Bool {
        description: Option<String>,
        default: Option<Value>,
    },
    Choice {
        options: Vec<Value>,
        nullable: bool,
        description: Option<String>,
        default: Option<Value>,
    },
    Object {
        description: Option<String>,
        /// Property name, its field, whether required.
        fields: Vec<(String, Field, bool)>,
    },
    Json {
        description: Option<String>,
        default: Option<Value>,
    },
}

/// How deep nested objects are turned into fields before falling back to JSON.
const MAX_DEPTH: usize = 6;

impl Field {
    /// The field for `schema` (`root` holds the `$defs` that `$ref`s point into).
    fn of(root: &Value, schema: &Value, depth: usize) -> Field {
        let schema = resolve(root, schema, 0);
        let description = schema
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let default = schema.get("default").cloned();
        let json = |description: Option<String>, default: Option<Value>| Field::Json { description, default };
        if depth > MAX_DEPTH {
            return json(description, default);
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            return choice(options.clone(), description, default);
        }
        if let Some(value) = schema.get("const") {
            return choice(vec![value.clone()], description, default);
        }
        for union in ["oneOf", "anyOf"] {
            let Some(branches) = schema.get(union).and_then(Value::as_array) else {
                continue;
            };
            let branches: Vec<&Value> = branches.iter().map(|branch| resolve(root, branch, 0)).collect();
            let nullable = branches.iter().any(|branch| is_null(branch));
            let rest: Vec<&Value> = branches.into_iter().filter(|branch| !is_null(branch)).collect();
            if let [only] = rest.as_slice() {
                let mut field = Field::of(root, only, depth);
                field.set_description(description);
                field.set_default(default);
                if nullable && let Field::Choice { nullable, .. } = &mut field {
                    *nullable = true;
                }
                return field;
            }
            let constants: Option<Vec<Value>> = rest
                .iter()
                .map(|branch| {
                    branch.get("const").cloned().or_else(|| match branch.get("enum") {
                        Some(Value::Array(values)) if values.len() == 1 => Some(values[0].clone()),
                        _ => None,
                    })
                })
                .collect();
            return match constants {
                Some(mut options) if !options.is_empty() => {
                    if nullable {
                        options.push(Value::Null);
                    }
                    choice(options, description, default)
                }
                _ => json(description, default),
            };
        }
        if let Some(Value::Array(parts)) = schema.get("allOf")
            && let [only] = parts.as_slice()
        {
            let mut field = Field::of(root, only, depth);
            field.set_description(description);
            field.set_default(default);
            return field;
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(name)) => vec![name.as_str()],
            Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
            _ if schema.get("properties").is_some() => vec!["object"],
            _ => Vec::new(),
        };
        let concrete: Vec<&str> = types.iter().copied().filter(|name| *name != "null").collect();
        match concrete.as_slice() {
            ["string"] => Field::Text { description, default },
            ["integer"] => Field::Number {
                integer: true,
                description,
                default,
            },
            ["number"] => Field::Number {
                integer: false,
                description,
                default,
            },
            ["boolean"] => Field::Bool { description, default },
            ["object"] => match schema.get("properties").and_then(Value::as_object) {
                Some(properties)
                    if schema
                        .get("additionalProperties")
                        .is_none_or(|extra| extra == &Value::Bool(false)) =>
                {
                    let required: Vec<&str> = schema
                        .get("required")
                        .and_then(Value::as_array)
                        .map(|names| names.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    Field::Object {
                        description,
                        fields: properties
                            .iter()
                            .map(|(name, property)| {
                                (
                                    name.clone(),
                                    Field::of(root, property, depth + 1),
                                    required.contains(&name.as_str()),
                                )
                            })
                            .collect(),
                    }
                }
                _ => json(description, default),
            },
            _ => json(description, default),
        }
    }

    fn set_description(&mut self, outer: Option<String>) {
        if outer.is_none() {
            return;
        }
        match self {
            Field::Text { description, .. }
            | Field::Number { description, .. }
            | Field::Bool { description, .. }
            | Field::Choice { description, .. }
            | Field::Object { description, .. }
            | Field::Json { description, .. } => *description = outer,
        }
    }

    fn set_default(&mut self, outer: Option<Value>) {
        if outer.is_none() {
            return;
        }
        match self {
            Field::Text { default, .. }
            | Field::Number { default, .. }
            | Field::Bool { default, .. }
            | Field::Choice { default, .. }
            | Field::Json { default, .. } => *default = outer,
            Field::Object { .. } => {}
        }
    }

    /// Pre-fills `pairs` from `given` (the request's default), else the schema's defaults.
    fn defaults(&self, name: &str, given: Option<&Value>, pairs: &mut Pairs) {
        let push = |pairs: &mut Pairs, text: String| pairs.push((name.to_owned(), text));
        match self {
            Field::Object { fields, .. } => {
                for (property, field, _) in fields {
                    let inner = given.and_then(|value| value.get(property));
                    field.defaults(&child(name, property), inner, pairs);
                }
            }
            Field::Text { default, .. } | Field::Number { default, .. } | Field::Choice { default, .. } => {
                match given.or(default.as_ref()) {
                    Some(Value::String(text)) => push(pairs, text.clone()),
                    Some(Value::Null) | None => {}
                    Some(other) => push(pairs, other.to_string()),
                }
            }
            Field::Bool { default, .. } => {
                if given.or(default.as_ref()) == Some(&Value::Bool(true)) {
                    push(pairs, "true".to_owned());
                }
            }
            Field::Json { default, .. } => {
                if let Some(value) = given.or(default.as_ref()) {
                    push(pairs, serde_json::to_string_pretty(value).unwrap_or_default());
                }
            }
        }
    }

    /// The names of the fields the form renders, parents before their children.
    fn names(&self, name: &str, names: &mut Vec<String>) {
        names.push(name.to_owned());
        if let Field::Object { fields, .. } = self {
            for (property, field, _) in fields {
                field.names(&child(name, property), names);
            }
        }
    }

    fn render(
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

    /// The JSON value of the field named `name` in `pairs`; `None` when left empty or
    /// unreadable (the reason is added to `problems`, at the field).
    fn read(
        &self,
        name: &str,
        required: bool,
        pairs: &[(String, String)],
        problems: &mut Problems,
    ) -> Option<Value> {
        let text = first(pairs, name).map(str::trim);
        let empty = text.is_none_or(str::is_empty);
        let mut problem = |sentence: String| {
            problems.push((name.to_owned(), sentence));
            None
        };
        match self {
            Field::Object { fields, .. } => {
                let mut object = Map::new();
                for (property, field, required) in fields {
                    if let Some(value) = field.read(&child(name, property), *required, pairs, problems) {
                        object.insert(property.clone(), value);
                    }
                }
                Some(Value::Object(object))
            }
            Field::Bool { .. } => Some(Value::Bool(matches!(text, Some("true" | "on")))),
            _ if empty => match self {
                // An empty required text is the empty string; anything else empty is absent.
                Field::Text { .. } if required => Some(Value::String(String::new())),
                _ => None,
            },
            Field::Text { .. } => Some(Value::String(first(pairs, name).unwrap_or("").to_owned())),
            Field::Number { integer, .. } => {
                let text = text.unwrap_or("");
                let number = if *integer {
                    text.parse::<i64>()
                        .map(Value::from)
                        .or_else(|_| text.parse::<u64>().map(Value::from))
                        .ok()
                } else {
                    text.parse::<f64>()
                        .ok()
                        .filter(|number| number.is_finite())
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                };
                match number {
                    Some(number) => Some(number),
                    None if *integer => problem(format!("Must be a whole number (`{text}` is not)")),
                    None => problem(format!("Must be a number (`{text}` is not)")),
                }
            }
            Field::Choice { options, .. } => {
                let text = text.unwrap_or("");
                let shown: Vec<&Value> = options.iter().filter(|option| !option.is_null()).collect();
                match shown.iter().find(|option| option_text(option) == text) {
                    Some(option) => Some((*option).clone()),
                    None => problem(format!(
                        "Must be one of {}",
                        shown
                            .iter()
                            .map(|option| option_text(option))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
            Field::Json { .. } => match serde_json::from_str(text.unwrap_or("")) {
                Ok(value) => Some(value),
                Err(error) => problem(format!("Must be valid JSON ({error})")),
            },
        }
    }
}

fn choice(options: Vec<Value>, description: Option<String>, default: Option<Value>) -> Field {
    let nullable = options.iter().any(Value::is_null);
    Field::Choice {
        options,
        nullable,
        description,
        default,
    }
}

fn is_null(schema: &Value) -> bool {
    schema.get("type") == Some(&Value::String("null".to_owned())) || schema.get("const") == Some(&Value::Null)
}

/// Follows a local `$ref` (`#/$defs/Name`), a few levels at most.
fn resolve<'a>(root: &'a Value, schema: &'a Value, depth: usize) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) if depth < 8 => match reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
        {
            Some(target) => resolve(root, target, depth + 1),
            None => schema,
        },
        _ => schema,
    }
}

/// The field name of `property` inside `parent`, JSON-pointer style.
fn child(parent: &str, property: &str) -> String {
    format!("{parent}/{}", property.replace('~', "~0").replace('/', "~1"))
}

/// An HTML id for a field name.
fn field_id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// `max_amount` → `Max amount`.
fn humanize(property: &str) -> String {
    let spaced = property.replace(['_', '-'], " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => spaced,
    }
}

fn option_text(option: &Value) -> String {
    match option {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input_request(schema: Value, default: Option<Value>) -> Request {
        serde_json::from_value(json!({
            "id": "r", "run_id": "run", "workflow": "w", "step_id": "s", "kind": "input",
            "prompt": "p", "quorum": 1, "status": "pending", "created_at": "2026-01-01T00:00:00Z",
            "location": "x.rs:1", "schema": schema, "default": default,
        }))
        .unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Pairs {
        list.iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn refund_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "amount": {"type": "integer", "minimum": 0, "description": "In cents"},
                "reason": {"type": "string"},
                "note": {"type": ["string", "null"]},
                "urgent": {"type": "boolean", "default": true},
                "currency": {"$ref": "#/$defs/Currency"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "ratio": {"type": "number"},
            },
            "required": ["amount", "reason", "currency", "urgent"],
            "$defs": {"Currency": {"type": "string", "enum": ["EUR", "USD"]}},
        })
    }

    #[test]
    fn a_schema_form_reads_back_into_json() {
        let request = input_request(refund_schema(), None);
        let submitted = pairs(&[
            ("value/amount", "1200"),
            ("value/reason", "late"),
            ("value/note", ""),
            ("value/currency", "USD"),
            ("value/tags", "[\"a\"]"),
            ("value/ratio", "0.5"),
        ]);
        let Response::Input { value } = parse(&request, &submitted).unwrap() else {
            panic!()
        };
        assert_eq!(
            value,
            json!({"amount": 1200, "reason": "late", "urgent": false, "currency": "USD", "tags": ["a"], "ratio": 0.5})
        );
    }

    #[test]
    fn defaults_are_pre_filled_and_rendered() {
        let request = input_request(refund_schema(), Some(json!({"amount": 5, "currency": "EUR"})));
        let values = initial_values(&request);
        assert!(values.contains(&("value/amount".to_owned(), "5".to_owned())));
        assert!(values.contains(&("value/urgent".to_owned(), "true".to_owned())));
        let html = inputs(&request, &values, &[]).into_string();
        assert!(
            html.contains(r#"<select id="value-currency" name="value/currency">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<option value="EUR" selected>EUR</option>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"type="number" id="value-amount" name="value/amount" value="5" step="1""#),
            "{html}"
        );
        assert!(
            html.contains(r#"name="value/urgent" value="true" checked"#),
            "{html}"
        );
        assert!(html.contains(r#"<textarea class="json""#), "{html}");
    }

    #[test]
    fn bad_numbers_and_choices_are_validation_errors() {
        let request = input_request(refund_schema(), None);
        for (field, text) in [
            ("value/amount", "12x"),
            ("value/currency", "GBP"),
            ("value/tags", "["),
        ] {
            let error = parse(&request, &pairs(&[(field, text)])).unwrap_err();
            assert_eq!(
                error.status,
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "{field}"
            );
        }
    }

    /// Declared out of alphabetical order on purpose.
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Parcel {
        zone: String,
        #[schemars(length(max = 20))]
        label: String,
        size: Size,
        weight: u32,
        address: Address,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    enum Size {
        S,
        M,
        L,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Address {
        street: String,
        city: String,
    }

    fn parcel_request() -> Request {
        input_request(serde_json::to_value(schemars::schema_for!(Parcel)).unwrap(), None)
    }

    #[test]
    fn fields_come_in_declaration_order_nested_ones_too() {
        let html = inputs(&parcel_request(), &[], &[]).into_string();
        let at = |name: &str| {
            html.find(&format!(r#"name="{name}""#))
                .unwrap_or_else(|| panic!("no field {name}: {html}"))
        };
        let order = [
            "value/zone",
            "value/label",
            "value/size",
            "value/weight",
            "value/address/street",
            "value/address/city",
        ];
        for pair in order.windows(2) {
            assert!(
                at(pair[0]) < at(pair[1]),
                "{} before {}: {html}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn schema_problems_are_sentences_at_their_fields() {
        let request = parcel_request();
        let submitted = pairs(&[
            ("value/zone", "north"),
            ("value/label", "a label far longer than twenty"),
            ("value/size", ""),
            ("value/weight", "3"),
            ("value/address/street", "Main St"),
            ("value/address/city", "Oslo"),
        ]);
        let found = problems(&request, &submitted);
        assert_eq!(
            found,
            [
                (
                    "value/label".to_owned(),
                    "Must be at most 20 characters".to_owned()
                ),
                ("value/size".to_owned(), "Size is required".to_owned()),
            ],
        );
        let html = inputs(&request, &submitted, &found).into_string();
        let label = html.find(r#"name="value/label""#).unwrap();
        let message = html.find("Must be at most 20 characters").unwrap();
        let size = html.find(r#"name="value/size""#).unwrap();
        assert!(
            label < message && message < size,
            "the message sits at its field: {html}"
        );
        assert!(html.contains(r#"aria-invalid="true""#), "{html}");
        assert!(!html.contains("maxLength"), "no schema text: {html}");

        // What the form cannot even read is said at the field too.
        let mut unreadable = submitted.clone();
        unreadable[3].1 = "3.5kg".to_owned();
        unreadable[2].1 = "XL".to_owned();
        assert_eq!(
            problems(&request, &unreadable),
            [
                ("value/size".to_owned(), "Must be one of S, M, L".to_owned()),
                (
                    "value/weight".to_owned(),
                    "Must be a whole number (`3.5kg` is not)".to_owned()
                ),
            ],
        );
    }

    #[test]
    fn each_schema_keyword_reads_as_a_sentence() {
        use serde_json::json;
        let cases = [
            (json!({"type": "integer"}), json!(1.5), "Must be a whole number"),
            (
                json!({"type": "string", "minLength": 3}),
                json!("ab"),
                "Must be at least 3 characters",
            ),
            (
                json!({"type": "string", "minLength": 1}),
                json!(""),
                "Must not be empty",
            ),
            (
                json!({"type": "integer", "maximum": 10}),
                json!(11),
                "Must be at most 10",
            ),
            (
                json!({"type": "integer", "minimum": 1}),
                json!(0),
                "Must be at least 1",
            ),
            (json!({"enum": ["a", "b"]}), json!("c"), "Must be one of a, b"),
            (
                json!({"type": "string", "pattern": "^[A-Z]+$"}),
                json!("x"),
                "Must match the pattern `^[A-Z]+$`",
            ),
            (
                json!({"type": "array", "maxItems": 1}),
                json!([1, 2]),
                "Must have at most 1 item",
            ),
        ];
        for (schema, value, expected) in cases {
            let validator = jsonschema::validator_for(&schema).unwrap();
            let error = validator.iter_errors(&value).next().unwrap();
            assert_eq!(sentence(error.kind(), &error.to_string()), expected, "{schema}");
        }
    }

    #[test]
    fn documented_enums_become_selects() {
        // schemars writes a documented unit enum as `oneOf` of `const`s.
        let schema = json!({"oneOf": [
            {"type": "string", "const": "small", "description": "S"},
            {"type": "string", "const": "large", "description": "L"},
        ]});
        let request = input_request(schema, None);
        let html = inputs(&request, &[], &[]).into_string();
        assert!(html.contains(r#"<option value="large">large</option>"#), "{html}");
        let Response::Input { value } = parse(&request, &pairs(&[("value", "large")])).unwrap() else {
            panic!()
        };
        assert_eq!(value, json!("large"));
    }
}
