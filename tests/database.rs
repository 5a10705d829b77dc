//! Opening directories that are not usable hitl databases: a clear error, nothing damaged.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hitl::prelude::*;

#[workflow]
async fn hello(name: String) -> String {
    format!("hello {name}")
}

/// Every file under `dir` with its bytes, to prove an open left the directory untouched.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

async fn open(path: &Path) -> hitl::Result<Engine> {
    Engine::builder().path(path).register(hello).open().await
}

#[tokio::test]
async fn a_directory_holding_other_files_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    let before = snapshot(dir.path());

    let error = open(dir.path()).await.unwrap_err();
    assert!(matches!(error, hitl::Error::NotAHitlDatabase { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("is not a hitl database"), "{message}");
    assert!(message.contains("`notes.txt`"), "{message}");
    assert!(message.contains("choose an empty or new directory"), "{message}");
    assert_eq!(snapshot(dir.path()), before, "the directory was modified");
}

#[tokio::test]
async fn a_foreign_sled_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other-app");
    {
        let db = sled::open(&path).unwrap();
        db.insert("key", "value").unwrap();
        db.flush().unwrap();
    }
    let before = snapshot(&path);
    let error = open(&path).await.unwrap_err();
    assert!(matches!(error, hitl::Error::NotAHitlDatabase { .. }), "{error}");
    assert_eq!(snapshot(&path), before);
}

#[tokio::test]
async fn a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.db");
    std::fs::write(&path, "not a directory").unwrap();
    let error = open(&path).await.unwrap_err();
    assert!(error.to_string().contains("a file, not a directory"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a directory");
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hitl.json"), r#"{"format":"hitl","version":99}"#).unwrap();
    let error = open(dir.path()).await.unwrap_err();
    assert!(
        matches!(
            error,
            hitl::Error::UnsupportedFormat {
                found: 99,
                supported: 4,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("upgrade hitl"));
}

#[tokio::test]
async fn a_corrupt_database_gives_a_clear_error_and_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let engine = open(&path).await.unwrap();
    engine
        .start(hello, ("ada".into(),))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    engine.close().await.unwrap();

    // Scribble over every sled file (but our marker).
    for (file, bytes) in snapshot(&path) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name != "hitl.json" && name != "hitl.lock" {
            let garbage: Vec<u8> = (0..bytes.len().max(64)).map(|i| (i * 7 + 13) as u8).collect();
            std::fs::write(&file, garbage).unwrap();
        }
    }
    let before = snapshot(&path);
    let error = open(&path).await.unwrap_err();
    assert!(matches!(error, hitl::Error::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("corrupt"), "{error}");
    assert_eq!(snapshot(&path), before, "a failed open must not change the files");
}

/// The child side of the lock test: opens the database, says so, and holds it.
#[tokio::test]
async fn child_holds_the_database() {
    let Ok(path) = std::env::var("HITL_TEST_HOLD_DB") else {
        return;
    };
    let engine = open(Path::new(&path)).await.unwrap();
    let runs: usize = std::env::var("HITL_TEST_RUNS").map_or(0, |runs| runs.parse().unwrap());
    for n in 0..runs {
        engine
            .start_with_id(hello, &format!("run-{n:04}"), (format!("visitor {n}"),))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    println!("HOLDING");
    // Held until the parent kills this process or lets go of its stdin (it ended): an event,
    // not a time that a slow parent could outlast.
    tokio::task::spawn_blocking(|| std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new()))
        .await
        .unwrap()
        .unwrap();
}

/// Starts a child process that opens `path`, completes `runs` runs, and holds the database.
fn holding_child(path: &Path, runs: usize) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_the_database",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HITL_TEST_HOLD_DB", path)
        .env("HITL_TEST_RUNS", runs.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let held = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("HOLDING"));
    assert!(held, "the child process did not open the database");
    child
}

#[tokio::test]
async fn a_database_held_by_another_process_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut child = holding_child(&path, 0);

    let error = open(&path).await.unwrap_err();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(matches!(error, hitl::Error::DatabaseLocked { .. }), "{error}");
    assert!(error.to_string().contains("in use by another process"), "{error}");

    // Once the holder is gone, the database opens and is intact.
    let engine = open(&path).await.unwrap();
    assert!(engine.runs(&Default::default()).await.unwrap().is_empty());
}

/// Copies the files of `from` into the new directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    for (file, bytes) in snapshot(from) {
        let target = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}

