//! The event log going out: the real `events-counter` plugin is fed the
//! log in order, from a cursor that survives a SIGKILL (so events are
//! replayed, never skipped, and the plugin's de-duplication makes its
//! counts exact), with its lag in `GET /v1/plugins`; the live stream
//! (`GET /v1/events/stream`) resumes after `Last-Event-ID`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{self, Server};

const ADMIN: &str = "events-test-admin-token-0123456789";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config(tmp: &Path) -> PathBuf {
    support::shipped_config(tmp, |text| text)
}

fn start(tmp: &Path) -> Server {
    let port = support::free_port();
    let mut cmd = support::serve_command(
        &config(tmp),
        &tmp.join("data"),
        &tmp.join("plugins"),
        port,
        ADMIN,
    );
    // Small batches: the log reaches the plugin in several calls.
    cmd.env("DIVOC_EVENTS__SUBSCRIBERS__BATCH", "7")
        .env("DIVOC_EVENTS__SUBSCRIBERS__POLL_INTERVAL_MS", "50")
        .env("DIVOC_CERTIFICATES__DISTRIBUTION__CHANNELS", "[]");
    support::spawn(&mut cmd, port)
}

fn issue(server: &Server, code: &str) {
    let path = repo().join("host/certificates/tests/cases/valid-one-dose/request.json");
    let mut req: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    req["pre_enrollment_code"] = json!(code);
    let (status, body) = support::send_json(
        "POST",
        &format!("{}/v1/certificates", server.base),
        Some(ADMIN),
        Some(&req),
    );
    assert_eq!(status, 201, "{body}");
}

