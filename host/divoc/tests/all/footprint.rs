//! End to end, what keeps the database small:
//!
//! - a data dir written by the release before the compact storage (schema
//!   15, `host/storage/tests/cases/schema-v15.sqlite`: six certificates,
//!   one revoked, one suspended, one corrected) is converted when served:
//!   every certificate reads back exactly as it was stored, its status is
//!   kept, and `divoc audit verify` passes;
//! - with `keep-delivered-hours = 0`, a delivered certificate's outbox item
//!   is deleted by the server's pruning, and its delivery status says so.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;

const ADMIN: &str = "footprint-test-admin-0123456789";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn a_schema_15_data_dir_is_converted_and_its_audit_chain_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("divoc.sqlite");
    std::fs::copy(
        repo().join("host/storage/tests/cases/schema-v15.sqlite"),
        &db,
    )
    .unwrap();
    // What the old release stored, read before the server converts it.
    let old: Vec<(String, String, String)> = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, status, credential FROM certificates ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    assert_eq!(old.len(), 7);

    let config = support::shipped_config(tmp.path(), |t| t);
    let port = support::free_port();
    // A database SQLite wrote at schema 15: the migration is SQLite's.
    let server = support::spawn(
        support::serve_command(&config, &data, &tmp.path().join("plugins"), port, ADMIN)
            .env("DIVOC_STORAGE__BACKEND", "sqlite"),
        port,
    );
    for (id, status, text) in &old {
        let (code, body) = support::send_json(
            "GET",
            &format!("{}/v1/certificates/{id}", server.base),
            Some(ADMIN),
            None,
        );
        assert_eq!(code, 200, "{id}: {body}");
        let stored: Value = serde_json::from_str(text).unwrap();
        assert_eq!(body, stored, "{id} reads back as it was issued");
        let (_, history) = support::send_json(
            "GET",
            &format!("{}/v1/certificates/{id}/history", server.base),
            Some(ADMIN),
            None,
        );
        let this = history["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(this["status"], status.as_str(), "{id}: {history}");
    }
    server.stop();

    // The same bytes: the compact row decodes to the text the old row held.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, i64::from(divoc_storage::latest_schema_version()));
    let kind: String = conn
        .query_row(
            "SELECT typeof(credential) FROM certificates LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kind, "blob");
    drop(conn);

    let out = Command::new(env!("CARGO_BIN_EXE_divoc"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .env("DIVOC_CI_CACHE", "/nonexistent/ci-cache")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn delivered_outbox_items_are_pruned_after_their_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let config = support::shipped_config(tmp.path(), |t| {
        t.replace("keep-delivered-hours = 24", "keep-delivered-hours = 0")
    });
    let port = support::free_port();
    let server = support::spawn(
        &mut support::serve_command(
            &config,
            &tmp.path().join("data"),
            &repo().join("target/plugins"),
            port,
            ADMIN,
        ),
        port,
    );
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("host/certificates/tests/cases/valid-one-dose/request.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (code, issued) = support::send_json(
        "POST",
        &format!("{}/v1/certificates", server.base),
        Some(ADMIN),
        Some(&request),
    );
    assert_eq!(code, 201, "{issued}");
    let id = issued["id"].as_str().unwrap().to_owned();
    let deliveries = || {
        support::send_json(
            "GET",
            &format!("{}/v1/certificates/{id}/distribution", server.base),
            Some(ADMIN),
            None,
        )
        .1["deliveries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    // Delivered through the shipped notify-log channel…
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = deliveries();
        if d.iter().any(|x| x["status"] == "done") {
            break;
        }
        assert!(Instant::now() < deadline, "never delivered: {d:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // …then deleted by the next pruning pass (every minute).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let d = deliveries();
        if d.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "never pruned: {d:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The certificate itself is untouched.
    let (code, _) = support::send_json(
        "GET",
        &format!("{}/v1/certificates/{id}", server.base),
        Some(ADMIN),
        None,
    );
    assert_eq!(code, 200);
    server.stop();
}
