//! HTTP cases as data: `tests/cases/routes/<case>/case.json`, each one
//! request and what must come back, run in name order against one server.
//!
//! Before the cases run, the fixture pre-enrolment code `CASES-3` is
//! issued three doses through DIVOC's `certify`. A case is:
//!
//! ```json
//! { "why": "…", "method": "DELETE", "path": "/divoc/api/v1/certificates/CASES-3",
//!   "token": "admin" | "facility" | "none" | "bogus",
//!   "body": <JSON> | "body_raw": "<text>" | "body_bytes": <size>,
//!   (a `body_bytes` body is sent after `Expect: 100-continue`, as curl does),
//!   "content_type": "…", "status": 400, "code": "invalid_input",
//!   "field": "doses", "allow": "GET, HEAD", "absent_codes": ["…"],
//!   "json_error": true }
//! ```
//!
//! Every answer of 400 or more must be the JSON error shape
//! `{"error": {"code", "message", …}}`; `absent_codes` are pre-enrolment
//! codes the request carried that must not have been stored.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support;

const ADMIN: &str = "cases-test-admin-token-0123";
const FACILITY: &str = "cases-test-facility-token-0123";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config(tmp: &Path) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("config/divoc.toml")).unwrap();
    text.push_str(&format!(
        r#"
[[auth.tokens]]
name = "facility-1"
role = "facility"
token = "{FACILITY}"
facilities = ["FAC-1"]
"#
    ));
    // Small limits, so the 413 case needs no large body.
    let text = text.replace("body-limit-kib = 1024", "body-limit-kib = 64");
    // Relative paths in a config file are read beside it.
    let templates = repo().join("config/templates/pdf");
    let text = text.replace(
        "templates = \"templates/pdf\"",
        &format!("templates = {:?}", templates.display().to_string()),
    );
    let path = tmp.join("divoc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// DIVOC's `certify` item of the certificate module's cases, for `code`
/// and `dose`, valid until 2099.
pub fn divoc_item(code: &str, dose: u32) -> Value {
    let path = repo().join("host/certificates/tests/cases/divoc-certify/payload.json");
    let mut item: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    item["preEnrollmentCode"] = json!(code);
    item["vaccination"]["dose"] = json!(dose);
    item["vaccination"]["totalDoses"] = json!(3);
    item["vaccination"]["effectiveUntil"] = json!("2099-12-31");
    item
}

/// `"$item(CODE,DOSE)"` strings in a case body become DIVOC items; an
/// object `{"$item": [CODE, DOSE], "set": {"a.b": v}, "remove": ["a.b"]}`
/// becomes an item with those fields changed.
fn expand(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.contains_key("$item") => {
            let args = &m["$item"];
            let mut item = divoc_item(
                args[0].as_str().unwrap(),
                u32::try_from(args[1].as_u64().unwrap()).unwrap(),
            );
            if let Some(set) = m.get("set").and_then(Value::as_object) {
                for (path, value) in set {
                    *pointer_mut(&mut item, path) = value.clone();
                }
            }
            if let Some(remove) = m.get("remove").and_then(Value::as_array) {
                for path in remove {
                    let path = path.as_str().unwrap();
                    let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
                    let parent = if parent.is_empty() {
                        &mut item
                    } else {
                        pointer_mut(&mut item, parent)
                    };
                    parent.as_object_mut().unwrap().remove(key);
                }
            }
            item
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), expand(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(expand).collect()),
        other => other.clone(),
    }
}

fn pointer_mut<'a>(v: &'a mut Value, dotted: &str) -> &'a mut Value {
    let mut cur = v;
    for part in dotted.split('.') {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(part)
            .or_insert(Value::Null);
    }
    cur
}

fn raw(
    method: &str,
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: Option<Vec<u8>>,
) -> (u16, Option<String>, Option<String>, Vec<u8>) {
    let mut req = ureq::request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => req.set("Content-Type", content_type).send_bytes(&b),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let ctype = response.header("content-type").map(str::to_owned);
    let allow = response.header("allow").map(str::to_owned);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    (status, ctype, allow, bytes)
}

