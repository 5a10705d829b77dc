//! Validating a request before it is stored, and an answer against its request.
//!
//! Everything needed is stored with the request (kind, options, constraints, JSON Schema),
//! so an answer is validated the same way after a restart and in another process.

use serde_json::Value;

use super::error::{Error, Result};
use super::problem::AnswerProblem;
use super::request::{FeedbackKind, OnExpiry, RequestSpec, Response};

impl RequestSpec {
    /// Checks the request itself before anything is stored.
    pub(crate) fn check(&self) -> Result<()> {
        let invalid = |detail: String| Err(Error::InvalidRequest { detail });
        if matches!(self.kind, FeedbackKind::Selection | FeedbackKind::MultiSelection) {
            if self.options.is_empty() {
                return invalid("a selection needs at least one option".to_owned());
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(duplicate) = self.options.iter().find(|option| !seen.insert(*option)) {
                return invalid(format!("the option `{duplicate}` is offered twice"));
            }
        }
        if let Some(pattern) = &self.constraints.pattern
            && let Err(error) = regex::Regex::new(pattern)
        {
            return invalid(format!(
                "the pattern `{pattern}` is not a valid regular expression: {error}"
            ));
        }
        if let (Some(min), Some(max)) = (self.constraints.min_len, self.constraints.max_len)
            && min > max
        {
            return invalid(format!("min_len {min} is greater than max_len {max}"));
        }
        if let (Some(min), Some(max)) = (self.constraints.min_count, self.constraints.max_count)
            && min > max
        {
            return invalid(format!("min_count {min} is greater than max_count {max}"));
        }
        if self.quorum == 0 {
            return invalid("a quorum must be at least 1".to_owned());
        }
        if self.quorum > 1 {
            if self.kind != FeedbackKind::Approval {
                return invalid("a quorum applies to approvals only".to_owned());
            }
            if (self.responders.len() as u32) < self.quorum {
                return invalid(format!(
                    "a quorum of {} needs at least as many allowed responders; {} given",
                    self.quorum,
                    self.responders.len()
                ));
            }
        }
        if let Some(schema) = &self.schema
            && let Err(error) = jsonschema::validator_for(schema)
        {
            return invalid(format!("the input schema is invalid: {error}"));
        }
        if let OnExpiry::Default(response) = &self.on_expiry {
            if self.expires_after_ms.is_none() {
                return invalid("`on_expiry` needs `expires_after`".to_owned());
            }
            validate(self, response).map_err(|problem| Error::InvalidRequest {
                detail: format!("the expiry default is not a valid answer: {problem}"),
            })?;
        }
        Ok(())
    }
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
    use serde_json::json;

    use super::*;

    /// A request as stored, from the JSON fields that matter to the test.
    fn spec(fields: serde_json::Value) -> RequestSpec {
        serde_json::from_value(fields).expect("a valid request spec")
    }

    #[test]
    fn multi_selections_are_returned_in_option_order() {
        let spec =
            spec(json!({"kind": "multi_selection", "prompt": "Regions?", "options": ["eu", "us", "ap"]}));
        let normalized = validate(&spec, &Response::select_all(["ap", "eu"])).unwrap();
        assert_eq!(normalized, Response::select_all(["eu", "ap"]));
    }

    #[test]
    fn text_length_counts_characters_not_bytes() {
        let spec = spec(json!({"kind": "text", "prompt": "Name?", "constraints": {"max_len": 3}}));
        assert!(validate(&spec, &Response::text("äöü")).is_ok());
        assert_eq!(
            validate(&spec, &Response::text("äöüß")),
            Err(AnswerProblem::TextTooLong { max: 3, got: 4 })
        );
    }

    #[test]
    fn a_pattern_must_match_the_whole_text() {
        let spec =
            spec(json!({"kind": "text", "prompt": "Ticket?", "constraints": {"pattern": "[A-Z]+-[0-9]+"}}));
        assert!(validate(&spec, &Response::text("OPS-12")).is_ok());
        assert!(validate(&spec, &Response::text("see OPS-12")).is_err());
    }

    #[test]
    fn a_request_is_checked_before_it_is_stored() {
        let duplicate = spec(json!({"kind": "selection", "prompt": "Region?", "options": ["eu", "eu"]}));
        assert!(matches!(duplicate.check(), Err(Error::InvalidRequest { .. })));
        let quorum =
            spec(json!({"kind": "approval", "prompt": "Ship?", "quorum": 2, "responders": ["alice"]}));
        assert!(
            matches!(quorum.check(), Err(Error::InvalidRequest { detail }) if detail.contains("quorum of 2"))
        );
        let fine =
            spec(json!({"kind": "approval", "prompt": "Ship?", "quorum": 2, "responders": ["alice", "bob"]}));
        assert!(fine.check().is_ok());
    }
}
