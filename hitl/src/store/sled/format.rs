//! Format 2 of the sled database: its trees and keys. The values are the packed records of
//! [`crate::store::packed`].
//!
//! sled's cost on disk follows the number of keys and writes more than the bytes (a leaf page
//! splits at 16 items and is rewritten whole after 10 deltas), so a paused run of ten steps is
//! five keys:
//!
//! | tree         | key                                      | value                                    |
//! |--------------|------------------------------------------|------------------------------------------|
//! | `runs.2`     | run id (its text, so keys sort in id order) | [`encode_run`]: epoch, packed record   |
//! | `journal.2`  | [`id_key`] of the run, chunk (u32 BE)    | [`Chunk`]: about 16 steps (`seq / 16`)   |
//! | `requests.2` | [`id_key`] of the request                | [`encode_request`]: packed record        |
//! | `pending.2`  | [`id_key`] of the run, of the request    | (empty): the unanswered requests         |
//!
//! `channels`, `definitions`, `outbox`, `timers` and `meta` are kept from format 1 (JSON).

use crate::store::packed::push_id;
pub(crate) use crate::store::packed::{
    Chunk, Reader, by_chunk, chunk_of, decode_request, decode_run, encode_request, encode_run, id_key,
    journal_of, read_id, run_epoch, shown_key,
};

/// The on-disk format sled databases are written in (`hitl.json`'s `version`).
pub(crate) const VERSION: u32 = 2;

/// Tree names of format 2 (format 1's `runs`, `journal`, `requests`, `pending` are migrated
/// into them; the other trees are shared by both formats).
pub(crate) const RUNS: &str = "runs.2";
pub(crate) const JOURNAL: &str = "journal.2";
pub(crate) const REQUESTS: &str = "requests.2";
pub(crate) const PENDING: &str = "pending.2";

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
