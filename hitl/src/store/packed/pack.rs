//! Packed values: JSON in a compact binary form (tags, varints, dictionary keys, UUIDs and
//! hex strings as their bytes).

use serde::de::Error as _;
use serde_json::{Map, Number, Value};

use super::{Reader, canonical_uuid, put_varint, shown_key};
use crate::error::{Error, Result};

/// Object keys with a one-byte code (index + 1; 0 is "a key spelled out").
pub(super) const KEYS: &[&str] = &[
    "v",
    "id",
    "workflow",
    "status",
    "input",
    "output",
    "failure",
    "cancel_reason",
    "fingerprint",
    "owner",
    "lease_until",
    "lease_epoch",
    "created_at",
    "updated_at",
    "kind",
    "message",
    "step",
    "location",
    "run_id",
    "step_id",
    "prompt",
    "details",
    "constraints",
    "options",
    "timeout_ms",
    "on_expiry",
    "quorum",
    "responders",
    "notify",
    "schema",
    "default",
    "expires_at",
    "votes",
    "resolution",
    "resolved_at",
    "response",
    "responder",
    "answered_at",
    "policy",
    "reason",
    "approved",
    "comment",
    "text",
    "selected",
    "value",
    "min_len",
    "max_len",
    "pattern",
    "min_count",
    "max_count",
    "expires_after_ms",
    "url",
    "request_id",
    "attempts",
    "delivered_at",
    "gave_up",
    "next_attempt_at",
    "at",
    "error",
    "signed_link_as",
    "key",
    "n",
    "type",
    "properties",
    "required",
    "title",
    "description",
    // Appended in 0.3 (versions and blocked runs); the order above is the format.
    "code",
    "blocked",
    "decisions",
    "accepted_before",
    "problems",
    "action",
    "by",
];

/// String values with a one-byte code.
pub(super) const STRINGS: &[&str] = &[
    "running",
    "paused",
    "completed",
    "failed",
    "cancelled",
    "pending",
    "answered",
    "expired",
    "approval",
    "text",
    "selection",
    "multi_selection",
    "input",
    "reject",
    "fail_run",
    "webhook",
    "slack",
    "workflow",
    "panicked",
    "invalid_input",
    "non_determinism",
    "corrupt_record",
    "engine",
    "hitl:expiry",
    "object",
    "string",
    "integer",
    "number",
    "boolean",
    "array",
    // Appended in 0.3.
    "blocked",
];

// Tags of packed values.
pub(super) const NULL: u8 = 0x00;
pub(super) const FALSE: u8 = 0x01;
pub(super) const TRUE: u8 = 0x02;
pub(super) const UINT: u8 = 0x03;
pub(super) const NEG: u8 = 0x04;
pub(super) const FLOAT: u8 = 0x05;
pub(super) const STRING: u8 = 0x06;
pub(super) const UUID: u8 = 0x07;
pub(super) const HEX: u8 = 0x08;
pub(super) const ARRAY: u8 = 0x09;
pub(super) const OBJECT: u8 = 0x0A;
/// `SMALL + n`: the integer n < 64.
pub(super) const SMALL: u8 = 0x40;
/// `SHORT + len`: a string of len < 64 bytes.
pub(super) const SHORT: u8 = 0x80;
/// `WORD + i`: `STRINGS[i]`.
pub(super) const WORD: u8 = 0xC0;

// --- packed JSON --------------------------------------------------------------------------

