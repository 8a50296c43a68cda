//! End to end, admission control (`[admission]`):
//!
//! - a client over its rate on a public route gets 429 `rate_limited` with
//!   `Retry-After`, while a configured token and another address (through
//!   a trusted proxy's `X-Forwarded-For`) are still served, and an
//!   untrusted peer's `X-Forwarded-For` is ignored;
//! - sign-in codes are capped per address;
//! - QR image searches past the image gate's queue are shed with 503
//!   `overloaded` and `Retry-After`, never left waiting; the rest are
//!   answered;
//! - the limits and the refusals are in `/metrics`;
//! - connections without a token the server accepts are served by the
//!   public lane, whose threads run as `SCHED_IDLE`, and those with one by
//!   the server's own runtime.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};

use crate::support;

const ADMIN: &str = "admission-test-admin-0123456789";

/// The shipped config with the first line setting each key given a new
/// value (the `[admission]` keys are the file's only lines of those names,
/// but for the gates', where the images' come first).
fn set(text: &str, values: &[(&str, &str)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (key, value) in values {
        let line = lines
            .iter_mut()
            .find(|l| l.split('=').next().map(str::trim) == Some(key))
            .unwrap_or_else(|| panic!("the shipped config has no `{key}`"));
        *line = format!("{key} = {value}");
    }
    lines.join("\n") + "\n"
}

/// A request's status, `Retry-After` and JSON body.
fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    forwarded: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> (u16, Option<u64>, Value) {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some(f) = forwarded {
        req = req.set("X-Forwarded-For", f);
    }
    let result = match body {
        Some((ct, bytes)) => req.set("Content-Type", ct).send_bytes(bytes),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let retry = response
        .header("Retry-After")
        .map(|v| v.parse::<u64>().unwrap());
    let text = response.into_string().unwrap();
    (
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[test]
fn a_client_over_its_rate_gets_429_with_retry_after_and_others_are_served() {
    let tmp = tempfile::tempdir().unwrap();
    let config = support::shipped_config(tmp.path(), |t| {
        set(
            &t,
            &[
                ("trusted-proxies", r#"["127.0.0.1/32"]"#),
                ("public-per-second", "1"),
                ("public-burst", "5"),
                ("image-cost", "2"),
                ("sign-in-per-hour", "2"),
            ],
        )
    });
    let server = support::start(&config, tmp.path(), ADMIN);
    let url = format!("{}/v1/contexts", server.base);

    // Loopback is a trusted proxy here: each forwarded address is a client.
    let alice = Some("198.51.100.7");
    for i in 0..5 {
        let (status, _, _) = call("GET", &url, None, alice, None);
        assert_eq!(status, 200, "request {i} is within the burst");
    }
    let (status, retry, body) = call("GET", &url, None, alice, None);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let retry = retry.expect("a 429 says when to come back");
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");

    // Another address has its own budget; a configured token is not
    // counted at all.
    let (status, _, _) = call("GET", &url, None, Some("198.51.100.8"), None);
    assert_eq!(status, 200);
    for _ in 0..10 {
        let (status, _, _) = call("GET", &url, Some(ADMIN), alice, None);
        assert_eq!(status, 200);
    }
    // A forged hop before the trusted proxy's does not buy a new budget.
    let (status, _, _) = call("GET", &url, None, Some("203.0.113.1, 198.51.100.7"), None);
    assert_eq!(status, 429);

    // After Retry-After, the client is served again.
    std::thread::sleep(Duration::from_secs(retry));
    let (status, _, _) = call("GET", &url, None, alice, None);
    assert_eq!(status, 200);

    // Sign-in codes: two an hour for this address, whatever the number.
    let otp = format!("{}/v1/recipients/otp", server.base);
    let bob = Some("198.51.100.20");
    for n in 0..2 {
        let body = json!({"phone": format!("98804148{n:02}")}).to_string();
        let (status, _, answer) = call(
            "POST",
            &otp,
            None,
            bob,
            Some(("application/json", body.as_bytes())),
        );
        assert_ne!(status, 429, "code {n}: {answer}");
    }
    let body = json!({"phone": "9880414899"}).to_string();
    let (status, retry, answer) = call(
        "POST",
        &otp,
        None,
        bob,
        Some(("application/json", body.as_bytes())),
    );
    assert_eq!(status, 429, "{answer}");
    assert!(retry.unwrap() > 60, "the next code is half an hour away");

    // Issuance needs a token and is never counted against an address.
    let (status, _) = support::send_json(
        "POST",
        &format!("{}/v1/certificates", server.base),
        Some(ADMIN),
        Some(&sample()),
    );
    assert_eq!(status, 201);

    let (status, _, _) = call(
        "GET",
        &format!("{}/metrics", server.base),
        Some(ADMIN),
        None,
        None,
    );
    assert_eq!(status, 200);
    let metrics = ureq::get(&format!("{}/metrics", server.base))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains(r#"divoc_admission_rate_limited_total{class="public"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"divoc_admission_limit{limit="public-burst"} 5"#));
    assert!(metrics.contains(r#"divoc_admission_gate{gate="images",what="concurrency"} 1"#));
}

#[test]
fn image_searches_past_the_gate_are_shed_with_503_and_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let config = support::shipped_config(tmp.path(), |t| {
        let t = set(
            &t,
            &[
                ("public-per-second", "1000"),
                ("public-burst", "1000"),
                ("image-budget-ms", "10000"),
            ],
        );
        // The first gate in the file is the images'.
        set(&t, &[("queue", "1"), ("queue-wait-ms", "60000")])
    });
    let server = support::start(&config, tmp.path(), ADMIN);
    let url = format!("{}/v1/verify", server.base);
    // The costliest image we know, sent by 8 clients at once: one is
    // searched, one waits, the rest are shed at once.
    let images = divoc_certificates::hostile::images();
    let png = std::sync::Arc::new(images[0].png.clone());
    let answers: Vec<(u16, Option<u64>, Value, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (png, url) = (png.clone(), url.clone());
                s.spawn(move || {
                    let started = std::time::Instant::now();
                    let (status, retry, body) =
                        call("POST", &url, None, None, Some(("image/png", &png[..])));
                    (status, retry, body, started.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let searched: Vec<_> = answers.iter().filter(|a| a.0 == 422).collect();
    let shed: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(
        searched.len() + shed.len(),
        8,
        "every answer is a search's result or a refusal: {answers:?}"
    );
    assert!(!searched.is_empty() && searched.len() <= 7, "{answers:?}");
    assert!(!shed.is_empty(), "{answers:?}");
    for (_, _, body, _) in &searched {
        assert_eq!(body["error"]["field"], "qr_image", "{body}");
    }
    for (_, retry, body, _) in &shed {
        assert_eq!(body["error"]["code"], "overloaded", "{body}");
        assert!(retry.is_some_and(|r| r >= 1), "{body}");
    }

    // A real code in an image is still read.
    let qr = {
        let (status, issued) = support::send_json(
            "POST",
            &format!("{}/v1/certificates", server.base),
            Some(ADMIN),
            Some(&sample()),
        );
        assert_eq!(status, 201, "{issued}");
        let id = issued["id"].as_str().unwrap().to_owned();
        let mut png = Vec::new();
        use std::io::Read as _;
        ureq::get(&format!("{}/v1/certificates/{id}/qr.png", server.base))
            .set("Authorization", &format!("Bearer {ADMIN}"))
            .call()
            .unwrap()
            .into_reader()
            .read_to_end(&mut png)
            .unwrap();
        png
    };
    let (status, _, verdict) = call("POST", &url, None, None, Some(("image/png", &qr[..])));
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["valid"], true, "{verdict}");

    let metrics = ureq::get(&format!("{}/metrics", server.base))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains(r#"divoc_admission_shed_total{gate="images"}"#),
        "{metrics}"
    );
}

/// The `valid-one-dose` case's issue request.
#[test]
fn connections_are_served_in_two_lanes_the_public_one_at_lower_priority() {
    let tmp = tempfile::tempdir().unwrap();
    // The shipped config as it is.
    let config = support::shipped_config(tmp.path(), |t| t);
    let server = support::start(&config, tmp.path(), ADMIN);

    // Each call is a new connection, placed by its first request.
    let contexts = format!("{}/v1/contexts", server.base);
    let (status, _, _) = call("GET", &contexts, None, None, None);
    assert_eq!(status, 200, "anonymous, public lane");
    let metrics_url = format!("{}/metrics", server.base);
    let (status, _, _) = call(
        "GET",
        &metrics_url,
        Some("not-a-token-we-know-at-all"),
        None,
        None,
    );
    assert_eq!(
        status, 401,
        "a token the server does not accept: public lane, refused"
    );
    let (status, body) = support::send_json(
        "POST",
        &format!("{}/v1/certificates", server.base),
        Some(ADMIN),
        Some(&sample()),
    );
    assert_eq!(status, 201, "staff lane: {body}");
    // A large anonymous body is read in full by the public lane.
    let png = divoc_certificates::hostile::images()[0].png.clone();
    let (status, _, body) = call(
        "POST",
        &format!("{}/v1/verify", server.base),
        None,
        None,
        Some(("image/png", &png)),
    );
    assert!([422, 503].contains(&status), "{status} {body}");

    let metrics = ureq::get(&metrics_url)
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let count = |lane: &str| -> u64 {
        let key = format!("divoc_lane_connections_total{{lane=\"{lane}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("no {key} in /metrics"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(count("public") >= 3, "{metrics}");
    // The certificate and this /metrics call (the health checks while the
    // server started had no token).
    assert!(count("staff") >= 2, "{metrics}");

    // The threads: the public lane's at SCHED_IDLE (the default), the
    // server's own and the storage writer at the normal policy.
    let pid = server.child.id();
    let mut threads: Vec<(String, u32)> = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
        // `tid (comm) state ppid …`: the policy is field 41 (proc(5)).
        let (head, rest) = stat.rsplit_once(") ").unwrap();
        let comm = head.split_once(" (").unwrap().1.to_owned();
        let policy: u32 = rest.split_whitespace().nth(38).unwrap().parse().unwrap();
        threads.push((comm, policy));
    }
    const SCHED_OTHER: u32 = 0;
    const SCHED_IDLE: u32 = 5;
    let of = |name: &str| -> Vec<u32> {
        threads
            .iter()
            .filter(|(c, _)| c == name)
            .map(|(_, p)| *p)
            .collect()
    };
    let public = of("divoc-public");
    assert!(public.len() >= 2, "{threads:?}");
    assert!(public.iter().all(|p| *p == SCHED_IDLE), "{threads:?}");
    assert_eq!(of("divoc-storage-w"), [SCHED_OTHER], "{threads:?}");
    assert!(of("tokio-rt-worker").contains(&SCHED_OTHER), "{threads:?}");
}

fn sample() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../certificates/tests/cases/valid-one-dose/request.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
