//! Validating an answer against its request, before anything is stored.
//!
//! Everything needed is stored with the request (kind, options, constraints, JSON Schema),
//! so an answer is validated the same way after a restart and in another process.

use serde_json::Value;

use super::{RequestSpec, Response};

/// Why an answer does not fit its request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerProblem {
    /// The answer is for another kind of request.
    #[error("this is a {expected} request, but the answer is for a {got} request")]
    WrongKind {
        /// The request's kind.
        expected: &'static str,
        /// The answer's kind.
        got: &'static str,
    },
    /// A selected option is not among those offered.
    #[error("`{option}` is not one of the options offered: {}", .offered.join(", "))]
    OptionNotOffered {
        /// The option given.
        option: String,
        /// The options offered.
        offered: Vec<String>,
    },
    /// An option was selected twice.
    #[error("`{0}` is selected more than once")]
    DuplicateSelection(String),
    /// Fewer options than `min_count`.
    #[error("select at least {min} options ({got} selected)")]
    TooFewSelections {
        /// The minimum.
        min: usize,
        /// How many were selected.
        got: usize,
    },
    /// More options than `max_count`.
    #[error("select at most {max} options ({got} selected)")]
    TooManySelections {
        /// The maximum.
        max: usize,
        /// How many were selected.
        got: usize,
    },
    /// Text shorter than `min_len`.
    #[error("the text must be at least {min} characters long ({got} given)")]
    TextTooShort {
        /// The minimum.
        min: usize,
        /// The length given.
        got: usize,
    },
    /// Text longer than `max_len`.
    #[error("the text must be at most {max} characters long ({got} given)")]
    TextTooLong {
        /// The maximum.
        max: usize,
        /// The length given.
        got: usize,
    },
    /// Text not matching `pattern`.
    #[error("the text must match the pattern `{pattern}`")]
    PatternMismatch {
        /// The pattern.
        pattern: String,
    },
    /// A typed input that violates the request's JSON Schema.
    #[error("the value does not match the expected input: {0}")]
    SchemaViolation(String),
}

/// Checks `response` against `spec`; returns the response normalized (selections in option
/// order).
pub(crate) fn validate(spec: &RequestSpec, response: &Response) -> Result<Response, AnswerProblem> {
    if response.kind() != spec.kind {
        return Err(AnswerProblem::WrongKind {
            expected: spec.kind.as_str(),
            got: response.kind().as_str(),
        });
    }
    let constraints = &spec.constraints;
    match response {
        Response::Approval { .. } => Ok(response.clone()),
        Response::Text { text } => {
            let length = text.chars().count();
            if let Some(min) = constraints.min_len.filter(|min| length < *min) {
                return Err(AnswerProblem::TextTooShort { min, got: length });
            }
            if let Some(max) = constraints.max_len.filter(|max| length > *max) {
                return Err(AnswerProblem::TextTooLong { max, got: length });
            }
            if let Some(pattern) = &constraints.pattern {
                let anchored = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|_| {
                    AnswerProblem::PatternMismatch {
                        pattern: pattern.clone(),
                    }
                })?;
                if !anchored.is_match(text) {
                    return Err(AnswerProblem::PatternMismatch {
                        pattern: pattern.clone(),
                    });
                }
            }
            Ok(response.clone())
        }
        Response::Selection { selected } => {
            offered(spec, selected)?;
            Ok(response.clone())
        }
        Response::MultiSelection { selected } => {
            for (index, option) in selected.iter().enumerate() {
                offered(spec, option)?;
                if selected[..index].contains(option) {
                    return Err(AnswerProblem::DuplicateSelection(option.clone()));
                }
            }
            let count = selected.len();
            if let Some(min) = constraints.min_count.filter(|min| count < *min) {
                return Err(AnswerProblem::TooFewSelections { min, got: count });
            }
            if let Some(max) = constraints.max_count.filter(|max| count > *max) {
                return Err(AnswerProblem::TooManySelections { max, got: count });
            }
            let in_order = spec
                .options
                .iter()
                .filter(|option| selected.contains(option))
                .cloned();
            Ok(Response::MultiSelection {
                selected: in_order.collect(),
            })
        }
        Response::Input { value } => {
            if let Some(schema) = &spec.schema {
                check_schema(schema, value)?;
            }
            Ok(response.clone())
        }
    }
}

fn offered(spec: &RequestSpec, option: &str) -> Result<(), AnswerProblem> {
    if spec.options.iter().any(|offered| offered == option) {
        Ok(())
    } else {
        Err(AnswerProblem::OptionNotOffered {
            option: option.to_owned(),
            offered: spec.options.clone(),
        })
    }
}

fn check_schema(schema: &Value, value: &Value) -> Result<(), AnswerProblem> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|error| AnswerProblem::SchemaViolation(format!("the stored schema is invalid: {error}")))?;
    let problems: Vec<String> = validator
        .iter_errors(value)
        .map(|error| {
            let path = error.instance_path().to_string();
            if path.is_empty() {
                error.to_string()
            } else {
                format!("{path}: {error}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AnswerProblem::SchemaViolation(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::Feedback;

    #[test]
    fn multi_selections_are_returned_in_option_order() {
        let spec = Feedback::multi_selection("Regions?", ["eu", "us", "ap"]).spec;
        let normalized = validate(&spec, &Response::select_all(["ap", "eu"])).unwrap();
        assert_eq!(normalized, Response::select_all(["eu", "ap"]));
    }

    #[test]
    fn text_length_counts_characters_not_bytes() {
        let spec = Feedback::text("Name?").max_len(3).spec;
        assert!(validate(&spec, &Response::text("äöü")).is_ok());
        assert_eq!(
            validate(&spec, &Response::text("äöüß")),
            Err(AnswerProblem::TextTooLong { max: 3, got: 4 })
        );
    }

    #[test]
    fn a_pattern_must_match_the_whole_text() {
        let spec = Feedback::text("Ticket?").pattern("[A-Z]+-[0-9]+").spec;
        assert!(validate(&spec, &Response::text("OPS-12")).is_ok());
        assert!(validate(&spec, &Response::text("see OPS-12")).is_err());
    }
}
