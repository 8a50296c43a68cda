//! The fuzz targets' bodies. Each takes arbitrary bytes, must not panic,
//! and asserts what its parser promises.

use divoc_certificates::credential::{build_credential, CredentialConfig, CredentialParams};
use divoc_certificates::legacy::CertifyRequest;
use divoc_certificates::request::IssueRequest;
use divoc_certificates::status_list::Bitstring;
use divoc_certificates::verify::{
    KnownStatus, StatusEntry, StatusLists, StatusSource, StatusUnavailable,
};
use divoc_certificates::{import, qr, template};
use divoc_crypto::jcs;
use divoc_time::Zone;
use serde_json::Value;

/// 2026-12-01T00:00:00Z: "now" for validation, fixed so a crash replays.
pub const NOW_MS: i64 = 1_796_083_200_000;

/// The W3C eddsa-jcs-2022 test vector's public key
/// (`host/crypto/tests/vectors/eddsa-jcs-2022/key-pair.json`): credentials
/// signed with it verify, so the fuzzer starts from valid ones.
pub const VECTOR_KEY: &str = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2";

fn vector_key(_: &str) -> Option<[u8; 32]> {
    divoc_crypto::multibase::ed25519_public_key_from_multikey(VECTOR_KEY).ok()
}

fn json(data: &[u8]) -> Option<Value> {
    serde_json::from_slice(data).ok()
}

/// A native request, validated as the API does; when it is valid, the
/// credential the issuance template writes must equal, byte for byte, the
/// canonical form of the generic builder's.
pub fn native_request(data: &[u8]) {
    let Some(value) = json(data) else { return };
    let Ok(mut request) = IssueRequest::from_json(value) else {
        return;
    };
    let zone = Zone::utc();
    request.normalize(&zone);
    if request.validate_at(NOW_MS, &zone).is_err() {
        return;
    }
    same_credential(&request);
}

fn same_credential(request: &IssueRequest) {
    let params = CredentialParams {
        certificate_id: "01M977HW91TKK4S14KR19QPX00",
        issuer: "did:web:certs.example.org",
        issued_at_ms: NOW_MS,
        status_index: 4_242,
    };
    let config = CredentialConfig::new("https://certs.example.org");
    let generic = jcs::canonicalize(&build_credential(request, &params, &config));
    let written = template::canonical_credential(request, &params, &config);
    match (generic, written) {
        (Ok(generic), Ok(written)) => assert_eq!(written.as_str(), generic),
        (Err(_), Err(_)) => {}
        (g, w) => panic!("generic path {g:?}, template {w:?}"),
    }
}

/// DIVOC's certify payload (an item or an array of items), mapped to a
/// native request and validated.
pub fn certify_request(data: &[u8]) {
    let Some(value) = json(data) else { return };
    let items = match value {
        Value::Array(items) => items,
        item => vec![item],
    };
    let zone = Zone::utc();
    for item in items {
        let Ok(certify) = CertifyRequest::from_json(item) else {
            continue;
        };
        let Ok(mut request) = certify.into_issue_request("covid-19") else {
            continue;
        };
        request.normalize(&zone);
        if request.validate_at(NOW_MS, &zone).is_ok() {
            same_credential(&request);
        }
    }
}

/// A DIVOC bulk-upload CSV.
pub fn csv_import(data: &[u8]) {
    let _ = import::parse(data, "covid-19", 1_000, NOW_MS, &Zone::utc());
}

/// A rollout upload, through the whole upload path into a real SQLite
/// database: the first byte chooses the kind (facilities, vaccinators,
/// enrolments for the programme `C19`), the rest is the file. A file read
/// to its end is accounted for row by row.
pub fn rollout_upload(data: &[u8]) {
    use divoc_rollout::upload::{UploadKind, UploadOptions};
    let Some((&which, file)) = data.split_first() else {
        return;
    };
    let kind = match which % 3 {
        0 => UploadKind::Facilities,
        1 => UploadKind::Vaccinators,
        _ => UploadKind::Enrolments,
    };
    let options = UploadOptions {
        country: Some("IN".to_owned()),
        programme: Some("C19".to_owned()),
    };
    if let Ok(r) = rollout().upload(kind, file, &options, "fuzz") {
        if r.finished_at.is_some() {
            assert_eq!(
                r.rows,
                r.created + r.updated + r.unchanged + r.failed,
                "{r:?}"
            );
        }
    }
}

