//! The country identity adapters through the real plugin runtime:
//! `id-national`'s registry lookup against a loopback registry (found,
//! not found, mismatches, a failing and a silent registry), and
//! `id-passport` with the ICAO 9303 specimen MRZ against the host clock.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use divoc_runtime::types::identity::{Claim, Verification, VerifiedIdentity};
use divoc_runtime::{Grant, GuestErrorKind, Runtime};

use crate::support;

/// One request as the registry saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// How the registry answers one request.
#[derive(Debug, Clone)]
enum Answer {
    /// A status and a JSON body.
    Json(u16, &'static str),
    /// No answer for this long, then the connection closes.
    Silence(Duration),
}

/// A minimal HTTP/1.1 registry on 127.0.0.1 answering with queued answers
/// (a 404 once the queue is empty) and reporting each request it read.
/// Each connection gets its own thread, so a silent answer holds up nothing.
struct Registry {
    addr: SocketAddr,
    seen: mpsc::Receiver<Seen>,
    answers: Arc<Mutex<VecDeque<Answer>>>,
}

impl Registry {
    fn start() -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::channel();
        let answers = Arc::new(Mutex::new(VecDeque::new()));
        let queued = answers.clone();
        // The thread ends with the test process; the listener outlives the test.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (tx, queued) = (tx.clone(), queued.clone());
                std::thread::spawn(move || serve_one(stream, &tx, &queued));
            }
        });
        Registry {
            addr,
            seen,
            answers,
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    fn answer(&self, answer: Answer) {
        self.answers.lock().unwrap().push_back(answer);
    }

    fn next_request(&self) -> Seen {
        self.seen.recv_timeout(Duration::from_secs(5)).unwrap()
    }

    fn assert_no_request(&self) {
        assert!(self.seen.recv_timeout(Duration::from_millis(300)).is_err());
    }
}

