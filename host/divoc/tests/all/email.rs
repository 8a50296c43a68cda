//! Certificates by e-mail, end to end: the shipped configuration with the
//! `notify-email` channel, its sender grant and `[mail] smtp-url` pointing
//! at a real SMTP server on loopback (Python's aiosmtpd,
//! `tests/smtp_sink.py`, which writes each message it receives). A
//! certificate issued with a `mailto:` contact arrives From the granted
//! sender, To the recipient, with the template's subject, the certificate's
//! link, its QR code (which verifies) and its PDF attached; the relay's
//! first answer is a 4xx, and the retry carries the same Message-ID. A relay
//! that cannot be reached leaves the delivery pending and retried, not
//! failed. The server's log names no address.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use crate::support::{self, Server};

const ADMIN: &str = "email-test-admin-token-0123456789";
/// The sender address the test grants the plugin.
const SENDER: &str = "certificates@health.example";
/// The `mailto:` contact of the sample request.
const RECIPIENT: &str = "bhaya@example.org";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python the sink runs with: `DECODERS_PYTHON`, else the venv
/// `scripts/test.sh` makes (`target/pyenv`, with aiosmtpd). Not a `DIVOC_`
/// variable: the server reads those as configuration.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("DECODERS_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo().join("target/pyenv/bin/python");
    assert!(
        venv.exists(),
        "no {} — run scripts/test.sh (it makes the venv with aiosmtpd) or set DECODERS_PYTHON",
        venv.display()
    );
    venv
}

/// `tests/smtp_sink.py` on a loopback port; killed when dropped (and it
/// exits by itself when its standard input closes).
struct Sink {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
    dir: PathBuf,
}