/// One rollout service for the process, on a database in `/dev/shm` where
/// there is one (a commit's fsync costs nothing there), with a vaccine and
/// the programme `C19`.
fn rollout() -> &'static divoc_rollout::RolloutService {
    use std::path::{Path, PathBuf};
    static SERVICE: std::sync::OnceLock<divoc_rollout::RolloutService> = std::sync::OnceLock::new();
    SERVICE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        // libFuzzer ends a process without destructors: the databases of
        // fuzzing processes that have ended are removed here.
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(ROLLOUT_DB)) else {
                continue;
            };
            if !PathBuf::from("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = base.join(format!("{ROLLOUT_DB}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = divoc_storage::Database::open(
            &dir.join("rollout.sqlite"),
            divoc_storage::DbOptions::default(),
        )
        .unwrap_or_else(|e| panic!("a database for the fuzzer in {}: {e}", dir.display()));
        let svc = divoc_rollout::RolloutService::new(db, divoc_time::ManualClock::new(NOW_MS));
        let vaccine: divoc_rollout::Vaccine = serde_json::from_value(serde_json::json!({
            "code": "COVAX", "name": "CoVax", "manufacturer": "M", "mode": "injection", "doses": 1
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let programme: divoc_rollout::Programme = serde_json::from_value(serde_json::json!({
            "code": "C19", "name": "COVID-19", "startDate": "2021-01-16", "vaccines": ["COVAX"]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        svc.create(vaccine, "fuzz")
            .and_then(|_| svc.create(programme, "fuzz"))
            .unwrap_or_else(|e| panic!("seeding the fuzzer's programme: {e}"));
        svc
    })
}

const ROLLOUT_DB: &str = "divoc-fuzz-rollout-";

/// A QR code's content: our `DIVOC1:` text (base45, zlib, JSON) or
/// DIVOC's legacy zip. What decodes must encode and decode back to the
/// same JSON. "The same" is compared canonically (RFC 8785): the QR text
/// carries JCS, whose numbers are IEEE doubles (§ 3.2.2.3), so a decoded
/// `8.888888888888888e18` comes back as the integer `8888888888888888000`
/// — one number, two `serde_json` representations. Encoding again must
/// then give the very same text (a fixed point).
pub fn qr_text(data: &[u8]) {
    let decoded = match std::str::from_utf8(data) {
        Ok(text) => qr::decode(text),
        Err(_) => qr::decode_content(data),
    };
    let _ = qr::decode_content(data);
    if let Ok(value) = decoded {
        if let Ok(again) = qr::encode(&value) {
            let back =
                qr::decode(&again).unwrap_or_else(|e| panic!("{again} does not decode: {e}"));
            let canonical = |v: &Value| jcs::canonicalize_to_vec(v).map_err(|e| e.to_string());
            assert_eq!(canonical(&back), canonical(&value));
            assert_eq!(qr::encode(&back).ok(), Some(again));
        }
    }
}

/// An uploaded image searched for a QR code.
pub fn qr_image(data: &[u8]) {
    let _ = qr::read_image(data);
}

/// A status list: an `encodedList` (text), or a whole status list
/// credential as a verifier fetches it (JSON). A list that decodes must
/// encode and decode to the same bits.
pub fn status_list(data: &[u8]) {
    if let Some(list) = json(data) {
        let mut lists = StatusLists::default();
        let _ = lists.add(&list, &vector_key);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(bits) = Bitstring::decode(text.trim()) {
        if let Ok(again) = bits.encode() {
            assert_eq!(Bitstring::decode(&again), Some(bits));
        }
    }
}

/// JSON Canonicalization Scheme (RFC 8785): the canonical form of any JSON
/// is itself canonical.
pub fn jcs(data: &[u8]) {
    let Some(value) = json(data) else { return };
    let Ok(canonical) = jcs::canonicalize(&value) else {
        return;
    };
    let reparsed: Value = serde_json::from_str(&canonical).expect("JCS output is JSON");
    assert_eq!(jcs::canonicalize(&reparsed).ok(), Some(canonical));
}

/// Every status a known list can give: "good", so the verdict is decided
/// by the proof and the validity period alone.
struct AllGood;

impl StatusSource for AllGood {
    fn status(&self, _: &Value, _: &[StatusEntry<'_>]) -> Result<KnownStatus, StatusUnavailable> {
        Ok(KnownStatus::Good)
    }
}

/// A credential (JSON, or a QR code's text) verified with the test
/// vector's key: never `valid` without a good signature.
pub fn verify_credential(data: &[u8]) {
    let credential = match json(data) {
        Some(v) => v,
        None => match std::str::from_utf8(data).map(qr::decode) {
            Ok(Ok(v)) => v,
            _ => return,
        },
    };
    if let Ok(verdict) =
        divoc_certificates::verify::verify_credential(&credential, &vector_key, &AllGood, NOW_MS)
    {
        assert!(!verdict.valid || verdict.checks.signature.ok, "{verdict:?}");
    }
}
