//! Why an answer does not fit its request: the reasons [`validate`](super::validate) gives.

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
