//! Format 2 of the sled database: its trees, keys and compact value encoding.
//!
//! The records are the same as everywhere else ([`RunRecord`], [`StepRecord`],
//! [`RequestRecord`], …) and every one of them can be shown as its usual JSON
//! (`hitl --db DIR dump`); only their bytes on disk are smaller than JSON. sled's cost on disk
//! follows the number of keys and writes more than the bytes (a leaf page splits at 16 items
//! and is rewritten whole after 10 deltas), so a paused run of ten steps is five keys:
//!
//! | tree         | key                                      | value                                    |
//! |--------------|------------------------------------------|------------------------------------------|
//! | `runs.2`     | run id (its text, so keys sort in id order) | [`encode_run`]: epoch, packed record   |
//! | `journal.2`  | [`id_key`] of the run, chunk (u32 BE)    | [`Chunk`]: about 8 steps (`seq / 8`)     |
//! | `requests.2` | [`id_key`] of the request                | [`encode_request`]: packed record        |
//! | `pending.2`  | [`id_key`] of the run, of the request    | (empty): the unanswered requests         |
//!
//! `channels`, `definitions`, `outbox`, `timers` and `meta` are kept from format 1 (JSON).
//!
//! **Packed values** ([`pack`]) are JSON values in a binary form: a tag byte per value,
//! integers as varints, object keys from a fixed dictionary of hitl's field names
//! ([`KEYS`]), strings that are UUIDs or lowercase hex as their bytes. Every record
//! value starts with [`PACKED`], so a JSON value (`{`) copied unchanged by the migration (a
//! record that was already damaged) is still told apart, and read as JSON.
//!
//! The dictionaries may only grow at their end: an index, once written, keeps its meaning.

use serde::de::Error as _;
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::model::request::RequestRecord;
use crate::model::run::RunRecord;
use crate::model::step::{StepKind, StepRecord};

/// The on-disk format sled databases are written in (`hitl.json`'s `version`).
pub(crate) const VERSION: u32 = 2;

/// Tree names of format 2 (format 1's `runs`, `journal`, `requests`, `pending` are migrated
/// into them; the other trees are shared by both formats).
pub(crate) const RUNS: &str = "runs.2";
pub(crate) const JOURNAL: &str = "journal.2";
pub(crate) const REQUESTS: &str = "requests.2";
pub(crate) const PENDING: &str = "pending.2";

/// Steps per journal chunk: a step with sequence number `seq` goes to chunk `seq / 8` (measured
/// in the fan-out: 8 gave 2.7 KB per paused run, 4 gave 2.9, 16 and 32 gave 3.1–3.2, one key
/// per step 5.8).
pub(crate) const CHUNK_STEPS: u64 = 8;

/// The first byte of every packed record value (JSON values start with `{`).
pub(crate) const PACKED: u8 = 0xB2;

/// Object keys with a one-byte code (index + 1; 0 is "a key spelled out").
const KEYS: &[&str] = &[
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
];

/// String values with a one-byte code.
const STRINGS: &[&str] = &[
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
];

// Tags of packed values.
const NULL: u8 = 0x00;
const FALSE: u8 = 0x01;
const TRUE: u8 = 0x02;
const UINT: u8 = 0x03;
const NEG: u8 = 0x04;
const FLOAT: u8 = 0x05;
const STRING: u8 = 0x06;
const UUID: u8 = 0x07;
const HEX: u8 = 0x08;
const ARRAY: u8 = 0x09;
const OBJECT: u8 = 0x0A;
/// `SMALL + n`: the integer n < 64.
const SMALL: u8 = 0x40;
/// `SHORT + len`: a string of len < 64 bytes.
const SHORT: u8 = 0x80;
/// `WORD + i`: `STRINGS[i]`.
const WORD: u8 = 0xC0;

fn decode_error(key: &[u8], detail: impl std::fmt::Display) -> Error {
    Error::Decode {
        key: shown_key(key),
        source: serde_json::Error::custom(detail),
    }
}

/// A key as error messages show it.
pub(crate) fn shown_key(key: &[u8]) -> String {
    String::from_utf8_lossy(key).replace('\0', "/")
}

// --- varints ----------------------------------------------------------------------------

pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// A cursor over encoded bytes; every read fails (`None`) past the end.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    pub(crate) fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    pub(crate) fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    pub(crate) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            n |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at.min(self.bytes.len())..]
    }
}

