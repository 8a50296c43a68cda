//! Eligibility on the server, through the real `policy-age-interval`
//! plugin: a programme names it, the plugin's refusal reaches the person
//! with its reasons, and swapping the plugin (a new version dropped into
//! the plugins directory while the service runs) changes the next decision
//! without a restart; a programme that checks identity documents has the
//! identity-provider plugin check them at enrolment.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support;

const ADMIN: &str = "eligibility-test-admin-token-0123";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Copies a built plugin's files into `plugins/<name>`, each written
/// beside and renamed into place (as an operator's deployment would).
fn deploy(from: &Path, plugins: &Path, name: &str) {
    assert!(
        from.join("plugin.toml").is_file(),
        "{} is not built; run scripts/setup.sh",
        from.display()
    );
    let target = plugins.join(name);
    std::fs::create_dir_all(&target).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    // The manifest last: the watcher reloads a complete plugin.
    files.sort_by_key(|p| p.file_name().is_some_and(|n| n == "plugin.toml"));
    for path in files {
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        let tmp = target.join(format!(".{file}.tmp"));
        std::fs::copy(&path, &tmp).unwrap();
        std::fs::rename(&tmp, target.join(&file)).unwrap();
    }
}

fn config(tmp: &Path) -> PathBuf {
    support::shipped_config(tmp, |text| text)
}

fn send(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    support::send_json(method, url, Some(ADMIN), body)
}

fn person(name: &str, dob: &str) -> Value {
    json!({
        "programme": "C19", "name": name, "dob": dob, "gender": "Female",
        "address": {"line1": "Road", "district": "D", "state": "S"}
    })
}

fn policy_version(base: &str) -> Option<String> {
    let (_, plugins) = send("GET", &format!("{base}/v1/plugins"), None);
    plugins["plugins"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "policy-age-interval" && p["state"] == "ready")
        .and_then(|p| p["version"].as_str().map(str::to_owned))
}

#[test]
fn the_programme_policy_decides_and_a_swapped_plugin_decides_the_next_request() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    deploy(
        &repo().join("target/plugins/policy-age-interval"),
        &plugins,
        "policy-age-interval",
    );
    let server = support::start(&config(tmp.path()), tmp.path(), ADMIN);
    let base = server.base.clone();
    assert_eq!(policy_version(&base).as_deref(), Some("0.1.0"));

    let (s, _) = send(
        "POST",
        &format!("{base}/v1/vaccines"),
        Some(
            &json!({"code": "COVAX", "name": "CoVax", "manufacturer": "M", "mode": "injection",
                     "doses": 2, "intervals": [{"minDays": 28}]}),
        ),
    );
    assert_eq!(s, 201);
    let (s, _) = send(
        "POST",
        &format!("{base}/v1/programmes"),
        Some(
            &json!({"code": "C19", "name": "COVID-19", "startDate": "2021-01-16",
                     "vaccines": ["COVAX"], "eligibility": {"plugin": "policy-age-interval"}}),
        ),
    );
    assert_eq!(s, 201);

    // The default config has the plugin refuse anyone under 12.
    let enrolments = format!("{base}/v1/enrolments");
    let (s, body) = send("POST", &enrolments, Some(&person("Child", "2020-01-01")));
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["code"], "ineligible", "{body}");
    assert_eq!(
        body["error"]["details"]["reasons"],
        json!(["recipients must be at least 12 years old"]),
        "{body}"
    );
    let (s, body) = send("POST", &enrolments, Some(&person("Adult", "1980-01-01")));
    assert_eq!(s, 201, "{body}");
    let (_, list) = send("GET", &enrolments, None);
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "the child was not stored"
    );

    // Swap in version 9.0.0, which refuses everyone, while the service runs.
    deploy(
        &repo().join("target/fixtures/policy-paused"),
        &plugins,
        "policy-age-interval",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while policy_version(&base).as_deref() != Some("9.0.0") {
        assert!(
            Instant::now() < deadline,
            "the swapped policy was not loaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (s, body) = send(
        "POST",
        &enrolments,
        Some(&person("Second Adult", "1981-01-01")),
    );
    assert_eq!(s, 422, "{body}");
    assert_eq!(
        body["error"]["details"]["reasons"],
        json!(["vaccination is paused"]),
        "{body}"
    );
    server.stop();
    // No personal data in any event this test produced.
    crate::support::assert_no_personal_data(
        &tmp.path().join("data"),
        &["Second Adult", "1981-01-01", "1980-01-01"],
    );
}

/// A programme that checks identity documents has the enrolment's number
/// checked by the identity-provider plugin for its type (the example
/// `id-verhoeff` for `national-id`), as issuance does.
#[test]
fn a_programme_that_checks_identities_asks_the_identity_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    deploy(
        &repo().join("target/plugins/id-verhoeff"),
        &plugins,
        "id-verhoeff",
    );
    let server = support::start(&config(tmp.path()), tmp.path(), ADMIN);
    let base = server.base.clone();
    for (path, body) in [
        (
            "/v1/vaccines",
            json!({"code": "COVAX", "name": "CoVax", "manufacturer": "M", "mode": "injection", "doses": 1}),
        ),
        (
            "/v1/programmes",
            json!({"code": "C19", "name": "COVID-19", "startDate": "2021-01-16",
                   "vaccines": ["COVAX"], "identityCheck": true}),
        ),
    ] {
        let (s, answer) = send("POST", &format!("{base}{path}"), Some(&body));
        assert_eq!(s, 201, "{answer}");
    }
    let enrolments = format!("{base}/v1/enrolments");
    let with_id = |name: &str, id: Option<&str>| {
        let mut p = person(name, "1980-01-01");
        if let Some(id) = id {
            p["identity"] = json!(id);
        }
        p
    };
    // 12 digits with a Verhoeff check digit: 234567890124.
    let (s, body) = send(
        "POST",
        &enrolments,
        Some(&with_id("A", Some("234567890125"))),
    );
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (422, Some("identity")),
        "{body}"
    );
    let (s, body) = send("POST", &enrolments, Some(&with_id("B", None)));
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (422, Some("identity")),
        "{body}"
    );
    let (s, body) = send(
        "POST",
        &enrolments,
        Some(&with_id("C", Some("did:national-id:234567890124"))),
    );
    assert_eq!(s, 201, "{body}");
    server.stop();
}
