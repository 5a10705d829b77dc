//! The forms of each kind of request, the schema compiler and the problem sentences.

use super::problems::sentence;
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
