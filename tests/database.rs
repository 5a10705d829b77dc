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
                supported: 1,
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
    let _engine = open(Path::new(&path)).await.unwrap();
    println!("HOLDING");
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_database_held_by_another_process_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_the_database",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HITL_TEST_HOLD_DB", &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let held = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("HOLDING"));
    assert!(held, "the child process did not open the database");

    let error = open(&path).await.unwrap_err();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(matches!(error, hitl::Error::DatabaseLocked { .. }), "{error}");
    assert!(error.to_string().contains("in use by another process"), "{error}");

    // Once the holder is gone, the database opens and is intact.
    let engine = open(&path).await.unwrap();
    assert!(engine.runs(&Default::default()).unwrap().is_empty());
}
