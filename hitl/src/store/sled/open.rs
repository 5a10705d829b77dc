//! Opening a sled directory as a hitl database: the marker and lock checked before sled
//! touches anything, sled's own open contained, the clean-close record written at the end.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::group_commit::GroupCommit;
use super::open_guard::{self, LastClose};
use super::{SledOptions, SledStore, format, migrate};
use crate::error::{Error, Result};
use crate::store::encode;
use crate::util::lock;

const MARKER_FILE: &str = "hitl.json";
const LOCK_FILE: &str = "hitl.lock";

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: String,
    version: u32,
}

/// Directories opened by this process. Reopening one waits briefly for the previous engine
/// to finish dropping (its aborted tasks release their handles asynchronously).
static OPEN_PATHS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// How long an open waits for a directory this process is still releasing.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

pub(super) struct OpenPath(PathBuf);

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
        let (lock, created_lock, version) = prepare_directory(path)?;
        // A migration changes sled's files: it always runs with a copy to put back.
        let migrating = version < format::VERSION;
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
            if last_close == LastClose::Clean && !migrating {
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
            })
            .and_then(|store| {
                if !migrating {
                    return Ok(store);
                }
                match migrate::upgrade(&store, version) {
                    Ok(()) => Ok(store),
                    Err(error) => {
                        store.close_without_clean_mark();
                        Err(error)
                    }
                }
            });
        match opened {
            Ok(store) => {
                if let Some(backup) = backup {
                    backup.discard();
                }
                open_guard::clear_clean_mark(path);
                if migrating {
                    // The converted records are durable: from here on the database is in the
                    // current format.
                    write_marker(path, format::VERSION)?;
                    crate::failpoint::hit("migrate_after_marker");
                }
                migrate::drop_old_trees(&store.db)?;
                store.find_unsettled()?;
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
        let tree = |name: &str| db.open_tree(name).map_err(super::sled_error);
        Ok(SledStore {
            runs: tree(format::RUNS)?,
            journal: tree(format::JOURNAL)?,
            channels: tree("channels")?,
            definitions: tree("definitions")?,
            requests: tree(format::REQUESTS)?,
            outbox: tree("outbox")?,
            timers: tree("timers")?,
            meta: tree("meta")?,
            group_commit: GroupCommit::new(db.clone()),
            unsettled: Mutex::default(),
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
pub(super) struct CleanClose(Option<PathBuf>);

impl Drop for CleanClose {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            open_guard::mark_clean_close(dir);
        }
    }
}

/// Makes sure `path` is a hitl database directory (creating one if it is new or empty) and
/// takes its lock, all before sled opens it. Returns the lock, whether its file is new, and
/// the format version the marker names (a new database is marked with the current one).
fn prepare_directory(path: &Path) -> Result<(File, bool, u32)> {
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
    let version = match fs::read(&marker_path) {
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
            if marker.version > format::VERSION || marker.version == 0 {
                return Err(Error::UnsupportedFormat {
                    path: path.to_owned(),
                    found: marker.version,
                    supported: format::VERSION,
                });
            }
            marker.version
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
            write_marker(path, format::VERSION)?;
            format::VERSION
        }
        Err(error) => return Err(io(error)),
    };

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
            Ok(()) => return Ok((lock, created, version)),
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

/// Writes the marker naming format `version`, atomically: a new file renamed over the old
/// one (and the directory synced), so a crash leaves the old marker or the new one.
fn write_marker(path: &Path, version: u32) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let marker = Marker {
        format: "hitl".to_owned(),
        version,
    };
    let temporary = path.join(format!("{MARKER_FILE}.tmp"));
    let mut file = File::create(&temporary).map_err(io)?;
    std::io::Write::write_all(&mut file, &encode("the database marker", &marker)?).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&temporary, path.join(MARKER_FILE)).map_err(io)?;
    if let Ok(dir) = File::open(path) {
        let _ = dir.sync_all();
    }
    Ok(())
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
        other => super::sled_error(other),
    }
}