/// `value` in the packed form.
pub(crate) fn pack(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(number) => {
            if let Some(n) = number.as_u64() {
                if n < 64 {
                    out.push(SMALL + n as u8);
                } else {
                    out.push(UINT);
                    put_varint(out, n);
                }
            } else if let Some(n) = number.as_i64() {
                out.push(NEG);
                put_varint(out, !(n as u64)); // n < 0: -(n + 1)
            } else {
                out.push(FLOAT);
                out.extend_from_slice(&number.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        }
        Value::String(text) => pack_str(out, text),
        Value::Array(items) => {
            out.push(ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                pack(out, item);
            }
        }
        Value::Object(map) => {
            out.push(OBJECT);
            put_varint(out, map.len() as u64);
            for (key, item) in map {
                match KEYS.iter().position(|known| known == key) {
                    Some(index) => put_varint(out, index as u64 + 1),
                    None => {
                        out.push(0);
                        put_varint(out, key.len() as u64);
                        out.extend_from_slice(key.as_bytes());
                    }
                }
                pack(out, item);
            }
        }
    }
}

pub(super) fn pack_str(out: &mut Vec<u8>, text: &str) {
    if let Some(index) = STRINGS.iter().position(|known| *known == text) {
        out.push(WORD + index as u8);
    } else if let Some(uuid) = canonical_uuid(text) {
        out.push(UUID);
        out.extend_from_slice(&uuid);
    } else if text.len() >= 8
        && text.len().is_multiple_of(2)
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        out.push(HEX);
        put_varint(out, text.len() as u64 / 2);
        for pair in text.as_bytes().chunks(2) {
            out.push((nibble(pair[0]) << 4) | nibble(pair[1]));
        }
    } else if text.len() < 64 {
        out.push(SHORT + text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    } else {
        out.push(STRING);
        put_varint(out, text.len() as u64);
        out.extend_from_slice(text.as_bytes());
    }
}

pub(super) fn nibble(hex: u8) -> u8 {
    if hex.is_ascii_digit() {
        hex - b'0'
    } else {
        hex - b'a' + 10
    }
}

/// How deeply packed arrays and objects may nest (as serde_json's limit): damaged bytes must
/// not recurse the stack away.
const MAX_DEPTH: usize = 128;

/// Reads one packed value (`None`: the bytes are not one).
pub(crate) fn unpack(reader: &mut Reader<'_>) -> Option<Value> {
    unpack_nested(reader, 0)
}

fn unpack_nested(reader: &mut Reader<'_>, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    let tag = reader.byte()?;
    Some(match tag {
        NULL => Value::Null,
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        UINT => Value::from(reader.varint()?),
        NEG => Value::from(!reader.varint()? as i64),
        FLOAT => Value::Number(Number::from_f64(f64::from_le_bytes(
            reader.take(8)?.try_into().ok()?,
        ))?),
        STRING => {
            let len = reader.len()?;
            Value::String(String::from_utf8(reader.take(len)?.to_vec()).ok()?)
        }
        UUID => Value::String(uuid::Uuid::from_slice(reader.take(16)?).ok()?.to_string()),
        HEX => {
            let len = reader.len()?;
            let bytes = reader.take(len)?;
            let mut text = String::with_capacity(bytes.len() * 2);
            for byte in bytes {
                text.push_str(&format!("{byte:02x}"));
            }
            Value::String(text)
        }
        ARRAY => {
            let len = reader.len()?;
            let mut items = Vec::with_capacity(len.min(1024));
            for _ in 0..len {
                items.push(unpack_nested(reader, depth + 1)?);
            }
            Value::Array(items)
        }
        OBJECT => {
            let len = reader.len()?;
            let mut map = Map::new();
            for _ in 0..len {
                let key = match reader.len()? {
                    0 => {
                        let len = reader.len()?;
                        String::from_utf8(reader.take(len)?.to_vec()).ok()?
                    }
                    index => (*KEYS.get(index - 1)?).to_owned(),
                };
                map.insert(key, unpack_nested(reader, depth + 1)?);
            }
            Value::Object(map)
        }
        SMALL..SHORT => Value::from(tag - SMALL),
        SHORT..WORD => {
            let len = usize::from(tag - SHORT);
            Value::String(String::from_utf8(reader.take(len)?.to_vec()).ok()?)
        }
        WORD.. => Value::String((*STRINGS.get(usize::from(tag - WORD))?).to_owned()),
        _ => return None,
    })
}

/// A whole value of `bytes` that is one packed value.
pub(super) fn unpack_all(bytes: &[u8]) -> Option<Value> {
    let mut reader = Reader::new(bytes);
    let value = unpack(&mut reader)?;
    reader.done().then_some(value)
}

pub(super) fn to_value<T: serde::Serialize>(what: &str, record: &T) -> Result<Map<String, Value>> {
    match serde_json::to_value(record) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::Encode {
            what: what.to_owned(),
            source: serde_json::Error::custom("not a JSON object"),
        }),
        Err(source) => Err(Error::Encode {
            what: what.to_owned(),
            source,
        }),
    }
}

pub(super) fn from_map<T: serde::de::DeserializeOwned>(key: &[u8], map: Map<String, Value>) -> Result<T> {
    serde_json::from_value(Value::Object(map)).map_err(|source| Error::Decode {
        key: shown_key(key),
        source,
    })
}
