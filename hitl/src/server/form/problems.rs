//! A submitted typed-input form's problems, each a sentence for a person at its field:
//! values the form cannot read, then what the request's JSON Schema refuses.

use jsonschema::JsonType;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::Problems;
use super::schema::{Field, child, humanize, option_text};
use crate::Request;
use crate::feedback::FeedbackKind;

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
pub(super) fn sentence(kind: &ValidationErrorKind, fallback: &str) -> String {
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
