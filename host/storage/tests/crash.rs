//! Crash durability: a write acknowledged by `PendingWrite::wait` must
//! survive the process being killed outright.
//!
//! The test re-runs its own binary as a child (selected by an environment
//! variable) that writes from several threads and prints each acknowledged
//! id. The parent SIGKILLs it mid-stream, reopens the database and checks
//! that every acknowledged id is there. SIGKILL gives the process no chance
//! to flush anything, so only what SQLite had made durable at commit time
//! survives; it exercises `synchronous=FULL` and WAL recovery, though not a
//! power cut (the OS page cache survives a process kill).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use divoc_storage::{audit, events, kv, Database, DbOptions};
use serde_json::json;

const CHILD_ENV: &str = "DIVOC_STORAGE_CRASH_CHILD_DB";
const WRITER_THREADS: usize = 4;
/// Acknowledgements the parent waits for before killing the child.
const KILL_AFTER_ACKS: usize = 300;

/// The child side. In a normal test run the variable is unset and this test
/// does nothing.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = Database::open(path.as_ref(), DbOptions::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let threads: Vec<_> = (0..WRITER_THREADS)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                // Bounded, in case the parent dies without killing us.
                while Instant::now() < deadline {
                    i += 1;
                    let key = format!("t{t}-{i}");
                    // A record, its event and its audit entry in one
                    // transaction, like a real module would write them.
                    let seq = db
                        .write(move |tx| {
                            kv::set(tx, "crash", &key, b"value", u64::MAX)?;
                            audit::append_audit(tx, "crash-test", "write", &key, &json!({}))?;
                            events::append_event(tx, "crash.write", &key, &json!({}))
                        })
                        .wait()
                        .unwrap();
                    // One write per line: a line is either whole or absent.
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {seq} t{t}-{i}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());

    let mut acked: Vec<(i64, String)> = Vec::new();
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        // A line cut off by the kill was never fully acknowledged to us.
        let Some(body) = line.strip_suffix('\n') else {
            continue;
        };
        let Some(rest) = body.strip_prefix("ACK ") else {
            continue;
        };
        let (seq, key) = rest.split_once(' ').unwrap();
        acked.push((seq.parse().unwrap(), key.to_string()));
        if !killed && acked.len() >= KILL_AFTER_ACKS {
            // Child::kill sends SIGKILL on Unix. Keep reading afterwards:
            // lines already in the pipe were acknowledged too.
            child.kill().unwrap();
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        killed,
        "child ended before {KILL_AFTER_ACKS} acks: {status:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "child was not SIGKILLed: {status:?}"
        );
    }

    let db = Database::open(&path, DbOptions::default()).unwrap();
    let stored: BTreeSet<i64> = db
        .events_after(0, usize::MAX >> 1)
        .unwrap()
        .into_iter()
        .map(|e| e.seq)
        .collect();
    let mut missing = Vec::new();
    for (seq, key) in &acked {
        if !stored.contains(seq) || db.kv_get("crash", key).unwrap().is_none() {
            missing.push(seq);
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost after SIGKILL: {missing:?}",
        missing.len(),
        acked.len()
    );
    // The kill may also have cut writes that were never acknowledged; those
    // must be absent as whole transactions, leaving the chain intact.
    let report = db.verify_audit_chain().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records as usize, stored.len());
}
