//! The compact encoding of hitl's records, shared by the sled and PostgreSQL backends.
//!
//! The records are the same as everywhere else ([`RunRecord`](crate::model::run::RunRecord),
//! [`StepRecord`](crate::model::step::StepRecord), [`RequestRecord`](crate::model::request::RequestRecord))
//! and every one of them can be shown as its usual JSON (`hitl --db DIR dump`,
//! `hitl --database-url URL dump`); only their stored bytes are smaller than JSON.
//!
//! **Packed values** ([`pack`]) are JSON values in a binary form: a tag byte per value,
//! integers as varints, object keys from a fixed dictionary of hitl's field names
//! (`KEYS`), strings that are UUIDs or lowercase hex as their bytes. Every record
//! value starts with [`PACKED`], so a JSON value (`{`) copied unchanged by a migration (a
//! record that was already damaged) is still told apart, and read as JSON.
//!
//! **Journal chunks** ([`Chunk`]) hold about [`CHUNK_STEPS`] steps of one run each, positional
//! and with field names left out.
//!
//! The dictionaries may only grow at their end: an index, once written, keeps its meaning.

mod pack;
mod records;

pub(crate) use records::{
    Chunk, by_chunk, chunk_of, decode_request, decode_run, encode_request, encode_run, journal_of, run_epoch,
};

use serde::de::Error as _;

use crate::error::Error;

/// Steps per journal chunk: a step with sequence number `seq` goes to chunk `seq / 16`.
/// Measured in the sled fan-out: with random (v4) run ids 8 gave 2.7 KB per paused run (4 gave
/// 2.9, 16 and 32 gave 3.1–3.2, one key per step 5.8); with time-ordered (v7) ids 16 gives
/// 1.89–1.94 KB and 8 gives 1.99–2.20. Readers take a run's chunks whatever their size, so the
/// number can change without a migration: it only decides where new steps go.
pub(crate) const CHUNK_STEPS: u64 = 16;

/// The first byte of every packed record value (JSON values start with `{`).
pub(crate) const PACKED: u8 = 0xB2;

pub(super) fn decode_error(key: &[u8], detail: impl std::fmt::Display) -> Error {
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

pub(super) fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

pub(super) fn unzigzag(n: u64) -> i64 {
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

pub(super) fn push_id(key: &mut Vec<u8>, id: &str) {
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

/// The 16 bytes of `text` if it is a UUID written the way `Uuid::to_string` writes it.
pub(super) fn canonical_uuid(text: &str) -> Option<[u8; 16]> {
    if text.len() != 36 {
        return None;
    }
    let uuid = uuid::Uuid::try_parse(text).ok()?;
    let mut buffer = uuid::Uuid::encode_buffer();
    (uuid.hyphenated().encode_lower(&mut buffer) == text).then(|| *uuid.as_bytes())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::pack::{pack, unpack_all};
    use super::*;
    use crate::model::step::{StepKind, StepRecord};

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
        let mut deep = [0x09u8, 1].repeat(10_000);
        deep.push(0x00);
        assert_eq!(
            unpack_all(&deep),
            None,
            "nesting past the limit is refused, not recursed"
        );
        assert_eq!(
            unpack_all(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            None,
            "a huge length in damaged bytes is refused, not allocated"
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
            types: 0,
        };
        let a = step(0, 0xdead_beef_u64 << 20, Some(1_796_131_647_170), json!(3));
        let b = step(1, 0, None, json!({"deadline": 5}));
        let c = StepRecord {
            version: 7,
            kind: StepKind::Feedback,
            started_at: 5,
            types: 0xabcd_0123,
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

    #[test]
    fn concatenable_chunks_append_by_concatenation() {
        let step = |seq: u64, output| StepRecord {
            version: 1,
            kind: StepKind::Task,
            seq,
            line: 7,
            input_hash: 0x0123_4567_89ab_cdef,
            started_at: 1_796_131_647_164 + seq,
            finished_at: Some(1_796_131_647_170 + seq),
            output,
            types: 0x1234_5678,
        };
        let (a, b, c) = (step(0, json!(1)), step(1, json!("two")), step(2, json!([3])));
        let mut chunk = Chunk::concatenable(&[("trivial#0", &a)]);
        chunk.extend_from_slice(&Chunk::concatenable(&[("trivial#1", &b), ("trivial#2", &c)])[1..]);
        chunk.extend_from_slice(&Chunk::concatenable_raw("bad#0", b"{not json")[1..]);
        let entries = Chunk::entries(&chunk).unwrap();
        assert_eq!(entries.len(), 4);
        for ((id, read), (expected_id, expected)) in
            entries
                .iter()
                .zip([("trivial#0", &a), ("trivial#1", &b), ("trivial#2", &c)])
        {
            assert_eq!((id.as_str(), read.as_ref().unwrap()), (expected_id, expected));
        }
        assert_eq!(entries[3].0, "bad#0");
        assert!(entries[3].1.is_err(), "raw bytes stay as they were");
        assert!(
            Chunk::concatenable(&[("trivial#0", &a)]).len() < 40,
            "a small task step packs into a few dozen bytes"
        );
    }
}
