//! What the server tests share: `divoc serve` as a child process on a free
//! loopback port (stopped when dropped) and JSON requests with a token.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `divoc serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Server {
    /// SIGTERM, then wait: the server closes its database cleanly before
    /// the test opens it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (as of now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Points a `divoc` command that opens the database in `data` at
/// PostgreSQL when the suite runs on it (`TEST_DIVOC_POSTGRES`, see
/// scripts/test.sh): a schema of its own per data dir, the same one when a
/// test restarts a server on the same dir. On SQLite it changes nothing.
pub fn on_test_backend<'c>(cmd: &'c mut Command, data: &Path) -> &'c mut Command {
    let key = std::path::absolute(data).unwrap();
    if let Some(url) = divoc_storage::pg::test_database_url_for(&key.to_string_lossy()) {
        cmd.env("DIVOC_STORAGE__BACKEND", "postgres")
            .env("DIVOC_STORAGE__URL", url);
    }
    cmd
}

/// The database of the server whose data dir is `data`, on the suite's
/// backend (see [`on_test_backend`]).
pub fn open_db(data: &Path) -> divoc_storage::Database {
    let key = std::path::absolute(data).unwrap();
    let options = divoc_storage::DbOptions {
        readers: 1,
        ..divoc_storage::DbOptions::default()
    };
    match divoc_storage::pg::test_database_url_for(&key.to_string_lossy()) {
        Some(url) => divoc_storage::Database::open_postgres(&url, options).unwrap(),
        None => divoc_storage::Database::open(&data.join("divoc.sqlite"), options).unwrap(),
    }
}

/// The rows of one query on the database of the server whose data dir is
/// `data`, as JSON values.
pub fn query(data: &Path, sql: &str) -> Vec<Vec<Value>> {
    open_db(data).query_json_for_tests(sql).unwrap()
}

/// Whether the suite runs on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var_os("TEST_DIVOC_POSTGRES").is_some()
}

/// `divoc --config <config> serve` on `port` with its data and plugins
/// dirs and `admin` as the admin token, output discarded; a test adds its
/// own arguments and environment, then [`spawn`]s it.
pub fn serve_command(
    config: &Path,
    data: &Path,
    plugins: &Path,
    port: u16,
    admin: &str,
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_divoc"));
    cmd.arg("--config")
        .arg(config)
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--plugins")
        .arg(plugins)
        .env("DIVOC_ADMIN_TOKEN", admin)
        // What the project's scripts export (CI's build cache, the guest
        // toolchain's dirs) reaches a server they start: not config keys.
        .env("DIVOC_CI_CACHE", "/nonexistent/ci-cache")
        .env("DIVOC_GUEST_TARGET_DIR", "/nonexistent/guest")
        .env("DIVOC_SDK_PATH", "/nonexistent/sdk")
        // QR image searches run only on an otherwise idle core, within a
        // budget (500 ms by default). Tests run two at a time on two cores,
        // so a search may wait longer than that; the budget's own
        // behaviour is tested in divoc-api (admission) and admission.rs.
        .env("DIVOC_ADMISSION__IMAGE_BUDGET_MS", "30000")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    on_test_backend(&mut cmd, data);
    cmd
}

