//! Format 4 of the sled database: its trees, keys and run documents. The records inside are
//! the packed records of [`crate::store::packed`].
//!
//! sled's cost follows the number of keys more than the bytes: a leaf splits at 16 entries
//! whatever their size and is copied whole on every write to it, so each key a paused run
//! keeps is one more entry copied and split around (BENCHMARKS.md, "keys per paused run").
//! A paused run of ten steps is therefore two keys:
//!
//! | tree         | key                                     | value                                      |
//! |--------------|-----------------------------------------|--------------------------------------------|
//! | `runs.3`     | run id (its text, so keys sort in id order) | [`Document`]: the run record, the first journal chunk, the open requests |
//! | `journal.3`  | [`chunk_key`]: [`id_key`] of the run, chunk (u32 BE, from 1) | [`Chunk`]: about 16 steps (`seq / 16`) |
//! | `requests.3` | [`open_request_key`] or [`closed_request_key`] | open: the run id (the record is in its document); closed: [`encode_request`] |
//!
//! The open half of `requests.3` is the pending index. Resolving a request changes its record
//! in its run's document, one compare-and-swap, and leaves the index as it is; once the run
//! has resumed, the request moves out of the document into its closed entry (`requests`,
//! "settling"). So a document holds the requests its run waits on and those answered since
//! it last resumed, and a write to it stays bounded.
//!
//! **Format 4 is format 3 plus that one state**: a document may hold a resolved request, whose
//! index entry is still in the open half (format 3 moved it to its closed entry in the
//! answer's own transaction, a write that costs sled more than one key). The trees, keys and
//! encodings are format 3's, names included, so the migration from format 3 converts nothing
//! and only rewrites the marker; the new version keeps a format-3 release from opening a
//! database whose answers it would not wake runs for.
//!
//! `channels`, `definitions`, `outbox`, `timers` and `meta` are kept from format 1 (JSON).

pub(crate) use crate::store::packed::{
    Chunk, Reader, by_chunk, chunk_of, decode_request, decode_run, encode_request, encode_run, id_key,
    journal_of, read_id, run_epoch, shown_key,
};
use crate::store::packed::{push_id, put_varint};

/// The on-disk format sled databases are written in (`hitl.json`'s `version`).
pub(crate) const VERSION: u32 = 4;

/// Tree names of formats 3 and 4 (format 2's are migrated into them, see `migrate`; the
/// other trees are shared by every format).
pub(crate) const RUNS: &str = "runs.3";
pub(crate) const JOURNAL: &str = "journal.3";
pub(crate) const REQUESTS: &str = "requests.3";

/// Format 2's trees and keys, read by the migration to format 3 (and written by the one from
/// format 1, which goes through format 2).
pub(crate) mod v2 {
    use super::{id_key, push_id};

    pub(crate) const RUNS: &str = "runs.2";
    pub(crate) const JOURNAL: &str = "journal.2";
    pub(crate) const REQUESTS: &str = "requests.2";
    pub(crate) const PENDING: &str = "pending.2";
    pub(crate) const TREES: [&str; 4] = [RUNS, JOURNAL, REQUESTS, PENDING];

    /// The pending-index key of a request.
    pub(crate) fn pending_key(run_id: &str, request_id: &str) -> Vec<u8> {
        let mut key = id_key(run_id);
        push_id(&mut key, request_id);
        key
    }
}

/// The journal key of chunk `chunk` of a run (format 3 keeps chunk 0 in the run's document).
pub(crate) fn chunk_key(run_id: &str, chunk: u32) -> Vec<u8> {
    let mut key = id_key(run_id);
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// The run id of a journal chunk key, and the chunk's number.
pub(crate) fn read_chunk_key(key: &[u8]) -> Option<(String, u32)> {
    let mut reader = Reader::new(key);
    let run = read_id(&mut reader)?;
    let chunk = u32::from_be_bytes(reader.take(4)?.try_into().ok()?);
    reader.done().then_some((run, chunk))
}

const OPEN: u8 = 0x00;
const CLOSED: u8 = 0x01;

/// The request-index key of a request its run still waits on (status `pending`).
pub(crate) fn open_request_key(request_id: &str) -> Vec<u8> {
    request_key(OPEN, request_id)
}

/// The request-index key of a resolved request (answered, expired, cancelled).
pub(crate) fn closed_request_key(request_id: &str) -> Vec<u8> {
    request_key(CLOSED, request_id)
}

/// The key prefix of every open request: the pending index.
pub(crate) const OPEN_REQUESTS: [u8; 1] = [OPEN];

fn request_key(half: u8, request_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.push(half);
    push_id(&mut key, request_id);
    key
}

/// Where the migration keeps a format-2 request key that did not read as an id, so that its
/// bytes stay as evidence ([`read_request_key`] reads no id from it).
pub(crate) fn unreadable_request_key(key: &[u8]) -> Vec<u8> {
    [&[UNREADABLE][..], key].concat()
}

const UNREADABLE: u8 = 0xFF;

/// Whether a request-index key is an open request's, and the request's id.
pub(crate) fn read_request_key(key: &[u8]) -> Option<(bool, String)> {
    let mut reader = Reader::new(key);
    let open = match reader.byte()? {
        OPEN => true,
        CLOSED => false,
        _ => return None,
    };
    let id = read_id(&mut reader)?;
    reader.done().then_some((open, id))
}

/// The first byte of a run document.
const DOCUMENT: u8 = 0xD3;

/// A run document: what `runs.3` holds per run, each part as the bytes of its own record.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Document {
    /// [`encode_run`]'s bytes (or a damaged record's, as migrated); empty while the run has
    /// steps but no record (a store may be handed steps first: the contract suite does).
    pub run: Vec<u8>,
    /// Journal chunk 0 ([`Chunk`]), empty before the first step.
    pub chunk: Vec<u8>,
    /// The run's open requests, and those resolved and not yet settled: id,
    /// [`encode_request`]'s bytes.
    pub open: Vec<(String, Vec<u8>)>,
}

