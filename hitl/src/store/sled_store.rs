//! The sled implementation of [`Store`], and the checks made before sled touches a directory.
//!
//! A hitl database is a directory holding sled's files plus two of ours:
//! `hitl.json` (the marker: format name and version) and `hitl.lock` (an advisory lock held
//! while an engine has the directory open). Opening refuses, before sled writes anything,
//! a directory that is neither empty nor marked, one locked by another process, and one whose
//! marker names a newer format. A sled panic or corruption error while opening is contained
//! and reported as [`Error::Corrupt`].

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sled::Transactional;

use super::group_commit::GroupCommit;
use super::open_guard::{self, LastClose};
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{
    FORMAT_VERSION, FlushFuture, RunRecord, StepRecord, Store, Timer, decode, encode, run_key, run_prefix,
};
use crate::error::{Error, Result};
use crate::model::outbox::OutboxRecord;
use crate::model::request::{RequestRecord, RequestStatus};
use crate::model::resolve::wake_for as resolution_wake;
use crate::util::lock;

const MARKER_FILE: &str = "hitl.json";
const LOCK_FILE: &str = "hitl.lock";

/// How to open the sled database.
#[derive(Debug, Clone)]
pub(crate) struct SledOptions {
    /// `None` for a temporary in-memory database removed on drop.
    pub path: Option<PathBuf>,
    pub cache_capacity: u64,
    pub flush_every_ms: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: String,
    version: u32,
}

/// A hitl database in a sled directory.
pub(crate) struct SledStore {
    db: sled::Db,
    runs: sled::Tree,
    journal: sled::Tree,
    channels: sled::Tree,
    definitions: sled::Tree,
    requests: sled::Tree,
    pending: sled::Tree,
    outbox: sled::Tree,
    timers: sled::Tree,
    meta: sled::Tree,
    group_commit: Arc<GroupCommit>,
    /// Declared after the sled handles, so it drops after them and before the lock.
    _clean_close: CleanClose,
    /// Held for as long as the store lives; dropping it releases the directory.
    _lock: Option<File>,
    /// Declared last so it drops last: the path counts as open in this process until the
    /// sled handles above are gone.
    _open: Option<OpenPath>,
}

/// Directories opened by this process. Reopening one waits briefly for the previous engine
/// to finish dropping (its aborted tasks release their handles asynchronously).
static OPEN_PATHS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// How long an open waits for a directory this process is still releasing.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

struct OpenPath(PathBuf);

