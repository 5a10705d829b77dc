//! The JSON-Schema → [`Field`] compiler of typed-input forms: object properties become
//! fields named by JSON pointer (`value/address/city`), enums selects, integers and numbers
//! number inputs, booleans checkboxes, strings text inputs, and whatever a plain field cannot
//! express (arrays, maps, unions) a JSON text area; and reading a submitted form back into
//! JSON through the same fields.

use serde_json::{Map, Value};

use super::{Pairs, Problems, first};

/// One input of a schema form.
#[derive(Debug)]
pub(super) enum Field {
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
    pub(super) fn of(root: &Value, schema: &Value, depth: usize) -> Field {
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
    pub(super) fn defaults(&self, name: &str, given: Option<&Value>, pairs: &mut Pairs) {
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
    pub(super) fn names(&self, name: &str, names: &mut Vec<String>) {
        names.push(name.to_owned());
        if let Field::Object { fields, .. } = self {
            for (property, field, _) in fields {
                field.names(&child(name, property), names);
            }
        }
    }

    /// The JSON value of the field named `name` in `pairs`; `None` when left empty or
    /// unreadable (the reason is added to `problems`, at the field).
    pub(super) fn read(
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
pub(super) fn child(parent: &str, property: &str) -> String {
    format!("{parent}/{}", property.replace('~', "~0").replace('/', "~1"))
}

/// `max_amount` → `Max amount`.
pub(super) fn humanize(property: &str) -> String {
    let spaced = property.replace(['_', '-'], " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => spaced,
    }
}

pub(super) fn option_text(option: &Value) -> String {
    match option {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