impl Document {
    /// A run's document with only its record.
    pub(crate) fn of_run(run: Vec<u8>) -> Document {
        Document {
            run,
            ..Document::default()
        }
    }

    /// `0xD3`, then each part with its length: the run record, chunk 0, the count of open
    /// requests and each one's id and record.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let open_len: usize = self
            .open
            .iter()
            .map(|(id, bytes)| id.len() + bytes.len() + 4)
            .sum();
        let mut out = Vec::with_capacity(8 + self.run.len() + self.chunk.len() + open_len);
        out.push(DOCUMENT);
        for part in [&self.run, &self.chunk] {
            put_varint(&mut out, part.len() as u64);
            out.extend_from_slice(part);
        }
        put_varint(&mut out, self.open.len() as u64);
        for (id, bytes) in &self.open {
            put_varint(&mut out, id.len() as u64);
            out.extend_from_slice(id.as_bytes());
            put_varint(&mut out, bytes.len() as u64);
            out.extend_from_slice(bytes);
        }
        out
    }

    /// Reads a document; `None` when its framing is damaged.
    pub(crate) fn read(bytes: &[u8]) -> Option<Document> {
        let mut reader = Reader::new(bytes);
        let run = framed(&mut reader)?.to_vec();
        let chunk = part(&mut reader)?.to_vec();
        let count = reader.varint()?;
        let mut open = Vec::new();
        for _ in 0..count {
            let id = String::from_utf8(part(&mut reader)?.to_vec()).ok()?;
            open.push((id, part(&mut reader)?.to_vec()));
        }
        reader.done().then_some(Document { run, chunk, open })
    }

    /// The run record's bytes of a stored document, without copying the rest.
    pub(crate) fn run_of(bytes: &[u8]) -> Option<&[u8]> {
        framed(&mut Reader::new(bytes))
    }

    /// The record of open request `request_id`.
    pub(crate) fn open_request(&self, request_id: &str) -> Option<&[u8]> {
        self.open
            .iter()
            .find(|(id, _)| id == request_id)
            .map(|(_, bytes)| bytes.as_slice())
    }
}

/// The document marker, then the first part.
fn framed<'a>(reader: &mut Reader<'a>) -> Option<&'a [u8]> {
    (reader.byte()? == DOCUMENT).then_some(())?;
    part(reader)
}

fn part<'a>(reader: &mut Reader<'a>) -> Option<&'a [u8]> {
    let len = usize::try_from(reader.varint()?).ok()?;
    reader.take(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_as_keys_are_prefix_free_and_read_back() {
        for id in ["7f9c2ba4-e88f-4a1e-9bdc-7e1fa6c1a9b2", "run-1", "", "x\0y"] {
            assert!(v2::pending_key(id, "req").starts_with(&id_key(id)));
            assert_eq!(read_chunk_key(&chunk_key(id, 7)), Some((id.to_owned(), 7)));
            assert_eq!(
                read_request_key(&open_request_key(id)),
                Some((true, id.to_owned()))
            );
            assert_eq!(
                read_request_key(&closed_request_key(id)),
                Some((false, id.to_owned()))
            );
        }
        assert_eq!(id_key("7f9c2ba4-e88f-4a1e-9bdc-7e1fa6c1a9b2").len(), 17);
        assert!(
            !chunk_key("ab", 0).starts_with(&id_key("a")),
            "no run's keys start another's"
        );
        assert_eq!(
            read_request_key(&unreadable_request_key(&open_request_key("z"))),
            None
        );
        assert!(open_request_key("z").starts_with(&OPEN_REQUESTS));
        assert!(!closed_request_key("z").starts_with(&OPEN_REQUESTS));
    }

    #[test]
    fn a_document_reads_back_and_damage_is_seen() {
        let document = Document {
            run: vec![1, 2, 3],
            chunk: vec![9; 200],
            open: vec![("q1".to_owned(), vec![4, 5]), ("q2".to_owned(), vec![])],
        };
        let bytes = document.to_bytes();
        assert_eq!(Document::read(&bytes), Some(document.clone()));
        assert_eq!(Document::run_of(&bytes), Some(&[1u8, 2, 3][..]));
        assert_eq!(document.open_request("q1"), Some(&[4u8, 5][..]));
        assert_eq!(document.open_request("q3"), None);
        assert_eq!(
            Document::read(&Document::default().to_bytes()),
            Some(Document::default())
        );
        assert_eq!(
            Document::read(&bytes[..bytes.len() - 1]),
            None,
            "a truncated document"
        );
        assert_eq!(
            Document::read(&[bytes.as_slice(), &[0]].concat()),
            None,
            "trailing bytes"
        );
        assert_eq!(Document::read(b"{\"v\":1}"), None, "not a document");
        assert_eq!(Document::run_of(b"{\"v\":1}"), None);
    }
}