impl OpenPath {
    /// Registers `path` as open in this process, waiting for a previous engine to let go.
    fn claim(path: &Path) -> Result<OpenPath> {
        let key = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let deadline = Instant::now() + RELEASE_WAIT;
        loop {
            if lock(&OPEN_PATHS).insert(key.clone()) {
                return Ok(OpenPath(key));
            }
            if Instant::now() >= deadline {
                return Err(Error::DatabaseLocked {
                    path: path.to_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for OpenPath {
    fn drop(&mut self) {
        lock(&OPEN_PATHS).remove(&self.0);
    }
}

impl SledStore {
    pub(crate) fn open(options: &SledOptions) -> Result<Self> {
        let Some(path) = &options.path else {
            let config = sled::Config::new().temporary(true);
            return Self::open_sled(options, config, Path::new(""), None, None, None);
        };
        let open = OpenPath::claim(path)?;
        let (lock, created_lock) = prepare_directory(path)?;
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let guarded = (|| {
            if unguarded_for_benchmarks() {
                return Ok((LastClose::Unknown, None));
            }
            open_guard::recover_interrupted_open(path).map_err(io)?;
            if let Some(detail) = open_guard::missing_log(path).map_err(io)? {
                return Err(Error::Corrupt {
                    path: path.to_owned(),
                    detail,
                });
            }
            // After a clean close sled opens without repairs; otherwise keep a copy to put back.
            let last_close = open_guard::last_close(path);
            if last_close == LastClose::Clean {
                Ok((last_close, None))
            } else {
                let backup = open_guard::OpenBackup::take(path).map_err(io)?;
                Ok((last_close, Some(backup)))
            }
        })();
        let (last_close, backup) = match guarded {
            Ok(backup) => backup,
            Err(error) => {
                drop(lock);
                if created_lock {
                    let _ = fs::remove_file(path.join(LOCK_FILE));
                }
                return Err(error);
            }
        };
        // A second handle on the lock keeps the directory ours while a failed open is undone.
        let held = lock.try_clone().map_err(io)?;
        let config = sled::Config::new().path(path);
        let opened = Self::open_sled(options, config, path, Some(lock), Some(open), Some(path.clone()))
            .and_then(|store| match (last_close, &backup) {
                (LastClose::CleanButChanged, Some(backup)) => {
                    // Files changed after a clean close have no torn tail: if sled's recovery
                    // rewrote written bytes of its log, it is dropping the records behind
                    // damaged bytes. Refuse rather than open a database that lost runs.
                    let rewritten = backup.rewritten_log_bytes();
                    if matches!(rewritten, Ok(None)) {
                        return Ok(store);
                    }
                    store.close_without_clean_mark();
                    Err(match rewritten {
                        Ok(Some((first, count))) => Error::Corrupt {
                            path: path.to_owned(),
                            detail: format!(
                                "its log `db` was changed after it was last closed, and reading \
                                 it would discard every record after byte {first} ({count} bytes \
                                 of written data would be rewritten)"
                            ),
                        },
                        Err(source) => io(source),
                        Ok(None) => unreachable!("returned above"),
                    })
                }
                _ => Ok(store),
            });
        match opened {
            Ok(store) => {
                if let Some(backup) = backup {
                    backup.discard();
                }
                open_guard::clear_clean_mark(path);
                Ok(store)
            }
            Err(error) => {
                // sled is gone (the failed open dropped it): put its files back as they were.
                if let Some(backup) = backup
                    && let Err(restore) = backup.restore()
                {
                    return Err(Error::Io {
                        path: path.to_owned(),
                        source: std::io::Error::other(format!(
                            "{error}; and restoring the files set aside before the open failed: {restore}; \
                             they are in `{}`",
                            open_guard::BACKUP_DIR
                        )),
                    });
                }
                drop(held);
                if created_lock {
                    let _ = fs::remove_file(path.join(LOCK_FILE));
                }
                Err(error)
            }
        }
    }

    fn open_sled(
        options: &SledOptions,
        config: sled::Config,
        display_path: &Path,
        lock: Option<File>,
        open: Option<OpenPath>,
        clean_close: Option<PathBuf>,
    ) -> Result<Self> {
        let config = config
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(options.flush_every_ms);
        let display_path = display_path.to_owned();

        let deadline = Instant::now() + RELEASE_WAIT;
        let db = loop {
            match catch_unwind(AssertUnwindSafe(|| config.open())) {
                Ok(Ok(db)) => break db,
                Ok(Err(error)) => match classify_open_error(&display_path, error) {
                    // We hold `hitl.lock`, so no other process has the directory: sled's own
                    // lock is still held by a handle of this process that is being dropped.
                    Error::DatabaseLocked { .. } if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    error => return Err(error),
                },
                Err(panic) => {
                    return Err(Error::Corrupt {
                        path: display_path,
                        detail: format!(
                            "sled panicked while reading it: {}",
                            crate::util::panic_message(&*panic)
                        ),
                    });
                }
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(Error::from);
        Ok(SledStore {
            runs: tree("runs")?,
            journal: tree("journal")?,
            channels: tree("channels")?,
            definitions: tree("definitions")?,
            requests: tree("requests")?,
            pending: tree("pending")?,
            outbox: tree("outbox")?,
            timers: tree("timers")?,
            meta: tree("meta")?,
            group_commit: GroupCommit::new(db.clone()),
            db,
            _clean_close: CleanClose(clean_close),
            _lock: lock,
            _open: open,
        })
    }
}

impl SledStore {
    /// Drops the store without recording a clean close (the open is being undone).
    fn close_without_clean_mark(mut self) {
        self._clean_close.0 = None;
    }
}

/// For the open benchmark only (feature `failpoints`): `HITL_UNGUARDED_OPEN=1` opens without
/// the protections of [`open_guard`], so that their cost can be measured in the same run.
fn unguarded_for_benchmarks() -> bool {
    cfg!(feature = "failpoints") && std::env::var_os("HITL_UNGUARDED_OPEN").is_some()
}

/// Marks the directory cleanly closed once the sled handles declared before it are dropped.
struct CleanClose(Option<PathBuf>);

impl Drop for CleanClose {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            open_guard::mark_clean_close(dir);
        }
    }
}

/// Makes sure `path` is a hitl database directory (creating one if it is new or empty) and
/// takes its lock, all before sled opens it. Returns the lock and whether its file is new.
fn prepare_directory(path: &Path) -> Result<(File, bool)> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => {
            return Err(Error::NotAHitlDatabase {
                path: path.to_owned(),
                found: "a file, not a directory".to_owned(),
            });
        }
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::NotFound => fs::create_dir_all(path).map_err(io)?,
        Err(error) => return Err(io(error)),
    }

    let marker_path = path.join(MARKER_FILE);
    match fs::read(&marker_path) {
        Ok(bytes) => {
            let marker: Marker = serde_json::from_slice(&bytes).map_err(|_| Error::NotAHitlDatabase {
                path: path.to_owned(),
                found: format!("`{MARKER_FILE}` is not a hitl marker"),
            })?;
            if marker.format != "hitl" {
                return Err(Error::NotAHitlDatabase {
                    path: path.to_owned(),
                    found: format!("a `{}` database", marker.format),
                });
            }
            if marker.version > FORMAT_VERSION {
                return Err(Error::UnsupportedFormat {
                    path: path.to_owned(),
                    found: marker.version,
                    supported: FORMAT_VERSION,
                });
            }
        }
        Err(error) if error.kind() == ErrorKind::NotFound => {
            let mut entries: Vec<String> = fs::read_dir(path)
                .map_err(io)?
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            if !entries.is_empty() {
                entries.sort();
                let shown: Vec<_> = entries.iter().take(5).map(|e| format!("`{e}`")).collect();
                let more = if entries.len() > 5 { ", …" } else { "" };
                return Err(Error::NotAHitlDatabase {
                    path: path.to_owned(),
                    found: format!("it holds {}{more} and no `{MARKER_FILE}`", shown.join(", ")),
                });
            }
            let marker = Marker {
                format: "hitl".to_owned(),
                version: FORMAT_VERSION,
            };
            fs::write(&marker_path, encode("the database marker", &marker)?).map_err(io)?;
        }
        Err(error) => return Err(io(error)),
    }

    let lock_path = path.join(LOCK_FILE);
    let created = !lock_path.exists();
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io)?;
    // A lock this process just released can still be held for a moment by a child process
    // being spawned on another thread (between its fork and its exec it shares the lock's
    // file); wait that out briefly before reporting another process.
    let deadline = Instant::now() + LOCK_HANDOVER_WAIT;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok((lock, created)),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::DatabaseLocked {
                    path: path.to_owned(),
                });
            }
            Err(fs::TryLockError::Error(error)) => return Err(io(error)),
        }
    }
}