fn serve_one(
    mut stream: std::net::TcpStream,
    tx: &mpsc::Sender<Seen>,
    queued: &Mutex<VecDeque<Answer>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let answer = queued
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Json(404, "{}"));
    let _ = tx.send(Seen {
        method,
        path,
        headers,
        body,
    });
    match answer {
        Answer::Json(status, json) => {
            let response = format!(
                "HTTP/1.1 {status} Test\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{json}",
                json.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
        Answer::Silence(d) => std::thread::sleep(d),
    }
}

/// The conformance cases' Verhoeff-valid 12-digit number.
const NUMBER: &str = "234123412346";

/// id-national with its manifest requesting `origin` (it ships requesting
/// none), that origin granted, and a registry lookup configured.
fn national_runtime(tmp: &std::path::Path, origin: &str, extra: serde_json::Value) -> Runtime {
    support::copy_plugin(
        &support::plugin_dir("id-national"),
        &tmp.join("id-national"),
        |m| {
            support::replace(
                m,
                "http = { origins = [] }",
                &format!("http = {{ origins = [\"{origin}\"] }}"),
            )
        },
    );
    let mut settings = support::settings();
    settings.grants.insert(
        "id-national".into(),
        Grant {
            http_origins: vec![origin.to_string()],
            ..Grant::default()
        },
    );
    let mut config = serde_json::json!({
        "identity_types": ["national-id"],
        "length": 12,
        "checksum": "verhoeff",
        "registry_url": format!("{origin}/v1/lookup"),
        "registry_timeout_ms": 2000,
        "authorization": "Bearer registry-test-token",
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    settings.config.insert("id-national".into(), config);
    let runtime = support::runtime(settings);
    let report = runtime.reload_dir(tmp);
    assert_eq!(report.loaded, vec!["id-national@0.1.0"], "{report:?}");
    runtime
}

fn national_claim(value: &str, name: Option<&str>, dob: Option<&str>) -> Claim {
    Claim {
        name: name.map(Into::into),
        dob: dob.map(Into::into),
        ..support::claim("national-id", value)
    }
}

fn verified(v: Verification) -> VerifiedIdentity {
    match v {
        Verification::Verified(v) => v,
        other => panic!("expected verified, got {other:?}"),
    }
}

fn rejected(v: Verification) -> String {
    match v {
        Verification::Rejected(reason) => reason,
        other => panic!("expected rejected, got {other:?}"),
    }
}

#[test]
fn id_national_looks_numbers_up_in_the_registry() {
    let _load = support::shared();
    let registry = Registry::start();
    let origin = registry.origin();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = national_runtime(tmp.path(), &origin, serde_json::json!({}));
    let p = runtime.identity_provider("id-national").unwrap();
    assert_eq!(p.identity_types().unwrap(), vec!["national-id"]);

    // Found: verified with the registry's attributes; the name is matched
    // ignoring case and white space.
    registry.answer(Answer::Json(
        200,
        r#"{"found": true, "name": "Asha Rao", "dob": "1980-01-15", "phone": "+911234567890"}"#,
    ));
    let claim = national_claim("2341 2341-2346", Some(" asha  RAO "), Some("1980-01-15"));
    let v = verified(p.verify(&claim).unwrap());
    assert_eq!(v.id_type, "national-id");
    assert_eq!(v.normalized_id, NUMBER);
    assert_eq!(
        v.attributes,
        vec![
            ("name".to_string(), "Asha Rao".to_string()),
            ("dob".to_string(), "1980-01-15".to_string())
        ]
    );
    // The request carried the normalised number, and only what is needed.
    let seen = registry.next_request();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/v1/lookup")
    );
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "id": NUMBER, "id_type": "national-id" })
    );
    assert!(seen
        .headers
        .contains(&("content-type".into(), "application/json".into())));
    assert!(seen
        .headers
        .contains(&("authorization".into(), "Bearer registry-test-token".into())));

    // Not found (404, or found: false): rejected, the number masked.
    registry.answer(Answer::Json(404, "{}"));
    let reason = rejected(p.verify(&national_claim(NUMBER, None, None)).unwrap());
    assert!(
        reason.contains("not in the national ID registry"),
        "{reason}"
    );
    assert!(reason.contains("********2346"), "{reason}");
    assert!(!reason.contains(NUMBER), "{reason}");
    registry.next_request();
    registry.answer(Answer::Json(200, r#"{"found": false}"#));
    rejected(p.verify(&national_claim(NUMBER, None, None)).unwrap());
    registry.next_request();

    // A name or date of birth that differs from the record: rejected.
    registry.answer(Answer::Json(
        200,
        r#"{"found": true, "name": "Asha Rao", "dob": "1980-01-15"}"#,
    ));
    let reason = rejected(
        p.verify(&national_claim(NUMBER, Some("Ravi Kumar"), None))
            .unwrap(),
    );
    assert!(reason.contains("name does not match"), "{reason}");
    registry.next_request();
    registry.answer(Answer::Json(
        200,
        r#"{"found": true, "name": "Asha Rao", "dob": "1980-01-15"}"#,
    ));
    let reason = rejected(
        p.verify(&national_claim(
            NUMBER,
            Some("Asha Rao"),
            Some("1981-01-15"),
        ))
        .unwrap(),
    );
    assert!(reason.contains("date of birth does not match"), "{reason}");
    registry.next_request();

    // A failing registry: unavailable (retryable), not a fault.
    registry.answer(Answer::Json(500, r#"{"error": "down"}"#));
    let err = p.verify(&national_claim(NUMBER, None, None)).unwrap_err();
    assert!(!err.is_fault(), "{err}");
    let guest = err.guest_error().unwrap();
    assert_eq!(guest.kind, GuestErrorKind::Unavailable, "{guest:?}");
    assert!(!guest.message.contains(NUMBER), "{guest:?}");
    registry.next_request();

    // A number that does not validate never reaches the registry.
    let reason = rejected(
        p.verify(&national_claim("234123412347", None, None))
            .unwrap(),
    );
    assert!(reason.contains("check digit"), "{reason}");
    registry.assert_no_request();
}

#[test]
fn id_national_reports_a_silent_registry_as_unavailable() {
    let _load = support::shared();
    let registry = Registry::start();
    let origin = registry.origin();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = national_runtime(
        tmp.path(),
        &origin,
        serde_json::json!({ "registry_timeout_ms": 300 }),
    );
    let p = runtime.identity_provider("id-national").unwrap();
    registry.answer(Answer::Silence(Duration::from_secs(3)));
    let err = p.verify(&national_claim(NUMBER, None, None)).unwrap_err();
    assert!(!err.is_fault(), "{err}");
    assert_eq!(
        err.guest_error().unwrap().kind,
        GuestErrorKind::Unavailable,
        "{err}"
    );
    registry.next_request();
}

#[test]
fn id_national_can_ask_by_get() {
    let _load = support::shared();
    let registry = Registry::start();
    let origin = registry.origin();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = national_runtime(
        tmp.path(),
        &origin,
        serde_json::json!({ "registry_method": "get", "registry_attributes": ["name"] }),
    );
    let p = runtime.identity_provider("id-national").unwrap();
    registry.answer(Answer::Json(
        200,
        r#"{"name": "Asha Rao", "dob": "1980-01-15"}"#,
    ));
    let v = verified(
        p.verify(&national_claim("2341-2341-2346", None, None))
            .unwrap(),
    );
    assert_eq!(
        v.attributes,
        vec![("name".to_string(), "Asha Rao".to_string())]
    );
    let seen = registry.next_request();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, format!("/v1/lookup?id={NUMBER}"));
    assert!(seen.body.is_empty());
}

#[test]
fn id_national_without_a_grant_for_the_registry_says_so() {
    let _load = support::shared();
    // The shipped manifest requests no origin: it loads without any grant,
    // and a configured registry is refused by the host, which the plugin
    // reports as the operator's mistake.
    let tmp = tempfile::tempdir().unwrap();
    support::copy_plugin(
        &support::plugin_dir("id-national"),
        &tmp.path().join("id-national"),
        |m| m,
    );
    let mut settings = support::settings();
    settings.config.insert(
        "id-national".into(),
        serde_json::json!({ "registry_url": "https://registry.example.org/v1/lookup" }),
    );
    let runtime = support::runtime(settings);
    let report = runtime.reload_dir(tmp.path());
    assert_eq!(report.loaded, vec!["id-national@0.1.0"], "{report:?}");
    let p = runtime.identity_provider("id-national").unwrap();
    let err = p.verify(&national_claim(NUMBER, None, None)).unwrap_err();
    let guest = err.guest_error().unwrap();
    assert_eq!(guest.kind, GuestErrorKind::Internal, "{guest:?}");
    assert!(guest.message.contains("http-origins"), "{guest:?}");
}

/// ICAO 9303 Part 3 §4.9 check digit, computed independently of the plugin
/// so the test does not trust the code it checks.
fn icao_check_digit(data: &[u8]) -> u8 {
    let sum: u32 = data
        .iter()
        .zip([7u32, 3, 1].iter().cycle())
        .map(|(&c, &w)| {
            let v = match c {
                b'0'..=b'9' => u32::from(c - b'0'),
                b'A'..=b'Z' => u32::from(c - b'A') + 10,
                _ => 0,
            };
            v * w
        })
        .sum();
    b'0' + (sum % 10) as u8
}

/// The specimen of ICAO Doc 9303 Part 4 (expired on 2012-04-15).
const SPECIMEN_1: &str = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<";
const SPECIMEN_2: &str = "L898902C36UTO7408122F1204159ZE184226B<<<<<10";

/// The specimen's line 2 expiring on `yymmdd`, its expiry and composite
/// check digits recomputed.
fn line2_expiring(yymmdd: &str) -> String {
    let mut l2 = SPECIMEN_2.as_bytes().to_vec();
    l2[21..27].copy_from_slice(yymmdd.as_bytes());
    l2[27] = icao_check_digit(&l2[21..27]);
    let composite: Vec<u8> = [&l2[0..10], &l2[13..20], &l2[21..43]].concat();
    l2[43] = icao_check_digit(&composite);
    String::from_utf8(l2).unwrap()
}

#[test]
fn id_passport_checks_the_mrz_against_the_host_clock() {
    let _load = support::shared();
    // The specimen's own check digits, as published.
    let l2 = SPECIMEN_2.as_bytes();
    assert_eq!(icao_check_digit(&l2[0..9]), l2[9]);
    assert_eq!(icao_check_digit(&l2[21..27]), l2[27]);

    let tmp = tempfile::tempdir().unwrap();
    support::copy_plugin(
        &support::plugin_dir("id-passport"),
        &tmp.path().join("id-passport"),
        |m| m,
    );
    // No grants: clock and config are granted by default.
    let runtime = support::runtime(support::settings());
    let report = runtime.reload_dir(tmp.path());
    assert_eq!(report.loaded, vec!["id-passport@0.1.0"], "{report:?}");
    let p = runtime.identity_provider("id-passport").unwrap();
    assert_eq!(p.identity_types().unwrap(), vec!["passport"]);

    // The specimen expired in 2012 by the host's clock.
    let specimen = format!("{SPECIMEN_1}\n{SPECIMEN_2}");
    let reason = rejected(p.verify(&support::claim("passport", &specimen)).unwrap());
    assert_eq!(reason, "the passport expired on 2012-04-15");

    // The same passport expiring on 31 December five years from now.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let year = 1970 + now.as_secs() / 31_556_952 + 5;
    let line2 = line2_expiring(&format!("{:02}1231", year % 100));
    let v = verified(
        p.verify(&Claim {
            dob: Some("1974-08-12".into()),
            ..support::claim("passport", &format!("{SPECIMEN_1}{line2}"))
        })
        .unwrap(),
    );
    assert_eq!(v.id_type, "passport");
    assert_eq!(v.normalized_id, "UTO:L898902C3");
    let attr = |k: &str| {
        v.attributes
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, value)| value.clone())
    };
    assert_eq!(attr("surname").as_deref(), Some("ERIKSSON"));
    assert_eq!(attr("given-names").as_deref(), Some("ANNA MARIA"));
    assert_eq!(attr("nationality").as_deref(), Some("UTO"));
    assert_eq!(attr("dob").as_deref(), Some("1974-08-12"));
    assert_eq!(attr("sex").as_deref(), Some("F"));
    assert_eq!(attr("expiry"), Some(format!("{year}-12-31")));

    // One altered check digit (the document number's): rejected, by name.
    let mut altered = line2.into_bytes();
    altered[9] = if altered[9] == b'9' {
        b'0'
    } else {
        altered[9] + 1
    };
    let altered = String::from_utf8(altered).unwrap();
    let reason = rejected(
        p.verify(&support::claim(
            "passport",
            &format!("{SPECIMEN_1}\n{altered}"),
        ))
        .unwrap(),
    );
    assert!(
        reason.contains("check digit of the document number"),
        "{reason}"
    );
    assert!(!reason.contains("L898902C3"), "{reason}");
}
