//! Packed records: runs, requests, and steps in journal chunks (sled's format 2, PostgreSQL's
//! schema 2).

use serde_json::Value;

use super::pack::{from_map, pack, to_value, unpack, unpack_all};
use super::{CHUNK_STEPS, PACKED, Reader, decode_error, put_varint, unzigzag, zigzag};
use crate::error::{Error, Result};
use crate::model::request::RequestRecord;
use crate::model::run::RunRecord;
use crate::model::step::{StepKind, StepRecord, in_step_id_order};

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

pub(super) const KINDS: [StepKind; 12] = [
    StepKind::Task,
    StepKind::Orchestration,
    StepKind::Await,
    StepKind::Named,
    StepKind::Sleep,
    StepKind::Channel,
    StepKind::Value,
    StepKind::Feedback,
    StepKind::Notification,
    StepKind::Patch,
    StepKind::Rewound,
    StepKind::Errored,
];
pub(super) const HAS_HASH: u8 = 0x10;
pub(super) const HAS_FINISHED: u8 = 0x20;
pub(super) const OTHER_VERSION: u8 = 0x40;
pub(super) const HAS_TYPES: u8 = 0x80;

/// One step, positional: kind and flags in a byte, `[version]`, seq, line, `[input hash as
/// 8 bytes]`, `[types fingerprint as 4 bytes]`, start (relative to the chunk's `base`, zigzag), `[finish - start, zigzag]`,
/// packed output. The first byte is never `{` (JSON, a format-1 entry kept as it was).
pub(super) fn encode_step(out: &mut Vec<u8>, base: u64, step: &StepRecord) {
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
    if step.types != 0 {
        flags |= HAS_TYPES;
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
    if step.types != 0 {
        out.extend_from_slice(&step.types.to_le_bytes());
    }
    put_varint(out, zigzag(step.started_at.wrapping_sub(base) as i64));
    if let Some(finished) = step.finished_at {
        put_varint(out, zigzag(finished.wrapping_sub(step.started_at) as i64));
    }
    pack(out, &step.output);
}

pub(super) fn decode_step(base: u64, bytes: &[u8]) -> std::result::Result<StepRecord, String> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes).map_err(|error| error.to_string());
    }
    let mut reader = Reader::new(bytes);
    let step = (|| {
        let flags = reader.byte()?;
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
        let types = if flags & HAS_TYPES != 0 {
            u32::from_le_bytes(reader.take(4)?.try_into().ok()?)
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
            types,
        })
    })();
    step.ok_or_else(|| "not a step record".to_owned())
}

/// A journal chunk: `varint(base)` (the first step's start, which the others' starts are
/// relative to), then entries `varint(shared) varint(len) id-suffix varint(len) step`, where
/// `shared` is how many leading bytes the step id shares with the previous entry's.
/// A later entry for the same step id replaces an earlier one (a higher `seq` wins).
/// sled writes chunks with [`append`](Chunk::append) (base: the first step's start, shared id
/// prefixes); PostgreSQL with [`concatenable`](Chunk::concatenable) (base 0, nothing shared),
/// which is the same framing and reads the same way.
pub(crate) struct Chunk;

/// One entry read from a chunk: the step id and its record (or why it does not decode).
pub(crate) type ChunkEntry = (String, std::result::Result<StepRecord, String>);

impl Chunk {
    /// `chunk` (empty for a new one) with `steps` appended.
    pub(crate) fn append(chunk: &[u8], steps: &[(&str, &StepRecord)]) -> Option<Vec<u8>> {
        let (base, last_id) = if chunk.is_empty() {
            (steps.first()?.1.started_at, Vec::new())
        } else {
            let mut framing = Framing::of(chunk)?;
            let mut last = Vec::new();
            for entry in &mut framing {
                entry?.id_into(&mut last)?;
            }
            (framing.base, last)
        };
        let mut out = Vec::with_capacity(chunk.len() + 24 * steps.len() + 8);
        if chunk.is_empty() {
            put_varint(&mut out, base);
        } else {
            out.extend_from_slice(chunk);
        }
        let mut previous = last_id;
        let mut record = Vec::with_capacity(32);
        for (id, step) in steps {
            record.clear();
            encode_step(&mut record, base, step);
            put_entry(&mut out, &previous, id, &record);
            previous.clear();
            previous.extend_from_slice(id.as_bytes());
        }
        Some(out)
    }