/// A request with a body of `len` bytes sent as curl sends a large one:
/// headers with `Expect: 100-continue` first, and the body only if the
/// server asks for it. A server that refuses the body up front (413) must
/// answer without reading it; a client writing the body regardless could
/// meet a closed socket instead of the answer.
fn expect_continue(
    method: &str,
    url: &str,
    token: Option<&str>,
    content_type: &str,
    len: usize,
) -> (u16, Option<String>, Option<String>, Vec<u8>) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: {content_type}\r\n\
         Content-Length: {len}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "{method} {url}: connection closed before an answer");
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head_len) = response.parse(&buf).unwrap() else {
            continue;
        };
        let status = response.code.unwrap();
        if status == 100 {
            stream.write_all(&vec![b' '; len]).unwrap();
            buf.drain(..head_len);
            continue;
        }
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let (ctype, allow) = (header("content-type"), header("allow"));
        let body_len: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
        let mut body = buf[head_len..].to_vec();
        while body.len() < body_len {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "{method} {url}: body cut short");
            body.extend_from_slice(&chunk[..n]);
        }
        return (status, ctype, allow, body);
    }
}

fn lookup(base: &str, code: &str) -> usize {
    let (_, body) = support::send_json(
        "POST",
        &format!("{base}/v1/certificates/lookup"),
        Some(ADMIN),
        Some(&json!({ "preEnrollmentCode": code })),
    );
    body["certificates"].as_array().map_or(0, Vec::len)
}

#[test]
fn route_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let server = support::start(&config(tmp.path()), tmp.path(), ADMIN);
    let base = server.base.as_str();
    let items: Vec<Value> = (1..=3).map(|d| divoc_item("CASES-3", d)).collect();
    let (s, body) = support::send_json(
        "POST",
        &format!("{base}/divoc/api/v1/certify"),
        Some(ADMIN),
        Some(&Value::Array(items)),
    );
    assert_eq!(s, 200, "fixture: {body}");

    let dir = repo().join("host/divoc/tests/cases/routes");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 25, "{} cases", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let case: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(name).join("case.json")).unwrap(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let token = match case["token"].as_str().unwrap_or("admin") {
            "admin" => Some(ADMIN),
            "facility" => Some(FACILITY),
            "bogus" => Some("not-a-token-at-all-0000"),
            "none" => None,
            other => panic!("{name}: token {other}"),
        };
        let body = if let Some(b) = case.get("body") {
            Some(expand(b).to_string().into_bytes())
        } else {
            case["body_raw"].as_str().map(|t| t.as_bytes().to_vec())
        };
        let content_type = case["content_type"].as_str().unwrap_or("application/json");
        let url = format!("{base}{}", case["path"].as_str().unwrap());
        let method = case["method"].as_str().unwrap();
        let (status, ctype, allow, bytes) = match case["body_bytes"].as_u64() {
            Some(n) => {
                let len = usize::try_from(n).unwrap();
                expect_continue(method, &url, token, content_type, len)
            }
            None => raw(method, &url, token, content_type, body),
        };
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut check = |ok: bool, what: String| {
            if !ok {
                failures.push(format!(
                    "{name} ({}): {what}; got {status} {}",
                    case["why"].as_str().unwrap_or(""),
                    String::from_utf8_lossy(&bytes)
                ));
            }
        };
        let want = case["status"].as_u64().unwrap();
        check(u64::from(status) == want, format!("status {want}"));
        if status >= 400 && method != "HEAD" {
            check(
                ctype
                    .as_deref()
                    .is_some_and(|c| c.starts_with("application/json"))
                    && answer["error"]["code"].is_string()
                    && answer["error"]["message"].is_string(),
                "the JSON error shape".into(),
            );
        }
        if let Some(code) = case["code"].as_str() {
            check(answer["error"]["code"] == code, format!("code {code}"));
        }
        if let Some(field) = case["field"].as_str() {
            check(answer["error"]["field"] == field, format!("field {field}"));
        }
        if let Some(a) = case["allow"].as_str() {
            check(allow.as_deref() == Some(a), format!("Allow: {a}"));
        }
        for code in case["absent_codes"].as_array().into_iter().flatten() {
            let code = code.as_str().unwrap();
            check(
                lookup(base, code) == 0,
                format!("nothing stored for {code}"),
            );
        }
        for code in case["present_codes"].as_array().into_iter().flatten() {
            let code = code.as_str().unwrap();
            check(lookup(base, code) > 0, format!("a certificate for {code}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The fixture is untouched by the refused revocations.
    let (_, body) = support::send_json(
        "POST",
        &format!("{base}/v1/certificates/lookup"),
        Some(ADMIN),
        Some(&json!({ "preEnrollmentCode": "CASES-3" })),
    );
    let statuses: Vec<&str> = body["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["valid", "valid", "valid"], "{body}");
}