/// The counter's feed, once it has caught up with the log.
fn caught_up(server: &Server) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = support::send_json(
            "GET",
            &format!("{}/v1/plugins", server.base),
            Some(ADMIN),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let feed = body["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "events-counter")
            .map(|p| p["events"].clone())
            .unwrap_or(Value::Null);
        if feed["lag"] == 0 && feed["head"].as_i64().unwrap_or(0) > 0 {
            return feed;
        }
        assert!(
            Instant::now() < deadline,
            "the feed did not catch up: {feed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The plugin's own state (kv) and the log, read from the database.
fn counted(data: &Path) -> (Value, i64, i64) {
    let db = crate::support::open_db(data);
    let state = db
        .query_json_for_tests(
            "SELECT value FROM plugin_kv WHERE plugin = 'events-counter' AND key = 'state'",
        )
        .unwrap();
    let state = hex::decode(state[0][0].as_str().unwrap()).unwrap();
    let (head, total): (i64, i64) = db
        .query_json_for_tests("SELECT MAX(seq), COUNT(*) FROM events")
        .map(|r| (r[0][0].as_i64().unwrap(), r[0][1].as_i64().unwrap()))
        .unwrap();
    (serde_json::from_slice(&state).unwrap(), head, total)
}

/// Reads `n` events from the stream.
fn read_stream(base: &str, query: &str, last_id: Option<i64>, n: usize) -> Vec<(i64, String)> {
    let mut req = ureq::get(&format!("{base}/v1/events/stream{query}"))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .timeout(Duration::from_secs(30));
    if let Some(id) = last_id {
        req = req.set("Last-Event-ID", &id.to_string());
    }
    let resp = req.call().unwrap();
    assert_eq!(resp.content_type(), "text/event-stream");
    let mut lines = BufReader::new(resp.into_reader()).lines();
    let mut out = Vec::new();
    let (mut id, mut kind) = (None, None);
    while out.len() < n {
        let line = lines.next().unwrap().unwrap();
        if let Some(v) = line.strip_prefix("id: ").or(line.strip_prefix("id:")) {
            id = Some(v.trim().parse::<i64>().unwrap());
        } else if let Some(v) = line.strip_prefix("event: ").or(line.strip_prefix("event:")) {
            kind = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
            let data: Value = serde_json::from_str(v).unwrap();
            assert_eq!(Some(data["seq"].as_i64().unwrap()), id);
            assert_eq!(data["kind"].as_str(), kind.as_deref());
        } else if line.is_empty() {
            if let (Some(i), Some(k)) = (id.take(), kind.take()) {
                out.push((i, k));
            }
        }
    }
    out
}

#[test]
fn subscribers_get_the_log_in_order_once_counted_across_a_crash_and_the_stream_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let built = repo().join("target/plugins/events-counter");
    assert!(
        built.join("plugin.toml").is_file(),
        "run scripts/setup.sh first"
    );
    let target = tmp.path().join("plugins/events-counter");
    std::fs::create_dir_all(&target).unwrap();
    for f in std::fs::read_dir(&built).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, target.join(f.file_name().unwrap())).unwrap();
    }

    let server = start(tmp.path());
    for i in 0..20 {
        issue(&server, &format!("EV-{i:03}"));
    }
    let feed = caught_up(&server);
    assert_eq!(feed["cursor"], feed["head"], "{feed}");
    assert!(feed["delivered"].as_i64().unwrap() >= 20, "{feed}");
    assert_eq!(feed["failures"], 0);

    // The stream from the start, certificate events only; then resumed
    // after the third with Last-Event-ID.
    let first = read_stream(&server.base, "?after=0&kinds=certificate.", None, 5);
    assert!(first.windows(2).all(|w| w[0].0 < w[1].0), "{first:?}");
    assert!(first.iter().all(|(_, k)| k.starts_with("certificate.")));
    let resumed = read_stream(&server.base, "", Some(first[2].0), 2);
    assert_eq!(resumed[0].0, first[3].0, "{resumed:?} after {first:?}");
    // A bad cursor is refused naming the field.
    let (status, body) = support::send_json(
        "GET",
        &format!("{}/v1/events/stream?after=-1", server.base),
        Some(ADMIN),
        None,
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("after"))
    );

    // SIGKILL mid-flight: more events, killed at once, then restarted.
    for i in 20..40 {
        issue(&server, &format!("EV-{i:03}"));
    }
    drop(server);
    let server = start(tmp.path());
    for i in 40..45 {
        issue(&server, &format!("EV-{i:03}"));
    }
    let feed = caught_up(&server);
    let text = ureq::get(&format!("{}/metrics", server.base))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        text.contains("divoc_plugin_call_duration_seconds_count{plugin=\"events-counter\",world=\"event-subscriber\"}"),
        "{text}"
    );
    assert!(
        text.contains("divoc_plugin_disabled{plugin=\"events-counter\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("divoc_event_subscriber_lag{plugin=\"events-counter\"}"),
        "{text}"
    );
    server.stop();
    let (state, head, total) = counted(&tmp.path().join("data"));
    assert_eq!(feed["head"], head);
    // In order and nothing lost: the plugin saw every sequence up to the
    // head; replays after the crash were not counted twice.
    assert_eq!(state["last"], head, "{state}");
    let counts: i64 = state["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(counts, total, "{state}");
    assert_eq!(state["counts"]["certificate.issued"], 45, "{state}");
}

#[test]
fn live_statistics_count_issuance_and_revocation_and_hide_small_cells_in_public() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    for i in 0..12 {
        issue(&server, &format!("ST-{i:03}"));
    }
    // One in another district: a cell of one.
    let path = repo().join("host/certificates/tests/cases/valid-one-dose/request.json");
    let mut req: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    req["pre_enrollment_code"] = json!("ST-999");
    req["facility"]["address"]["district"] = json!("Mysuru");
    let (status, body) = support::send_json(
        "POST",
        &format!("{}/v1/certificates", server.base),
        Some(ADMIN),
        Some(&req),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (status, _) = support::send_json(
        "POST",
        &format!("{}/v1/certificates/{id}/revoke", server.base),
        Some(ADMIN),
        Some(&json!({"reason": "issued in error"})),
    );
    assert_eq!(status, 200);

    // Rebuilt in the background (at most [stats] refresh-ms after a change).
    let stats = support::stats_until(&server.base, "/v1/stats", Some(ADMIN), |s| {
        s["metrics"]["certificates.revoked"]["total"] == 1
    });
    let issued = &stats["metrics"]["certificates.issued"];
    assert_eq!(issued["total"], 13, "{stats}");
    assert_eq!(issued["vaccine"]["CoVax"], 13);
    assert_eq!(issued["batch"]["MB3428BX"], 13);
    assert_eq!(issued["district"]["Mysuru"], 1);
    assert_eq!(issued["age"]["20-29"], 13);
    assert_eq!(issued["dose"]["1"], 13);
    assert_eq!(stats["metrics"]["certificates.revoked"]["total"], 1);
    assert_eq!(stats["aefiByBatch"]["MB3428BX"]["doses"], 13);

    // The public view needs no token and leaves out the cell of one.
    let public = support::stats_until(&server.base, "/v1/stats/public", None, |s| {
        s["metrics"]["certificates.revoked"]["total"] == 1
    });
    let issued = &public["metrics"]["certificates.issued"];
    assert_eq!(issued["total"], 13);
    assert!(issued["district"].get("Mysuru").is_none(), "{public}");
    assert_eq!(public["suppressedBelow"], 10);
    assert!(public["suppressedCells"].as_u64().unwrap() >= 1);
    // The full view is for operators.
    let (status, _) = support::send_json("GET", &format!("{}/v1/stats", server.base), None, None);
    assert_eq!(status, 401);

    // Prometheus: requests by route template, certificates, verifications,
    // the writer, the outbox.
    let qr = ureq::get(&format!("{}/v1/certificates/{id}/qr.txt", server.base))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let (status, verdict) = support::send_json(
        "POST",
        &format!("{}/v1/verify", server.base),
        None,
        Some(&json!({"qr": qr})),
    );
    assert_eq!(status, 200, "{verdict}");
    let text = ureq::get(&format!("{}/metrics", server.base))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for line in [
        "divoc_http_requests_total{method=\"POST\",route=\"/v1/certificates\",status=\"201\"} 13",
        "divoc_certificates{event=\"issued\"} 13",
        "divoc_certificates{event=\"revoked\"} 1",
        "divoc_certificates_verified_total{verdict=\"revoked\"} 1",
        "divoc_outbox_pending ",
        "divoc_storage_commits_total ",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    assert!(text.contains("divoc_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/certificates\",le=\"0.0005\"}"), "{text}");
    // Route templates, never ids.
    assert!(!text.contains(&id), "a certificate id in the metrics");
    let (status, _) = support::send_json("GET", &format!("{}/metrics", server.base), None, None);
    assert_eq!(status, 401);
    // No personal data in any event this test produced.
    crate::support::assert_no_personal_data(&tmp.path().join("data"), &[]);
}