    /// `steps` as a chunk whose base is 0 and whose entries share no id prefix. Chunks of this
    /// kind append by concatenation: the entries of one (all after its first byte, the base)
    /// can follow another's, so a database appends on its side (`steps || substring(new
    /// FROM 2)`) without reading the chunk first.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn concatenable(steps: &[(&str, &StepRecord)]) -> Vec<u8> {
        let mut out = vec![0];
        let mut record = Vec::with_capacity(32);
        for (id, step) in steps {
            record.clear();
            encode_step(&mut record, 0, step);
            put_entry(&mut out, &[], id, &record);
        }
        out
    }

    /// A [`concatenable`](Chunk::concatenable) chunk of one step kept as stored before
    /// (bytes that did not decode as a step).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn concatenable_raw(id: &str, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        put_entry(&mut out, &[], id, bytes);
        out
    }

    /// Appends a step kept as it was stored by format 1 (bytes that did not decode).
    pub(crate) fn append_raw(chunk: &[u8], id: &str, bytes: &[u8]) -> Option<Vec<u8>> {
        // Reuse the framing of `append` with a placeholder, then swap its record bytes.
        let mut out = if chunk.is_empty() { vec![0] } else { chunk.to_vec() };
        let entries = Chunk::entries(&out)?;
        let previous = entries.last().map(|(id, _)| id.as_bytes()).unwrap_or_default();
        put_entry(&mut out, previous, id, bytes);
        Some(out)
    }

    /// Every entry of a chunk, in the order written; `None` when its framing is damaged.
    pub(crate) fn entries(chunk: &[u8]) -> Option<Vec<ChunkEntry>> {
        let mut entries = Vec::new();
        Chunk::read(chunk, |id, record| entries.push((id, record)))?;
        Some(entries)
    }

    /// Hands every entry of a chunk to `each`, in the order written; `None` when its framing
    /// is damaged (the entries before the damage were handed over).
    fn read(
        chunk: &[u8],
        mut each: impl FnMut(String, std::result::Result<StepRecord, String>),
    ) -> Option<()> {
        let mut framing = Framing::of(chunk)?;
        let base = framing.base;
        let mut id = Vec::new();
        for entry in &mut framing {
            let entry = entry?;
            entry.id_into(&mut id)?;
            each(
                String::from_utf8(id.clone()).ok()?,
                decode_step(base, entry.record),
            );
        }
        Some(())
    }

    /// How many entries a chunk holds, read from its framing alone; `None` when it is
    /// damaged.
    fn count(chunk: &[u8]) -> Option<usize> {
        Framing::of(chunk)?.try_fold(0, |count, entry| entry.map(|_| count + 1))
    }
}

/// The framing of a chunk: its base, then its entries as written.
struct Framing<'a> {
    base: u64,
    reader: Reader<'a>,
}

/// One entry of a chunk's framing, its id relative to the entry before it.
struct FramedEntry<'a> {
    /// How many leading bytes the id shares with the previous entry's.
    shared: usize,
    /// The rest of the id.
    suffix: &'a [u8],
    /// The encoded step.
    record: &'a [u8],
}

