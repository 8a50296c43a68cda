//! Shared helpers: case files, keyrings, databases.

use std::path::{Path, PathBuf};

use divoc_crypto::keys::{IssuerConfig, Keyring};
use serde_json::Value;

pub const DID: &str = "did:web:certs.example.org";

pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

pub fn case_json(case: &str, file: &str) -> Value {
    let path = cases_dir().join(case).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Cases whose name starts with `prefix`, sorted.
pub fn cases(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Expected field paths of a bad-input case (one per line, `#` comments).
pub fn expected_fields(case: &str) -> Vec<String> {
    std::fs::read_to_string(cases_dir().join(case).join("expected-fields.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

pub fn keyring(dir: &Path) -> Keyring {
    Keyring::open_or_create(&dir.join("keys"), &IssuerConfig::new(DID)).unwrap()
}

use std::sync::Arc;

use divoc_certificates::{CertificateService, IssueRequest, ServiceConfig};
use divoc_storage::{Database, DbOptions};
use divoc_time::ManualClock;

pub struct Env {
    pub _tmp: tempfile::TempDir,
    pub db: Database,
    pub svc: CertificateService,
    /// The service's clock: tests move it instead of sleeping.
    pub clock: Arc<ManualClock>,
}

/// A service on a fresh database whose clock stands at the system time
/// until a test moves it.
pub fn env_with(mut cfg: ServiceConfig) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::open_test(&tmp.path().join("divoc.db"), DbOptions::default()).unwrap();
    let clock = ManualClock::at_system_time();
    cfg.clock = clock.clone();
    let svc = CertificateService::open(db.clone(), keyring(tmp.path()), cfg).unwrap();
    Env {
        _tmp: tmp,
        db,
        svc,
        clock,
    }
}

pub fn env() -> Env {
    env_with(ServiceConfig::new("https://certs.example.org"))
}

pub fn sample(case: &str) -> IssueRequest {
    IssueRequest::from_json(case_json(case, "request.json")).unwrap()
}
