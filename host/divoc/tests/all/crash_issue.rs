//! A 2xx means committed, under `kill -9`.
//!
//! Many clients issue certificates (each its own pre-enrolment code) while
//! the server is SIGKILLed mid-load. After a restart on the same data dir
//! every request is sent again, acknowledged or not. Every acknowledged
//! certificate must still be there under the same id (its re-send answers
//! 200 with that id), every unacknowledged one must now exist exactly once
//! (created now, or found if it had committed just before the kill), the
//! database must hold exactly one certificate per request, and the audit
//! chain must verify.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;
use support::Server;

const ADMIN: &str = "crash-test-admin-token-0123";
/// Distinct issue requests.
const REQUESTS: usize = 1200;
/// Clients sending at once.
const CLIENTS: usize = 24;
/// Kill once this many requests are acknowledged.
const KILL_AFTER: usize = REQUESTS / 4;

fn start(tmp: &Path) -> Server {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let plugins = tmp.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let port = support::free_port();
    let mut cmd = support::serve_command(
        &repo.join("config/divoc.toml"),
        &tmp.join("data"),
        &plugins,
        port,
        ADMIN,
    );
    support::spawn(cmd.env("DIVOC_LOG", "warn"), port)
}

fn request(i: usize) -> Value {
    let cases = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certificates/tests/cases");
    let mut r: Value = serde_json::from_str(
        &std::fs::read_to_string(cases.join("valid-one-dose/request.json")).unwrap(),
    )
    .unwrap();
    r["pre_enrollment_code"] = Value::from(code(i));
    r
}

fn code(i: usize) -> String {
    format!("CRASH-{i:05}")
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// `Ok((status, id))` for an HTTP answer, `Err` when the connection failed
/// (the request may or may not have reached the server).
fn issue(agent: &ureq::Agent, base: &str, body: &str) -> Result<(u16, String), String> {
    let result = agent
        .post(&format!("{base}/v1/certificates"))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .set("Content-Type", "application/json")
        .send_string(body);
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = response.status();
    let text = response.into_string().map_err(|e| e.to_string())?;
    let id = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or(text);
    Ok((status, id))
}

#[test]
fn kill_9_during_issuance_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let bodies: Vec<String> = (0..REQUESTS).map(|i| request(i).to_string()).collect();

    // Load, and SIGKILL the server in the middle of it.
    let mut server = start(tmp.path());
    let acked: Mutex<HashMap<usize, String>> = Mutex::new(HashMap::new());
    let in_flight_at_kill = AtomicUsize::new(0);
    let unexpected: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| {
                let agent = agent();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(body) = bodies.get(i) else { break };
                    match issue(&agent, &server.base, body) {
                        Ok((201, id)) => {
                            acked.lock().unwrap().insert(i, id);
                        }
                        Ok((status, body)) => unexpected
                            .lock()
                            .unwrap()
                            .push(format!("request {i}: HTTP {status}: {body}")),
                        Err(_) => {
                            // The server is gone; this request's fate is
                            // unknown, which is what the restart checks.
                            in_flight_at_kill.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        while acked.lock().unwrap().len() < KILL_AFTER {
            assert!(Instant::now() < deadline, "load did not progress");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Child::kill is SIGKILL on Unix: no shutdown handler runs.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    });
    let acked = acked.into_inner().unwrap();
    let unexpected = unexpected.into_inner().unwrap();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert!(acked.len() >= KILL_AFTER);
    assert!(
        acked.len() < REQUESTS,
        "the kill came after the load had finished"
    );
    assert!(
        in_flight_at_kill.load(Ordering::SeqCst) > 0,
        "no request was in flight at the kill"
    );
    drop(server);

    // Restart on the same data dir and send everything again.
    let server = start(tmp.path());
    let answers: Mutex<Vec<Option<(u16, String)>>> = Mutex::new(vec![None; REQUESTS]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| {
                let agent = agent();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(body) = bodies.get(i) else { break };
                    let answer = issue(&agent, &server.base, body).unwrap();
                    answers.lock().unwrap()[i] = Some(answer);
                }
            });
        }
    });
    let answers: Vec<(u16, String)> = answers
        .into_inner()
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let (mut created, mut found_unacked) = (0, 0);
    for (i, (status, id)) in answers.iter().enumerate() {
        match acked.get(&i) {
            Some(acked_id) => {
                assert_eq!(*status, 200, "acknowledged request {i} re-sent: {id}");
                assert_eq!(id, acked_id, "acknowledged request {i} changed id");
            }
            None => match status {
                201 => created += 1,
                // Committed just before the kill, answer lost with it.
                200 => found_unacked += 1,
                _ => panic!("unacknowledged request {i} re-sent: HTTP {status}: {id}"),
            },
        }
    }
    assert_eq!(acked.len() + created + found_unacked, REQUESTS);
    let ids: HashSet<&String> = answers.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), REQUESTS, "two requests share a certificate id");
    eprintln!(
        "acknowledged before the kill: {}; in flight at the kill: {}; \
         committed but unacknowledged: {found_unacked}; created after restart: {created}",
        acked.len(),
        in_flight_at_kill.load(Ordering::SeqCst)
    );

    // Every certificate is readable under its id.
    let agent = agent();
    for (_, id) in &answers {
        let text = agent
            .get(&format!("{}/v1/certificates/{id}", server.base))
            .set("Authorization", &format!("Bearer {ADMIN}"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let credential: Value = serde_json::from_str(&text).unwrap();
        assert!(
            credential["id"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{id}")),
            "{credential}"
        );
    }
    drop(server);

    // The database holds one certificate per request, each with its
    // issuance audit record and event.
    let data = tmp.path().join("data");
    {
        let db = support::open_db(&data);
        assert_eq!(
            db.read(divoc_storage::certificates::count).unwrap(),
            REQUESTS as u64
        );
        for (i, (_, id)) in answers.iter().enumerate() {
            let records = db
                .read(|r| divoc_storage::certificates::by_recipient_ref(r, &code(i)))
                .unwrap();
            assert_eq!(records.len(), 1, "{}", code(i));
            assert_eq!(&records[0].id, id);
        }
        let issued_audit = db
            .audit_after(0, 10 * REQUESTS)
            .unwrap()
            .iter()
            .filter(|a| a.action == "certificate.issued")
            .count();
        assert_eq!(issued_audit, REQUESTS);
        let issued_events = db
            .events_after(0, 10 * REQUESTS)
            .unwrap()
            .iter()
            .filter(|e| e.kind == "certificate.issued")
            .count();
        assert_eq!(issued_events, REQUESTS);
    }

    let out = support::on_test_backend(&mut Command::new(env!("CARGO_BIN_EXE_divoc")), &data)
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("intact"), "{stdout}");
}