impl<'a> Framing<'a> {
    fn of(chunk: &'a [u8]) -> Option<Framing<'a>> {
        let mut reader = Reader::new(chunk);
        let base = reader.varint()?;
        Some(Framing { base, reader })
    }
}

impl<'a> Iterator for Framing<'a> {
    /// `None` inside when the framing is damaged here.
    type Item = Option<FramedEntry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.reader.done() {
            return None;
        }
        let mut entry = || {
            let shared = self.reader.len()?;
            let len = self.reader.len()?;
            let suffix = self.reader.take(len)?;
            let len = self.reader.len()?;
            let record = self.reader.take(len)?;
            Some(FramedEntry {
                shared,
                suffix,
                record,
            })
        };
        let entry = entry();
        if entry.is_none() {
            // Damaged: nothing after this point is framing.
            self.reader = Reader::new(&[]);
        }
        Some(entry)
    }
}

impl FramedEntry<'_> {
    /// Turns `previous` (the previous entry's id) into this entry's id; `None` when it
    /// claims to share more than there is.
    fn id_into(&self, previous: &mut Vec<u8>) -> Option<()> {
        if self.shared > previous.len() {
            return None;
        }
        previous.truncate(self.shared);
        previous.extend_from_slice(self.suffix);
        Some(())
    }
}

/// One chunk entry: the id as the suffix it does not share with `previous`, then the record.
fn put_entry(out: &mut Vec<u8>, previous: &[u8], id: &str, record: &[u8]) {
    let id = id.as_bytes();
    let shared = previous.iter().zip(id).take_while(|(a, b)| a == b).count();
    put_varint(out, shared as u64);
    put_varint(out, (id.len() - shared) as u64);
    out.extend_from_slice(&id[shared..]);
    put_varint(out, record.len() as u64);
    out.extend_from_slice(record);
}

/// Groups steps by the journal chunk they go to, in order.
pub(crate) fn by_chunk(steps: &[(String, StepRecord)]) -> Vec<(u32, Vec<(&str, &StepRecord)>)> {
    let mut chunks: Vec<(u32, Vec<(&str, &StepRecord)>)> = Vec::new();
    for (step_id, step) in steps {
        let chunk = chunk_of(step);
        match chunks.iter_mut().find(|(number, _)| *number == chunk) {
            Some((_, entries)) => entries.push((step_id, step)),
            None => chunks.push((chunk, vec![(step_id.as_str(), step)])),
        }
    }
    chunks
}

/// A run's journal from its chunks: every step id once, in step-id order. Of two entries for
/// one step id the higher `seq` wins, and of equal ones the later.
pub(crate) fn journal_of<'a>(
    run_id: &str,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<(String, StepRecord)>> {
    let corrupt = |step: Option<String>, detail: String| Error::CorruptRecord {
        run_id: run_id.to_owned(),
        record: match &step {
            Some(step_id) => format!("journal entry of step `{step_id}`"),
            None => "journal chunk".to_owned(),
        },
        step,
        detail,
    };
    let damaged = || corrupt(None, "the chunk's framing does not decode".to_owned());
    let chunks: Vec<&[u8]> = chunks.into_iter().collect();
    let mut count = 0;
    for chunk in &chunks {
        count += Chunk::count(chunk).ok_or_else(damaged)?;
    }
    let mut steps: Vec<(String, StepRecord)> = Vec::with_capacity(count);
    let mut undecodable = None;
    for chunk in &chunks {
        Chunk::read(chunk, |step_id, step| match step {
            Ok(step) => steps.push((step_id, step)),
            Err(detail) => {
                undecodable.get_or_insert_with(|| corrupt(Some(step_id), detail));
            }
        })
        .ok_or_else(damaged)?;
    }
    match undecodable {
        Some(error) => Err(error),
        None => Ok(in_step_id_order(steps)),
    }
}

/// The chunk a step belongs to.
/// Capped at `i32::MAX` (17 billion steps), so that every backend can store the number as a
/// signed 32-bit integer; a run past it keeps appending to its last chunk.
pub(crate) fn chunk_of(step: &StepRecord) -> u32 {
    (step.seq / CHUNK_STEPS).min(i32::MAX as u64) as u32
}