/// Spawns a server command listening on `port` and waits until it answers.
pub fn spawn(cmd: &mut Command, port: u16) -> Server {
    let server = Server {
        child: cmd.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&format!("{}/healthz", server.base))
        .call()
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// Starts `divoc --config <config> serve` with its data dir and plugins dir
/// under `tmp` and `admin` as the admin token, and waits until it answers.
pub fn start(config: &Path, tmp: &Path, admin: &str) -> Server {
    let port = free_port();
    spawn(
        &mut serve_command(config, &tmp.join("data"), &tmp.join("plugins"), port, admin),
        port,
    )
}

/// Sends `body` as JSON (if any) with `token` as the bearer token; the
/// status and the answer as JSON (`Null` if it is not JSON).
pub fn send_json(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = ureq::request(method, url);
    if let Some(token) = token {
        req = req.set("Authorization", &format!("Bearer {token}"));
    }
    let result = match body {
        Some(b) => req.send_string(&b.to_string()),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The personal data the test fixtures put into the service: the people of
/// the sample issue request and of DIVOC's pre-enrolment CSV (names, dates
/// of birth, phone numbers, identity numbers, e-mail addresses).
pub fn fixture_personal_data() -> Vec<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = Vec::new();
    let req: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo.join("host/certificates/tests/cases/valid-one-dose/request.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let r = &req["recipient"];
    for v in [&r["name"], &r["dob"], &r["identity"]["value"]] {
        out.push(v.as_str().unwrap().to_owned());
    }
    for c in r["contacts"].as_array().unwrap() {
        let c = c.as_str().unwrap();
        out.push(c.split_once(':').map_or(c, |(_, v)| v).to_owned());
    }
    let csv =
        std::fs::read_to_string(repo.join("host/rollout/testdata/divoc-enrolments.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for line in lines {
        for (h, v) in header.iter().zip(line.split(',')) {
            let personal = matches!(*h, "phone" | "identity" | "dob" | "name" | "email");
            if personal && v.len() > 3 {
                out.push(v.to_owned());
            }
        }
    }
    out
}

/// Scans every event in a (stopped or running) server's database for
/// `needles` and the fixtures' personal data; returns the event kinds seen.
/// Event payloads carry ids and counts, never personal data.
pub fn assert_no_personal_data(data_dir: &Path, needles: &[&str]) -> Vec<String> {
    let rows: Vec<(i64, String, String, String)> = query(
        data_dir,
        "SELECT seq, kind, subject, payload FROM events ORDER BY seq",
    )
    .into_iter()
    .map(|r| {
        let text = |i: usize| r[i].as_str().unwrap().to_owned();
        (r[0].as_i64().unwrap(), text(1), text(2), text(3))
    })
    .collect();
    let mut all: Vec<String> = fixture_personal_data();
    all.extend(needles.iter().map(|s| (*s).to_owned()));
    let mut kinds = std::collections::BTreeSet::new();
    for (seq, kind, subject, payload) in &rows {
        let text = format!("{subject} {payload}").to_lowercase();
        for n in &all {
            assert!(
                !text.contains(&n.to_lowercase()),
                "event {seq} ({kind}) carries personal data `{n}`: {subject} {payload}"
            );
        }
        kinds.insert(kind.clone());
    }
    assert!(!rows.is_empty(), "no events to scan");
    kinds.into_iter().collect()
}

/// `GET {base}{path}` (the statistics, rebuilt in the background at most
/// `[stats] refresh-ms` after a change) until `ready` holds of it.
pub fn stats_until(
    base: &str,
    path: &str,
    token: Option<&str>,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = send_json("GET", &format!("{base}{path}"), token, None);
        assert_eq!(status, 200, "{body}");
        if ready(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "statistics never caught up: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The shipped `config/divoc.toml`, written to `dir/divoc.toml` with its
/// relative paths made absolute (they are relative to the file), after
/// `edit`; its path.
pub fn shipped_config(dir: &Path, edit: impl FnOnce(String) -> String) -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(repo.join("config/divoc.toml")).unwrap();
    let text = text.replace(
        "templates = \"templates/pdf\"",
        &format!(
            "templates = {:?}",
            repo.join("config/templates/pdf").display().to_string()
        ),
    );
    let path = dir.join("divoc.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One request the webhook endpoint received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub idempotency_key: String,
    /// Carried an `X-Divoc-Signature: v1=…` (notify-webhook signs every
    /// request; its own tests check the MAC).
    pub signed: bool,
    pub body: Value,
    pub status: u16,
}

/// A minimal HTTP/1.1 endpoint on loopback for the `notify-webhook`
/// plugin: answers 500 to the next `fail_next` requests and to any request
/// mentioning `broken`, 200 otherwise, and keeps every request.
#[derive(Clone, Default)]
pub struct Webhook {
    pub hits: Arc<Mutex<Vec<Hit>>>,
    pub fail_next: Arc<AtomicUsize>,
    pub broken: Option<&'static str>,
}

impl Webhook {
    /// Listens on a free loopback port (answered).
    pub fn start(&self) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let this = self.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let this = this.clone();
                std::thread::spawn(move || this.serve(stream));
            }
        });
        port
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let (mut length, mut key, mut signed) = (0usize, String::new(), false);
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "idempotency-key" => key = value.trim().to_string(),
                "x-divoc-signature" => signed = value.trim().starts_with("v1="),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let text = String::from_utf8_lossy(&body);
        let fail = self.broken.is_some_and(|b| text.contains(b))
            || self
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        let status = if fail { 500 } else { 200 };
        self.hits.lock().unwrap().push(Hit {
            at: Instant::now(),
            idempotency_key: key,
            signed,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            status,
        });
        let reason = if fail { "Internal Server Error" } else { "OK" };
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    }

    /// The requests about one certificate, in arrival order.
    pub fn hits_for(&self, certificate_id: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.body["certificate-ids"][0] == certificate_id)
            .cloned()
            .collect()
    }
}

/// The plugin as built, with its manifest asking for the loopback origin
/// instead of the example one (the operator's deployment step).
pub fn deploy_webhook_plugin(dir: &Path, origin: &str) {
    let built = repo().join("target/plugins/notify-webhook");
    assert!(
        built.join("plugin.toml").is_file(),
        "example plugins are not built in target/plugins; run scripts/setup.sh"
    );
    let target = dir.join("notify-webhook");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(&built).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if name == "plugin.toml" {
            let manifest = std::fs::read_to_string(&path).unwrap();
            assert!(manifest.contains("https://notify.example.org"));
            std::fs::write(
                target.join(name),
                manifest.replace("https://notify.example.org", origin),
            )
            .unwrap();
        } else if path.is_file() {
            std::fs::copy(&path, target.join(name)).unwrap();
        }
    }
}
