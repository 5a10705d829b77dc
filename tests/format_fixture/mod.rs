//! The sled database fixtures (`tests/fixtures/format_v1/`, `format_v2/`, `format_v3/`), for the tests that
//! open them: `format_fixtures` (sled) and `postgres_schema_v1` (which compares PostgreSQL's
//! migrated journals with format 1's).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hitl::prelude::*;
use hitl::{PendingFilter, Request};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The fixture's database, unpacked into a fresh temporary directory, and its manifest.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub db: PathBuf,
    pub manifest: Value,
}

impl Fixture {
    /// The fixture of on-disk format `format` (`tests/fixtures/format_v{format}`).
    pub fn unpack(format: u32) -> Fixture {
        let fixture = Path::new(FIXTURES).join(format!("format_v{format}"));
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(fixture.join("db.tar.gz"))
            .arg("-C")
            .arg(&db)
            .status()
            .expect("the system's `tar` unpacks the fixture");
        assert!(status.success(), "tar failed: {status}");
        let manifest = std::fs::read(fixture.join("manifest.json")).unwrap();
        Fixture {
            _dir: dir,
            db,
            manifest: serde_json::from_slice(&manifest).unwrap(),
        }
    }

    /// The id of the request the manifest records for `run_id`.
    pub fn request(&self, run_id: &str) -> String {
        self.manifest["requests"][run_id]
            .as_str()
            .unwrap_or_else(|| panic!("the manifest names the request of {run_id}"))
            .to_owned()
    }

    /// A time the manifest records (ms since the epoch), such as `clock_at_close_ms`.
    pub fn time(&self, field: &str) -> SystemTime {
        let millis = self.manifest[field]
            .as_u64()
            .unwrap_or_else(|| panic!("manifest `{field}`"));
        UNIX_EPOCH + Duration::from_millis(millis)
    }
}

/// The engine's open requests, by the id of their run.
pub async fn pending_by_run(engine: &Engine) -> BTreeMap<String, Request> {
    engine
        .pending(&PendingFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|request| (request.run_id.clone(), request))
        .collect()
}