/// A database of finished runs, closed cleanly.
async fn pristine_database(path: &Path, runs: usize) {
    let engine = open(path).await.unwrap();
    for n in 0..runs {
        engine
            .start_with_id(hello, &format!("run-{n:04}"), (format!("visitor {n}"),))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    engine.close().await.unwrap();
    assert!(
        path.join("hitl.clean").is_file(),
        "close returned before sled let go of the directory"
    );
}

/// Deterministic pseudo-random bytes (xorshift), so a failure names a reproducible case.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_bytes_anywhere_in_the_log_leave_every_byte_as_it_was_when_the_open_fails() {
    use std::io::{Seek, SeekFrom, Write};

    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    pristine_database(&pristine, 150).await;
    let log_len = std::fs::metadata(pristine.join("db")).unwrap().len();
    assert!(
        log_len > 4096,
        "the log is too small to damage at many offsets: {log_len}"
    );

    let cases = 40u64;
    let (mut refused, mut opened) = (0, 0);
    for case in 0..cases {
        let offset = log_len * case / cases + case * 37 % 512;
        let path = dir.path().join(format!("case-{case}"));
        copy_dir(&pristine, &path);
        let mut log = std::fs::OpenOptions::new()
            .write(true)
            .open(path.join("db"))
            .unwrap();
        log.seek(SeekFrom::Start(offset)).unwrap();
        log.write_all(&noise(case, 512)).unwrap();
        drop(log);

        let before = snapshot(&path);
        match open(&path).await {
            Err(error) => {
                refused += 1;
                assert!(
                    matches!(error, hitl::Error::Corrupt { .. }),
                    "case {case} (offset {offset}): {error:?}"
                );
                assert!(error.to_string().contains("left untouched"), "{error}");
                assert!(
                    snapshot(&path) == before,
                    "case {case} (offset {offset}): a failed open changed the directory"
                );
            }
            Ok(engine) => {
                opened += 1;
                let runs = engine
                    .runs(&hitl::RunFilter::default())
                    .await
                    .map(|runs| runs.len());
                println!("case {case} offset {offset}/{log_len}: opened, runs {runs:?}");
                engine.close().await.unwrap();
            }
        }
        std::fs::remove_dir_all(&path).unwrap();
    }
    println!("{refused} of {cases} damaged logs refused, {opened} opened");
    assert!(
        refused > 0,
        "no damage made the open fail: the test proves nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_log_is_reported_and_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    pristine_database(&path, 3).await;
    std::fs::remove_file(path.join("db")).unwrap();
    let before = snapshot(&path);
    let error = open(&path).await.unwrap_err();
    assert!(matches!(error, hitl::Error::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("`db` is missing"), "{error}");
    assert_eq!(
        snapshot(&path),
        before,
        "the failed open created or changed files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_interrupted_by_a_crash_is_undone_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    pristine_database(&path, 20).await;
    // What a process killed in the middle of a repairing open leaves: the files it had set
    // aside, complete, and sled's files half-rewritten.
    let backup = path.join("hitl.open-backup");
    let mut names = Vec::new();
    for (file, bytes) in snapshot(&path) {
        let relative = file.strip_prefix(&path).unwrap().to_owned();
        let name = relative.to_string_lossy().into_owned();
        if name.starts_with("hitl.") {
            continue;
        }
        std::fs::create_dir_all(backup.join(&relative).parent().unwrap()).unwrap();
        std::fs::write(backup.join(&relative), &bytes).unwrap();
        std::fs::write(&file, noise(7, bytes.len())).unwrap();
        names.push(name);
    }
    std::fs::write(backup.join("complete.json"), serde_json::to_vec(&names).unwrap()).unwrap();

    let engine = open(&path).await.unwrap();
    let runs = engine.runs(&hitl::RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 20, "the set-aside files were not put back");
    assert!(!backup.exists(), "the backup was left behind");
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_but_intact_database_still_opens_with_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    pristine_database(&path, 150).await;
    // The clean-close record no longer matches (as after a copy tool rewrote it), but the
    // log itself is intact: the open takes the careful path and succeeds.
    let marker = std::fs::read_to_string(path.join("hitl.clean")).unwrap();
    let mut marker: serde_json::Value = serde_json::from_str(&marker).unwrap();
    marker["files"][0]["crc32"] = serde_json::json!(0);
    std::fs::write(path.join("hitl.clean"), marker.to_string()).unwrap();

    let engine = open(&path).await.unwrap();
    assert_eq!(engine.runs(&hitl::RunFilter::default()).await.unwrap().len(), 150);
    assert!(!path.join("hitl.open-backup").exists());
    engine.close().await.unwrap();
}