// --- keys -------------------------------------------------------------------------------

/// An id as a key part, prefix-free: a canonical (lowercase, hyphenated) UUID as `0x01` and
/// its 16 bytes, any other text as `0x02`, its length and its bytes.
pub(crate) fn id_key(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    push_id(&mut key, id);
    key
}

fn push_id(key: &mut Vec<u8>, id: &str) {
    match canonical_uuid(id) {
        Some(uuid) => {
            key.push(0x01);
            key.extend_from_slice(&uuid);
        }
        None => {
            key.push(0x02);
            put_varint(key, id.len() as u64);
            key.extend_from_slice(id.as_bytes());
        }
    }
}

/// Reads an id written by [`id_key`].
pub(crate) fn read_id(reader: &mut Reader<'_>) -> Option<String> {
    match reader.byte()? {
        0x01 => Some(uuid::Uuid::from_slice(reader.take(16)?).ok()?.to_string()),
        0x02 => {
            let len = reader.len()?;
            String::from_utf8(reader.take(len)?.to_vec()).ok()
        }
        _ => None,
    }
}

/// The journal key of chunk `chunk` of a run.
pub(crate) fn chunk_key(run_id: &str, chunk: u32) -> Vec<u8> {
    let mut key = id_key(run_id);
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// The pending-index key of a request.
pub(crate) fn pending_key(run_id: &str, request_id: &str) -> Vec<u8> {
    let mut key = id_key(run_id);
    push_id(&mut key, request_id);
    key
}

/// The run and request ids of a pending-index key.
pub(crate) fn read_pending_key(key: &[u8]) -> Option<(String, String)> {
    let mut reader = Reader::new(key);
    let run = read_id(&mut reader)?;
    let request = read_id(&mut reader)?;
    reader.done().then_some((run, request))
}

/// The run id of a journal chunk key, and the chunk's number.
pub(crate) fn read_chunk_key(key: &[u8]) -> Option<(String, u32)> {
    let mut reader = Reader::new(key);
    let run = read_id(&mut reader)?;
    let chunk = u32::from_be_bytes(reader.take(4)?.try_into().ok()?);
    reader.done().then_some((run, chunk))
}

/// The 16 bytes of `text` if it is a UUID written the way `Uuid::to_string` writes it.
fn canonical_uuid(text: &str) -> Option<[u8; 16]> {
    if text.len() != 36 {
        return None;
    }
    let uuid = uuid::Uuid::try_parse(text).ok()?;
    let mut buffer = uuid::Uuid::encode_buffer();
    (uuid.hyphenated().encode_lower(&mut buffer) == text).then(|| *uuid.as_bytes())
}

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

fn pack_str(out: &mut Vec<u8>, text: &str) {
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

fn nibble(hex: u8) -> u8 {
    if hex.is_ascii_digit() {
        hex - b'0'
    } else {
        hex - b'a' + 10
    }
}

/// Reads one packed value (`None`: the bytes are not one).
pub(crate) fn unpack(reader: &mut Reader<'_>) -> Option<Value> {
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
            let mut text = String::with_capacity(len * 2);
            for byte in reader.take(len)? {
                text.push_str(&format!("{byte:02x}"));
            }
            Value::String(text)
        }
        ARRAY => {
            let len = reader.len()?;
            let mut items = Vec::with_capacity(len.min(1024));
            for _ in 0..len {
                items.push(unpack(reader)?);
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
                map.insert(key, unpack(reader)?);
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
fn unpack_all(bytes: &[u8]) -> Option<Value> {
    let mut reader = Reader::new(bytes);
    let value = unpack(&mut reader)?;
    reader.done().then_some(value)
}

fn to_value<T: serde::Serialize>(what: &str, record: &T) -> Result<Map<String, Value>> {
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

fn from_map<T: serde::de::DeserializeOwned>(key: &[u8], map: Map<String, Value>) -> Result<T> {
    serde_json::from_value(Value::Object(map)).map_err(|source| Error::Decode {
        key: shown_key(key),
        source,
    })
}

// --- records ------------------------------------------------------------------------------

/// A run record: [`PACKED`], its lease epoch (a varint, so the write fence reads only it),
/// then the packed record without its id (the key) and epoch.
pub(crate) fn encode_run(run: &RunRecord) -> Result<Vec<u8>> {
    let mut map = to_value("a run", run)?;
    map.remove("id");
    map.remove("lease_epoch");
    let mut out = Vec::with_capacity(96);
    out.push(PACKED);
    put_varint(&mut out, run.lease_epoch);
    pack(&mut out, &Value::Object(map));
    Ok(out)
}

/// Reads a run record stored under `run_id` (packed, or format 1's JSON).
pub(crate) fn decode_run(run_id: &str, bytes: &[u8]) -> Result<RunRecord> {
    if bytes.first() == Some(&b'{') {
        return crate::store::decode(run_id.as_bytes(), bytes);
    }
    let mut reader = Reader::new(bytes);
    let (Some(PACKED), Some(epoch)) = (reader.byte(), reader.varint()) else {
        return Err(decode_error(run_id.as_bytes(), "not a run record"));
    };
    let Some(Value::Object(mut map)) = unpack_all(reader.rest()) else {
        return Err(decode_error(run_id.as_bytes(), "not a packed run record"));
    };
    map.insert("id".to_owned(), Value::from(run_id));
    map.insert("lease_epoch".to_owned(), Value::from(epoch));
    from_map(run_id.as_bytes(), map)
}

/// The lease epoch of a stored run record, without decoding the rest.
pub(crate) fn run_epoch(run_id: &str, bytes: &[u8]) -> Result<u64> {
    if bytes.first() == Some(&PACKED) {
        let mut reader = Reader::new(&bytes[1..]);
        return reader
            .varint()
            .ok_or_else(|| decode_error(run_id.as_bytes(), "not a run record"));
    }
    decode_run(run_id, bytes).map(|run| run.lease_epoch)
}

/// A request record: [`PACKED`], then the packed record without its id (the key).
pub(crate) fn encode_request(request: &RequestRecord) -> Result<Vec<u8>> {
    let mut map = to_value("a request", request)?;
    map.remove("id");
    let mut out = Vec::with_capacity(160);
    out.push(PACKED);
    pack(&mut out, &Value::Object(map));
    Ok(out)
}

/// Reads a request record stored under `request_id` (packed, or format 1's JSON).
pub(crate) fn decode_request(request_id: &str, bytes: &[u8]) -> Result<RequestRecord> {
    if bytes.first() == Some(&b'{') {
        return crate::store::decode(request_id.as_bytes(), bytes);
    }
    let map = match (bytes.first(), unpack_all(bytes.get(1..).unwrap_or_default())) {
        (Some(&PACKED), Some(Value::Object(map))) => map,
        _ => return Err(decode_error(request_id.as_bytes(), "not a packed request record")),
    };
    let mut map = map;
    map.insert("id".to_owned(), Value::from(request_id));
    from_map(request_id.as_bytes(), map)
}

// --- steps and chunks ---------------------------------------------------------------------

const KINDS: [StepKind; 9] = [
    StepKind::Task,
    StepKind::Orchestration,
    StepKind::Await,
    StepKind::Named,
    StepKind::Sleep,
    StepKind::Channel,
    StepKind::Value,
    StepKind::Feedback,
    StepKind::Notification,
];
const HAS_HASH: u8 = 0x10;
const HAS_FINISHED: u8 = 0x20;
const OTHER_VERSION: u8 = 0x40;

/// One step, positional: kind and flags in a byte, `[version]`, seq, line, `[input hash as
/// 8 bytes]`, start (relative to the chunk's `base`, zigzag), `[finish - start, zigzag]`,
/// packed output. The first byte is never `{` (JSON, a format-1 entry kept as it was).
fn encode_step(out: &mut Vec<u8>, base: u64, step: &StepRecord) {
    let kind = KINDS.iter().position(|kind| *kind == step.kind).unwrap_or(0) as u8;
    let mut flags = kind;
    if step.input_hash != 0 {
        flags |= HAS_HASH;
    }
    if step.finished_at.is_some() {
        flags |= HAS_FINISHED;
    }
    if step.version != 1 {
        flags |= OTHER_VERSION;
    }
    out.push(flags);
    if step.version != 1 {
        put_varint(out, u64::from(step.version));
    }
    put_varint(out, step.seq);
    put_varint(out, u64::from(step.line));
    if step.input_hash != 0 {
        out.extend_from_slice(&step.input_hash.to_le_bytes());
    }
    put_varint(out, zigzag(step.started_at.wrapping_sub(base) as i64));
    if let Some(finished) = step.finished_at {
        put_varint(out, zigzag(finished.wrapping_sub(step.started_at) as i64));
    }
    pack(out, &step.output);
}

fn decode_step(base: u64, bytes: &[u8]) -> std::result::Result<StepRecord, String> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes).map_err(|error| error.to_string());
    }
    let mut reader = Reader::new(bytes);
    let step = (|| {
        let flags = reader.byte()?;
        if flags & 0x80 != 0 {
            return None;
        }
        let kind = *KINDS.get(usize::from(flags & 0x0F))?;
        let version = if flags & OTHER_VERSION != 0 {
            u32::try_from(reader.varint()?).ok()?
        } else {
            1
        };
        let seq = reader.varint()?;
        let line = u32::try_from(reader.varint()?).ok()?;
        let input_hash = if flags & HAS_HASH != 0 {
            u64::from_le_bytes(reader.take(8)?.try_into().ok()?)
        } else {
            0
        };
        let started_at = base.wrapping_add(unzigzag(reader.varint()?) as u64);
        let finished_at = if flags & HAS_FINISHED != 0 {
            Some(started_at.wrapping_add(unzigzag(reader.varint()?) as u64))
        } else {
            None
        };
        let output = unpack(&mut reader)?;
        reader.done().then_some(StepRecord {
            version,
            kind,
            seq,
            line,
            input_hash,
            started_at,
            finished_at,
            output,
        })
    })();
    step.ok_or_else(|| "not a step record".to_owned())
}

/// A journal chunk: `varint(base)` (the first step's start, which the others' starts are
/// relative to), then entries `varint(shared) varint(len) id-suffix varint(len) step`, where
/// `shared` is how many leading bytes the step id shares with the previous entry's.
/// A later entry for the same step id replaces an earlier one (a higher `seq` wins).
pub(crate) struct Chunk;

/// One entry read from a chunk: the step id and its record (or why it does not decode).
pub(crate) type ChunkEntry = (String, std::result::Result<StepRecord, String>);

impl Chunk {
    /// `chunk` (empty for a new one) with `steps` appended.
    pub(crate) fn append(chunk: &[u8], steps: &[(&str, &StepRecord)]) -> Option<Vec<u8>> {
        let (base, last_id) = if chunk.is_empty() {
            (steps.first()?.1.started_at, String::new())
        } else {
            let mut reader = Reader::new(chunk);
            let base = reader.varint()?;
            let mut last = Vec::new();
            while !reader.done() {
                let shared = reader.len()?;
                let len = reader.len()?;
                last.truncate(shared);
                last.extend_from_slice(reader.take(len)?);
                let len = reader.len()?;
                reader.take(len)?;
            }
            (base, String::from_utf8(last).ok()?)
        };
        let mut out = Vec::with_capacity(chunk.len() + 24 * steps.len() + 8);
        if chunk.is_empty() {
            put_varint(&mut out, base);
        } else {
            out.extend_from_slice(chunk);
        }
        let mut previous = last_id.into_bytes();
        let mut record = Vec::with_capacity(32);
        for (id, step) in steps {
            let id = id.as_bytes();
            let shared = previous.iter().zip(id).take_while(|(a, b)| a == b).count();
            put_varint(&mut out, shared as u64);
            put_varint(&mut out, (id.len() - shared) as u64);
            out.extend_from_slice(&id[shared..]);
            record.clear();
            encode_step(&mut record, base, step);
            put_varint(&mut out, record.len() as u64);
            out.extend_from_slice(&record);
            previous.clear();
            previous.extend_from_slice(id);
        }
        Some(out)
    }

    /// Appends a step kept as it was stored by format 1 (bytes that did not decode).
    pub(crate) fn append_raw(chunk: &[u8], id: &str, bytes: &[u8]) -> Option<Vec<u8>> {
        // Reuse the framing of `append` with a placeholder, then swap its record bytes.
        let mut out = if chunk.is_empty() { vec![0] } else { chunk.to_vec() };
        let entries = Chunk::entries(&out)?;
        let previous = entries.last().map(|(id, _)| id.as_bytes()).unwrap_or_default();
        let shared = previous
            .iter()
            .zip(id.as_bytes())
            .take_while(|(a, b)| a == b)
            .count();
        put_varint(&mut out, shared as u64);
        put_varint(&mut out, (id.len() - shared) as u64);
        out.extend_from_slice(&id.as_bytes()[shared..]);
        put_varint(&mut out, bytes.len() as u64);
        out.extend_from_slice(bytes);
        Some(out)
    }

    /// Every entry of a chunk, in the order written; `None` when its framing is damaged.
    pub(crate) fn entries(chunk: &[u8]) -> Option<Vec<ChunkEntry>> {
        let mut reader = Reader::new(chunk);
        let base = reader.varint()?;
        let mut entries = Vec::new();
        let mut id = Vec::new();
        while !reader.done() {
            let shared = reader.len()?;
            let len = reader.len()?;
            if shared > id.len() {
                return None;
            }
            id.truncate(shared);
            id.extend_from_slice(reader.take(len)?);
            let len = reader.len()?;
            let record = decode_step(base, reader.take(len)?);
            entries.push((String::from_utf8(id.clone()).ok()?, record));
        }
        Some(entries)
    }
}

/// The chunk a step belongs to.
pub(crate) fn chunk_of(step: &StepRecord) -> u32 {
    u32::try_from(step.seq / CHUNK_STEPS).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn packed_values_read_back_as_the_same_json() {
        let value = json!({
            "v": 1, "id": "7f9c2ba4-e88f-4a1e-9bdc-7e1fa6c1a9b2", "fingerprint": "0123456789abcdef",
            "n": -5, "big": 1u64 << 60, "f": 1.5, "unknown key": [null, true, false, "paused", "x"],
            "long": "y".repeat(100), "upper": "7F9C2BA4-E88F-4A1E-9BDC-7E1FA6C1A9B2", "odd": "abc",
            "empty": {}, "min": i64::MIN,
        });
        let mut out = Vec::new();
        pack(&mut out, &value);
        assert_eq!(unpack_all(&out), Some(value.clone()));
        let mut uuid = Vec::new();
        pack(&mut uuid, &json!("7f9c2ba4-e88f-4a1e-9bdc-7e1fa6c1a9b2"));
        assert_eq!(uuid.len(), 17, "a UUID is its 16 bytes");
        assert_eq!(
            unpack_all(&out[..out.len() - 1]),
            None,
            "a truncated value is refused"
        );
    }

    #[test]
    fn ids_as_keys_are_prefix_free_and_read_back() {
        for id in ["7f9c2ba4-e88f-4a1e-9bdc-7e1fa6c1a9b2", "run-1", "", "x\0y"] {
            let key = pending_key(id, "req");
            assert_eq!(read_pending_key(&key), Some((id.to_owned(), "req".to_owned())));
            assert_eq!(read_chunk_key(&chunk_key(id, 7)), Some((id.to_owned(), 7)));
        }
        assert_eq!(id_key("7f9c2ba4-e88f-4a1e-9bdc-7e1fa6c1a9b2").len(), 17);
        assert!(
            !chunk_key("ab", 0).starts_with(&id_key("a")),
            "no run's keys start another's"
        );
    }

    #[test]
    fn chunks_keep_every_step_in_order() {
        let step = |seq, hash, finished: Option<u64>, output| StepRecord {
            version: 1,
            kind: StepKind::Task,
            seq,
            line: 40,
            input_hash: hash,
            started_at: 1_796_131_647_164 + seq,
            finished_at: finished,
            output,
        };
        let a = step(0, 0xdead_beef_u64 << 20, Some(1_796_131_647_170), json!(3));
        let b = step(1, 0, None, json!({"deadline": 5}));
        let c = StepRecord {
            version: 7,
            kind: StepKind::Feedback,
            started_at: 5,
            ..step(2, 1, Some(4), json!(null))
        };
        let chunk = Chunk::append(&[], &[("trivial#0", &a)]).unwrap();
        let chunk = Chunk::append(&chunk, &[("trivial#1", &b), ("ask#0", &c)]).unwrap();
        let entries = Chunk::entries(&chunk).unwrap();
        let read: Vec<_> = entries
            .into_iter()
            .map(|(id, step)| (id, step.unwrap()))
            .collect();
        assert_eq!(
            read,
            [
                ("trivial#0".to_owned(), a),
                ("trivial#1".to_owned(), b),
                ("ask#0".to_owned(), c)
            ]
        );
        let raw = Chunk::append_raw(&chunk, "bad#0", b"{not json").unwrap();
        let entries = Chunk::entries(&raw).unwrap();
        assert_eq!(entries[3].0, "bad#0");
        assert!(entries[3].1.is_err());
    }
}