impl Sink {
    /// Answers the first `defer_first` messages `451` (busy, try later).
    fn start(dir: &Path, defer_first: usize) -> Sink {
        let mut child = Command::new(python())
            .arg(repo().join("host/divoc/tests/smtp_sink.py"))
            .arg(dir)
            .arg("--defer-first")
            .arg(defer_first.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("the SMTP sink did not start (is aiosmtpd installed?): {line:?}")
        });
        Sink {
            child,
            _stdin: stdin,
            port,
            dir: dir.to_owned(),
        }
    }

    /// The messages received so far, in order.
    fn received(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` (TOML) with `key = value` in `[table]`: the table's own `key`
/// line replaced, or the line added at the table's end, or the table
/// appended. Whatever the shipped file says there already.
fn set_key(text: &str, table: &str, key: &str, value: &str) -> String {
    let header = format!("[{table}]");
    let line = format!("{key} = {value}");
    let is_key = |t: &str| {
        t.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    let (mut out, mut inside, mut done) = (Vec::new(), false, false);
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') {
            if inside && !done {
                out.push(line.clone());
                done = true;
            }
            inside = t == header;
        }
        if inside && is_key(t) {
            if !done {
                out.push(line.clone());
                done = true;
            }
            continue;
        }
        out.push(l.to_owned());
    }
    if inside && !done {
        out.push(line.clone());
        done = true;
    }
    if !done {
        out.extend([String::new(), header, line]);
    }
    out.join("\n") + "\n"
}

/// The shipped configuration, delivering through `notify-email` only, via
/// the relay at `smtp_url`, with quick retries.
fn start(tmp: &Path, smtp_url: &str) -> Server {
    let config = support::shipped_config(tmp, |text| {
        let quoted = |s: &str| format!("{s:?}");
        let mut text = set_key(&text, "mail", "smtp-url", &quoted(smtp_url));
        text = set_key(&text, "mail", "timeout-ms", "5000");
        text = set_key(
            &text,
            "plugins.grants.notify-email",
            "mail-sender",
            &quoted(SENDER),
        );
        let d = "certificates.distribution";
        text = set_key(&text, d, "channels", "[\"notify-email\"]");
        text = set_key(&text, d, "base-delay-ms", "300");
        text = set_key(&text, d, "max-delay-ms", "1000");
        text = set_key(&text, d, "poll-interval-ms", "50");
        text = set_key(&text, d, "max-attempts", "20");
        set_key(&text, "plugins", "watch", "false")
    });
    let plugins = repo().join("target/plugins");
    assert!(
        plugins.join("notify-email/plugin.toml").is_file(),
        "notify-email is not built in target/plugins; run scripts/setup.sh"
    );
    let port = support::free_port();
    let mut cmd = support::serve_command(&config, &tmp.join("data"), &plugins, port, ADMIN);
    cmd.arg("--log-format")
        .arg("json")
        .env_remove("DIVOC_LOG")
        .stderr(std::fs::File::create(tmp.join("server.log")).unwrap());
    support::spawn(&mut cmd, port)
}

fn issue(server: &Server, code: &str) -> String {
    let path = repo().join("host/certificates/tests/cases/valid-one-dose/request.json");
    let mut req: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    req["pre_enrollment_code"] = Value::String(code.into());
    assert!(
        req["recipient"]["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == &Value::String(format!("mailto:{RECIPIENT}"))),
        "{req}"
    );
    let (status, body) = support::send_json(
        "POST",
        &format!("{}/v1/certificates", server.base),
        Some(ADMIN),
        Some(&req),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// The certificate's one delivery row.
fn delivery(server: &Server, id: &str) -> Value {
    let (status, body) = support::send_json(
        "GET",
        &format!("{}/v1/certificates/{id}/distribution", server.base),
        Some(ADMIN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let rows = body["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{body}");
    rows[0].clone()
}

/// Polls the delivery until `ready` holds of it.
fn delivery_until(server: &Server, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = delivery(server, id);
        if ready(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "delivery of {id} never got there: {d}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn attachment(message: &Value, name: &str) -> (String, Vec<u8>) {
    let a = message["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["filename"] == name)
        .unwrap_or_else(|| panic!("no attachment {name}: {message}"));
    let data = base64::engine::general_purpose::STANDARD
        .decode(a["data_base64"].as_str().unwrap())
        .unwrap();
    (a["content_type"].as_str().unwrap().to_owned(), data)
}

/// The e-mail addresses in `text`: `local@domain` with a domain whose last
/// label is letters (so `notify-email@0.1.0`, a plugin's version, is not).
fn addresses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices('@') {
        let local: String = text[..i]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || "._+-".contains(*c))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let domain: String = text[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || ".-".contains(*c))
            .collect();
        let domain = domain.trim_end_matches('.');
        let tld = domain.rsplit('.').next().unwrap_or_default();
        if !local.is_empty()
            && domain.contains('.')
            && tld.len() >= 2
            && tld.chars().all(|c| c.is_ascii_alphabetic())
        {
            out.push(format!("{local}@{domain}"));
        }
    }
    out
}

/// Stops the server and returns its log, checked for personal data: the
/// fixtures' names, dates of birth, numbers and addresses, and any e-mail
/// address at all except the granted sender's.
fn stopped_log(server: Server, tmp: &Path) -> String {
    server.stop();
    let log = std::fs::read_to_string(tmp.join("server.log")).unwrap();
    assert!(!log.is_empty());
    for needle in support::fixture_personal_data() {
        assert!(
            !log.to_lowercase().contains(&needle.to_lowercase()),
            "the server log carries personal data `{needle}`"
        );
    }
    assert!(!log.contains(RECIPIENT));
    let found: Vec<String> = addresses(&log)
        .into_iter()
        .filter(|a| a != SENDER)
        .collect();
    assert!(
        found.is_empty(),
        "the server log has e-mail addresses: {found:?}"
    );
    log
}

#[test]
fn addresses_are_told_from_plugin_versions() {
    assert_eq!(
        addresses("to <bhaya@example.org>, loaded notify-email@0.1.0 and a…@example.org"),
        ["bhaya@example.org"]
    );
}

#[test]
fn a_certificate_is_emailed_with_its_qr_and_pdf_and_a_retry_keeps_its_message_id() {
    let tmp = tempfile::tempdir().unwrap();
    // The relay's first answer is 451: the plugin reports it retryable and
    // the worker tries again after its back-off.
    let sink = Sink::start(&tmp.path().join("mail"), 1);
    let server = start(tmp.path(), &format!("smtp://127.0.0.1:{}", sink.port));
    let id = issue(&server, "PEC-EMAIL-1");

    let done = delivery_until(&server, &id, |d| d["status"] != "pending");
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["channel"], "notify-email", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");

    let received = sink.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let (deferred, accepted) = (&received[0], &received[1]);
    assert_eq!(deferred["status"], "deferred");
    assert_eq!(accepted["status"], "accepted");

    // The envelope and the headers: the granted sender, the recipient only
    // (the request's phone number is not an e-mail contact).
    assert_eq!(accepted["mail_from"], SENDER);
    assert_eq!(accepted["rcpt_tos"], serde_json::json!([RECIPIENT]));
    let m = &accepted["message"];
    assert_eq!(m["defects"], serde_json::json!([]), "{m}");
    assert_eq!(m["from"], SENDER, "{m}");
    assert_eq!(m["to"], RECIPIENT, "{m}");
    assert_eq!(
        m["subject"], "Your covid-19 vaccination certificate (dose 1)",
        "{m}"
    );
    assert!(m["date"].is_string(), "{m}");

    // The built-in template: the name, and the certificate's link (the
    // shipped public URL).
    let text = m["text"].as_str().unwrap();
    assert!(text.starts_with("Dear Bhaya Mitra,"), "{text}");
    let url = format!("http://localhost:8080/v1/certificates/{id}");
    assert!(text.contains(&url), "{text}");
    let html = m["html"].as_str().unwrap();
    assert!(html.contains(&format!("<a href=\"{url}\">")), "{html}");

    // The attachments: the QR code (a PNG that verifies as this
    // certificate) and the printable PDF.
    let (kind, png) = attachment(m, "certificate-qr.png");
    assert_eq!(kind, "image/png");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let r = ureq::post(&format!("{}/v1/verify", server.base))
        .set("Content-Type", "image/png")
        .send_bytes(&png)
        .unwrap();
    let verdict: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(verdict["valid"], true, "{verdict}");
    let (kind, pdf) = attachment(m, "certificate.pdf");
    assert_eq!(kind, "application/pdf");
    assert!(pdf.starts_with(b"%PDF-"), "{:?}", &pdf[..pdf.len().min(16)]);
    assert!(
        pdf.len() > 1000 && pdf.windows(5).rev().take(64).any(|w| w == b"%%EOF"),
        "{} bytes",
        pdf.len()
    );

    // The retry is the same message: the same Message-ID (derived from the
    // outbox row by the host), from the granted sender's domain.
    let message_id = m["message_id"].as_str().unwrap();
    assert_eq!(deferred["message"]["message_id"], message_id);
    assert!(
        message_id.starts_with('<') && message_id.ends_with(".notify-email@health.example>"),
        "{message_id}"
    );
    assert_eq!(deferred["message"]["subject"], m["subject"]);

    let log = stopped_log(server, tmp.path());
    assert!(log.contains("delivery failed; will retry"), "{log}");
    assert!(log.contains("delivered"), "{log}");
}

#[test]
fn an_unreachable_relay_leaves_the_delivery_pending_and_retried() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing listens there.
    let relay = support::free_port();
    let server = start(tmp.path(), &format!("smtp://127.0.0.1:{relay}"));
    let id = issue(&server, "PEC-EMAIL-2");

    let d = delivery_until(&server, &id, |d| {
        d["status"] != "pending" || d["attempts"].as_u64().unwrap_or(0) >= 3
    });
    assert_eq!(d["status"], "pending", "retried, not failed: {d}");
    assert_eq!(d["channel"], "notify-email", "{d}");
    let error = d["last_error"].as_str().unwrap();
    assert!(error.contains("mail relay unavailable"), "{error}");
    assert!(!error.contains(RECIPIENT), "{error}");

    let log = stopped_log(server, tmp.path());
    assert!(log.contains("delivery failed; will retry"), "{log}");
}
