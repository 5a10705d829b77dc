//! An open that fails leaves the database directory exactly as it was.
//!
//! sled has no read-only mode: its recovery treats damaged bytes as a torn tail and rewrites
//! the log from there, and it creates files that are missing. So before sled sees a
//! directory, hitl makes sure it can undo whatever sled does:
//!
//! * **After a clean close** the directory holds `hitl.clean`: the length and CRC-32 of every
//!   sled file, written once sled had let go of them. When every file still matches, the
//!   files are exactly what sled left after a clean close, which sled opens without repairs —
//!   the open goes ahead directly (the cost is reading the files once to check them).
//! * **Otherwise** (a crash, or bytes changed since the close) sled's files are first copied
//!   to `hitl.open-backup/`. If the open fails, the copies are renamed back and every file
//!   sled created is removed; if it succeeds, the copies are deleted. A backup left by a
//!   process that died mid-open is put back before anything else happens.

use std::fs::{self, File};
use std::io::{self, ErrorKind, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Written after a clean close: what sled's files looked like then.
pub(super) const CLEAN_FILE: &str = "hitl.clean";
/// Copies of sled's files while an open that may need repairs is in progress.
pub(super) const BACKUP_DIR: &str = "hitl.open-backup";
/// Inside [`BACKUP_DIR`]: present once the copy is whole.
const BACKUP_COMPLETE: &str = "complete.json";

/// Files of hitl's own in the directory; everything else belongs to sled.
const OWN_FILES: [&str; 5] = ["hitl.json", "hitl.json.tmp", "hitl.lock", CLEAN_FILE, BACKUP_DIR];

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileSum {
    path: String,
    len: u64,
    crc32: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct CleanMarker {
    files: Vec<FileSum>,
}

/// sled's files under `dir`, as paths relative to it, sorted.
fn sled_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(dir.join(&folder))? {
            let entry = entry?;
            let name = entry.file_name();
            if folder.as_os_str().is_empty() && OWN_FILES.iter().any(|own| name == *own) {
                continue;
            }
            let relative = folder.join(&name);
            if entry.file_type()?.is_dir() {
                folders.push(relative);
            } else {
                files.push(relative);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn checksum(path: &Path) -> io::Result<FileSum> {
    let mut file = File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = crate::util::file_read_buffer();
    let mut len = 0;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        len += read as u64;
    }
    Ok(FileSum {
        path: String::new(),
        len,
        crc32: hasher.finalize(),
    })
}

fn sums(dir: &Path) -> io::Result<Vec<FileSum>> {
    sled_files(dir)?
        .into_iter()
        .map(|relative| {
            let sum = checksum(&dir.join(&relative))?;
            Ok(FileSum {
                path: relative.to_string_lossy().into_owned(),
                ..sum
            })
        })
        .collect()
}

/// What the directory says of its last close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LastClose {
    /// Closed cleanly and unchanged since: sled opens it without repairs.
    Clean,
    /// Closed cleanly, but sled's files changed since: damage, not a torn tail.
    CleanButChanged,
    /// No clean close recorded (a crash, or an older hitl): sled may repair a torn tail.
    Unknown,
}

/// How the directory was last closed, checked against sled's files.
pub(super) fn last_close(dir: &Path) -> LastClose {
    let Ok(bytes) = fs::read(dir.join(CLEAN_FILE)) else {
        return LastClose::Unknown;
    };
    let Ok(marker) = serde_json::from_slice::<CleanMarker>(&bytes) else {
        return LastClose::Unknown;
    };
    // Lengths first: a changed size is found without reading anything.
    let Ok(files) = sled_files(dir) else {
        return LastClose::Unknown;
    };
    let sizes_match = files.len() == marker.files.len()
        && files.iter().zip(&marker.files).all(|(relative, sum)| {
            relative.to_string_lossy() == sum.path
                && fs::metadata(dir.join(relative)).is_ok_and(|meta| meta.len() == sum.len)
        });
    if sizes_match && sums(dir).is_ok_and(|now| now == marker.files) {
        LastClose::Clean
    } else {
        LastClose::CleanButChanged
    }
}

/// Records the state of sled's files after a clean close, if sled has let go of them (its
/// lock on the `db` file is free). Best effort: without the marker, the next open only
/// takes the slower, backed-up path.
pub(super) fn mark_clean_close(dir: &Path) {
    let Ok(log) = File::open(dir.join("db")) else {
        return;
    };
    if log.try_lock().is_err() {
        return; // a sled handle of this process still holds the files
    }
    let Ok(files) = sums(dir) else { return };
    let marker = CleanMarker { files };
    let Ok(bytes) = serde_json::to_vec(&marker) else {
        return;
    };
    let temporary = dir.join(format!("{CLEAN_FILE}.tmp"));
    if fs::write(&temporary, bytes).is_ok() && fs::rename(&temporary, dir.join(CLEAN_FILE)).is_ok() {
        return;
    }
    let _ = fs::remove_file(&temporary);
}

/// Forgets the clean state once an open succeeded: sled is about to change the files.
pub(super) fn clear_clean_mark(dir: &Path) {
    let _ = fs::remove_file(dir.join(CLEAN_FILE));
}

/// sled's files as they were before an open, to put back if the open fails.
pub(super) struct OpenBackup {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

impl OpenBackup {
    /// Copies sled's files of `dir` aside.
    pub(super) fn take(dir: &Path) -> io::Result<OpenBackup> {
        let backup = dir.join(BACKUP_DIR);
        let _ = fs::remove_dir_all(&backup);
        let files = sled_files(dir)?;
        for relative in &files {
            let target = backup.join(relative);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::copy(dir.join(relative), &target)?;
        }
        fs::create_dir_all(&backup)?;
        let names: Vec<String> = files
            .iter()
            .map(|relative| relative.to_string_lossy().into_owned())
            .collect();
        let listing = serde_json::to_vec(&names).map_err(io::Error::other)?;
        File::open(&backup)?.sync_all().ok();
        fs::write(backup.join(BACKUP_COMPLETE), listing)?;
        Ok(OpenBackup {
            dir: dir.to_owned(),
            files,
        })
    }

    /// The first byte of sled's log `db` that the open changed from written (non-zero) data
    /// to something else, and how many such bytes there are. After a clean close sled has no
    /// torn tail to repair, so such a change means it is discarding records behind damage.
    pub(super) fn rewritten_log_bytes(&self) -> io::Result<Option<(u64, u64)>> {
        let mut before = File::open(self.dir.join(BACKUP_DIR).join("db"))?;
        let mut after = File::open(self.dir.join("db"))?;
        let (mut old, mut new) = (crate::util::file_read_buffer(), crate::util::file_read_buffer());
        let (mut offset, mut first, mut count) = (0u64, None, 0u64);
        loop {
            let read = read_full(&mut before, &mut old)?;
            if read == 0 {
                break;
            }
            let got = read_full(&mut after, &mut new[..read])?;
            for (index, byte) in old[..read].iter().enumerate() {
                let now = new[..got].get(index).copied().unwrap_or(0);
                if *byte != 0 && now != *byte {
                    first.get_or_insert(offset + index as u64);
                    count += 1;
                }
            }
            offset += read as u64;
        }
        Ok(first.map(|first| (first, count)))
    }

    /// The open succeeded: the copies are not needed.
    pub(super) fn discard(self) {
        let _ = fs::remove_dir_all(self.dir.join(BACKUP_DIR));
    }

    /// The open failed: every sled file is put back as it was, and files sled created are
    /// removed.
    pub(super) fn restore(self) -> io::Result<()> {
        restore_files(&self.dir, &self.files)
    }
}

/// Reads until `buffer` is full or the file ends.
fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
}

fn restore_files(dir: &Path, files: &[PathBuf]) -> io::Result<()> {
    let backup = dir.join(BACKUP_DIR);
    for created in sled_files(dir)? {
        if !files.contains(&created) {
            fs::remove_file(dir.join(&created))?;
        }
    }
    for relative in files {
        let target = dir.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(backup.join(relative), target)?;
    }
    // Folders sled created (its `blobs/`) go too when they were not there before.
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if entry.file_type()?.is_dir()
            && !OWN_FILES.iter().any(|own| name == *own)
            && !files.iter().any(|file| file.starts_with(&name))
        {
            fs::remove_dir_all(entry.path())?;
        }
    }
    fs::remove_dir_all(backup)
}

/// Puts back a whole backup left by a process that died while opening (sled may have begun
/// repairs), and drops a partial one (sled had not started).
pub(super) fn recover_interrupted_open(dir: &Path) -> io::Result<()> {
    let backup = dir.join(BACKUP_DIR);
    match fs::read(backup.join(BACKUP_COMPLETE)) {
        Ok(listing) => {
            let names: Vec<String> = serde_json::from_slice(&listing).map_err(io::Error::other)?;
            let files: Vec<PathBuf> = names.into_iter().map(PathBuf::from).collect();
            tracing::warn!(dir = %dir.display(), "an earlier open was interrupted; restoring the files it had set aside");
            restore_files(dir, &files)
        }
        Err(error) if error.kind() == ErrorKind::NotFound => match fs::remove_dir_all(&backup) {
            Err(error) if error.kind() != ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        },
        Err(error) => Err(error),
    }
}

/// Why a marked database cannot be handed to sled at all: sled would start an empty log
/// beside its other files.
pub(super) fn missing_log(dir: &Path) -> io::Result<Option<String>> {
    let files = sled_files(dir)?;
    if !files.is_empty() && !files.iter().any(|file| file == Path::new("db")) {
        return Ok(Some(
            "sled's log file `db` is missing while its other files are there".to_owned(),
        ));
    }
    Ok(None)
}