/// How long an open waits for `hitl.lock` before it reports the database in use.
const LOCK_HANDOVER_WAIT: Duration = Duration::from_secs(2);

/// sled reports a held lock only as an I/O error with a message; recognise it.
fn classify_open_error(path: &Path, error: sled::Error) -> Error {
    match error {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => Error::DatabaseLocked {
            path: path.to_owned(),
        },
        sled::Error::Corruption { .. } | sled::Error::Unsupported(_) => Error::Corrupt {
            path: path.to_owned(),
            detail: error.to_string(),
        },
        sled::Error::Io(ref io) if io.kind() == ErrorKind::InvalidData => Error::Corrupt {
            path: path.to_owned(),
            detail: error.to_string(),
        },
        other => Error::Storage(other),
    }
}

impl Store for SledStore {
    fn load_run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        self.runs
            .get(run_id)?
            .map(|bytes| decode(run_id.as_bytes(), &bytes))
            .transpose()
    }

    fn save_run(&self, run: &RunRecord) -> Result<()> {
        self.runs.insert(run.id.as_bytes(), encode("a run", run)?)?;
        Ok(())
    }

    fn create_run(&self, run: &RunRecord) -> Result<Option<RunRecord>> {
        let bytes = encode("a run", run)?;
        match self
            .runs
            .compare_and_swap(run.id.as_bytes(), None as Option<&[u8]>, Some(bytes))?
        {
            Ok(()) => Ok(None),
            Err(existing) => {
                let current = existing.current.unwrap_or_default();
                Ok(Some(decode(run.id.as_bytes(), &current)?))
            }
        }
    }

    fn list_runs(&self) -> Result<Vec<RunRecord>> {
        let mut runs = Vec::new();
        for entry in self.runs.iter() {
            let (key, bytes) = entry?;
            // One damaged run record must not hide every other run: it is reported and left
            // as it is (its bytes are evidence), and `load_run` of that id reports it too.
            match decode(&key, &bytes) {
                Ok(run) => runs.push(run),
                Err(error) => tracing::error!(%error, "skipping a run record that cannot be read"),
            }
        }
        Ok(runs)
    }

    fn load_journal(&self, run_id: &str) -> Result<Vec<(String, StepRecord)>> {
        let prefix = run_prefix(run_id);
        self.journal
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, bytes) = entry?;
                let step_id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                match serde_json::from_slice(&bytes) {
                    Ok(step) => Ok((step_id, step)),
                    Err(error) => Err(Error::CorruptRecord {
                        run_id: run_id.to_owned(),
                        record: format!("journal entry of step `{step_id}`"),
                        step: Some(step_id),
                        detail: error.to_string(),
                    }),
                }
            })
            .collect()
    }

    fn append_step(&self, run_id: &str, step_id: &str, step: &StepRecord) -> Result<()> {
        self.journal
            .insert(run_key(run_id, step_id), encode("a step output", step)?)?;
        Ok(())
    }

    fn append_channel_set(
        &self,
        run_id: &str,
        step_id: &str,
        step: &StepRecord,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        let step_key = run_key(run_id, step_id);
        let step_bytes = encode("a step output", step)?;
        let channel_key = run_key(run_id, key);
        let channel_bytes = encode("a channel value", value)?;
        (&self.journal, &self.channels)
            .transaction(|(journal, channels)| {
                journal.insert(step_key.as_slice(), step_bytes.as_slice())?;
                channels.insert(channel_key.as_slice(), channel_bytes.as_slice())?;
                Ok(())
            })
            .map_err(transaction_error)
    }

    fn channel_value(&self, run_id: &str, key: &str) -> Result<Option<Value>> {
        let key = run_key(run_id, key);
        self.channels
            .get(&key)?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }

    fn save_definition(&self, workflow: &str, fingerprint: &str, sites: &[String]) -> Result<()> {
        let key = run_key(workflow, fingerprint);
        if !self.definitions.contains_key(&key)? {
            self.definitions
                .insert(key, encode("a workflow definition", &sites)?)?;
        }
        Ok(())
    }

    fn load_definition(&self, workflow: &str, fingerprint: &str) -> Result<Option<Vec<String>>> {
        let key = run_key(workflow, fingerprint);
        self.definitions
            .get(&key)?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }

    fn create_request(
        &self,
        step: &StepRecord,
        request: &RequestRecord,
        outbox: &[OutboxRecord],
        expiry: Option<Timer>,
    ) -> Result<()> {
        let step_key = run_key(&request.run_id, &request.step_id);
        let step_bytes = encode("a step", step)?;
        let request_bytes = encode("a request", request)?;
        let pending_key = run_key(&request.run_id, &request.id);
        let outbox: Vec<(String, Vec<u8>)> = outbox
            .iter()
            .map(|record| Ok((record.id.clone(), encode("a notification", record)?)))
            .collect::<Result<_>>()?;
        let expiry = expiry.map(|timer| timer.key());
        (
            &self.journal,
            &self.requests,
            &self.pending,
            &self.outbox,
            &self.timers,
        )
            .transaction(|(journal, requests, pending, outbox_tree, timers)| {
                journal.insert(step_key.as_slice(), step_bytes.as_slice())?;
                requests.insert(request.id.as_bytes(), request_bytes.as_slice())?;
                pending.insert(pending_key.as_slice(), &[])?;
                for (id, bytes) in &outbox {
                    outbox_tree.insert(id.as_bytes(), bytes.as_slice())?;
                }
                if let Some(key) = &expiry {
                    timers.insert(key.as_slice(), &[])?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }

    fn load_request(&self, request_id: &str) -> Result<Option<RequestRecord>> {
        self.requests
            .get(request_id)?
            .map(|bytes| decode(request_id.as_bytes(), &bytes))
            .transpose()
    }

    fn update_request(
        &self,
        request_id: &str,
        change: &dyn Fn(&RequestRecord) -> Result<Option<RequestRecord>>,
        wake_run: bool,
    ) -> Result<RequestRecord> {
        let result =
            (&self.requests, &self.pending, &self.timers).transaction(|(requests, pending, timers)| {
                let abort = |error: Error| ConflictableTransactionError::Abort(error);
                let bytes = requests.get(request_id.as_bytes())?.ok_or_else(|| {
                    abort(Error::RequestNotFound {
                        request_id: request_id.to_owned(),
                    })
                })?;
                let current: RequestRecord = decode(request_id.as_bytes(), &bytes).map_err(abort)?;
                let Some(updated) = change(&current).map_err(abort)? else {
                    return Ok(current);
                };
                requests.insert(
                    request_id.as_bytes(),
                    encode("a request", &updated).map_err(abort)?,
                )?;
                if updated.status != RequestStatus::Pending {
                    pending.remove(run_key(&updated.run_id, &updated.id))?;
                    if wake_run {
                        timers.insert(resolution_wake(&updated).key(), &[])?;
                    }
                }
                Ok(updated)
            });
        result.map_err(|error| match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => Error::Storage(error),
        })
    }

    fn pending_requests(&self, run_id: Option<&str>) -> Result<Vec<RequestRecord>> {
        let entries = match run_id {
            Some(run_id) => self.pending.scan_prefix(run_prefix(run_id)),
            None => self.pending.iter(),
        };
        let mut requests = Vec::new();
        for entry in entries {
            let (key, _) = entry?;
            let Some(split) = key.iter().position(|byte| *byte == 0) else {
                continue;
            };
            let request_id = String::from_utf8_lossy(&key[split + 1..]).into_owned();
            match self.load_request(&request_id) {
                Ok(Some(request)) => requests.push(request),
                Ok(None) => {}
                Err(error @ Error::Decode { .. }) => {
                    tracing::error!(%error, "skipping a request record that cannot be read");
                }
                Err(error) => return Err(error),
            }
        }
        requests.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(requests)
    }

    fn undelivered(&self) -> Result<Vec<OutboxRecord>> {
        let mut records = Vec::new();
        for entry in self.outbox.iter() {
            let (key, bytes) = entry?;
            let record: OutboxRecord = match decode(&key, &bytes) {
                Ok(record) => record,
                Err(error) => {
                    tracing::error!(%error, "skipping a notification record that cannot be read");
                    continue;
                }
            };
            if record.delivered_at.is_none() && !record.gave_up {
                records.push(record);
            }
        }
        Ok(records)
    }

    fn outbox_of(&self, request_id: &str) -> Result<Vec<OutboxRecord>> {
        self.outbox
            .scan_prefix(format!("{request_id}/"))
            .map(|entry| {
                let (key, bytes) = entry?;
                decode(&key, &bytes)
            })
            .collect()
    }

    fn save_outbox(&self, record: &OutboxRecord) -> Result<()> {
        self.outbox
            .insert(record.id.as_bytes(), encode("a notification", record)?)?;
        Ok(())
    }

    fn add_timer(&self, timer: &Timer) -> Result<()> {
        self.timers.insert(timer.key(), &[])?;
        Ok(())
    }

    fn remove_timer(&self, timer: &Timer) -> Result<()> {
        self.timers.remove(timer.key())?;
        Ok(())
    }

    fn timers(&self) -> Result<Vec<Timer>> {
        let mut timers = Vec::new();
        for entry in self.timers.iter() {
            let (key, _) = entry?;
            timers.extend(Timer::from_key(&key));
        }
        Ok(timers)
    }

    fn secret(&self) -> Result<Vec<u8>> {
        let fresh: Vec<u8> = uuid::Uuid::new_v4()
            .as_bytes()
            .iter()
            .chain(uuid::Uuid::new_v4().as_bytes())
            .copied()
            .collect();
        // Whoever writes first wins; later callers read the same key.
        let _ = self
            .meta
            .compare_and_swap("secret", None as Option<&[u8]>, Some(fresh))?;
        self.meta.flush()?;
        Ok(self
            .meta
            .get("secret")?
            .map(|key| key.to_vec())
            .unwrap_or_default())
    }

    fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    fn logical_size(&self) -> Result<u64> {
        let mut bytes = 0;
        for tree in [
            &self.runs,
            &self.journal,
            &self.channels,
            &self.definitions,
            &self.requests,
            &self.pending,
            &self.outbox,
            &self.timers,
            &self.meta,
        ] {
            for entry in tree.iter() {
                let (key, value) = entry?;
                bytes += (key.len() + value.len()) as u64;
            }
        }
        Ok(bytes)
    }

    fn flush(&self) -> FlushFuture {
        self.group_commit.flush()
    }

    fn flush_blocking(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

fn transaction_error(error: TransactionError<()>) -> Error {
    match error {
        TransactionError::Storage(error) => Error::Storage(error),
        TransactionError::Abort(()) => Error::Storage(sled::Error::ReportableBug(
            "a transaction without aborts aborted".to_owned(),
        )),
    }
}
