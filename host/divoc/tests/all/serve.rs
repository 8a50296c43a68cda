//! End to end: `divoc serve` on a fresh data dir with the example plugins
//! (built by `scripts/setup.sh` into target/plugins) answers health checks,
//! lists every example plugin as ready to the admin, and refuses callers
//! without a token or with the wrong role.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXAMPLES: [&str; 19] = [
    "events-counter",
    "events-dhis2",
    "format-eu-dcc",
    "format-jws",
    "format-shc",
    "format-who-ddcc",
    "format-who-ddcc-fhir",
    "id-national",
    "id-passport",
    "id-verhoeff",
    "notify-email",
    "notify-log",
    "notify-sms",
    "notify-webhook",
    "pay-gateway",
    "pay-government",
    "pay-voucher",
    "policy-age-interval",
    "policy-priority-groups",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(data: &std::path::Path, extra_config: &str, admin_token: Option<&str>) -> Server {
    let plugins = repo().join("target/plugins");
    assert!(
        EXAMPLES
            .iter()
            .all(|p| plugins.join(p).join("plugin.toml").is_file()),
        "example plugins are not built in {}; run scripts/setup.sh",
        plugins.display()
    );
    let config = data.join("divoc.toml");
    let mut base_config = std::fs::read_to_string(repo().join("config/divoc.toml")).unwrap();
    base_config.push_str(extra_config);
    std::fs::write(&config, base_config).unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_divoc"));
    cmd.arg("--config")
        .arg(&config)
        .env(
            "DIVOC_CERTIFICATES__PDF__TEMPLATES",
            repo().join("config/templates/pdf"),
        )
        .arg("serve")
        .arg("--data-dir")
        .arg(data.join("data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--plugins")
        .arg(&plugins)
        .arg("--log-format")
        .arg("json")
        .env_remove("DIVOC_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    crate::support::on_test_backend(&mut cmd, &data.join("data"));
    if let Some(t) = admin_token {
        cmd.env("DIVOC_ADMIN_TOKEN", t);
    }
    let child = cmd.spawn().unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = ureq::get(&format!("{}/healthz", server.base)).call() {
            if r.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn get(base: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = ureq::get(&format!("{base}{path}"));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(r) => (
            r.status(),
            serde_json::from_str(&r.into_string().unwrap()).unwrap(),
        ),
        Err(ureq::Error::Status(code, r)) => (
            code,
            serde_json::from_str(&r.into_string().unwrap()).unwrap(),
        ),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn serve_lists_example_plugins_as_ready_and_checks_roles() {
    let tmp = tempfile::tempdir().unwrap();
    let verifier = "verifier-token-0123456789";
    let extra = format!(
        "\n[[auth.tokens]]\nname = \"verifier-app\"\nrole = \"verifier\"\ntoken-sha256 = \"{}\"\n",
        hex::encode(divoc_api::auth::token_digest(verifier))
    );
    let server = start(tmp.path(), &extra, None);

    // First run generated an admin token into the data dir, mode 0600.
    let token_path = tmp.path().join("data/admin-token");
    let admin = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    if !crate::support::on_postgres() {
        assert!(tmp.path().join("data/divoc.sqlite").is_file());
    }

    let (status, body) = get(&server.base, "/v1/plugins", None);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = get(&server.base, "/v1/plugins", Some(verifier));
    assert_eq!(status, 403);

    let (status, body) = get(&server.base, "/v1/plugins", Some(&admin));
    assert_eq!(status, 200, "{body}");
    let plugins = body["plugins"].as_array().unwrap();
    for name in EXAMPLES {
        let p = plugins
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {body}"));
        assert_eq!(p["state"], "ready", "{name}: {p}");
        assert!(p["version"].is_string() && p["world"].is_string(), "{p}");
        // RFC 3339, e.g. `2026-12-03T08:04:19.879Z`.
        let loaded_at = p["loaded_at"].as_str().unwrap_or_else(|| panic!("{p}"));
        assert!(
            loaded_at.len() >= 20 && loaded_at.ends_with('Z') && &loaded_at[10..11] == "T",
            "{loaded_at}"
        );
        assert_eq!(p["faults"], 0);
    }

    let (status, body) = get(&server.base, "/readyz", None);
    assert_eq!(status, 200);
    assert_eq!(body["plugins"]["ready"], EXAMPLES.len());
    let (status, body) = get(&server.base, "/.well-known/did.json", None);
    assert_eq!(status, 200);
    assert!(body["verificationMethod"]
        .as_array()
        .is_some_and(|v| !v.is_empty()));
}

#[test]
fn admin_token_from_the_environment_and_reload_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let admin = "env-admin-token-0123456789";
    let server = start(tmp.path(), "", Some(admin));
    assert!(!tmp.path().join("data/admin-token").exists());
    let (status, _) = get(&server.base, "/v1/plugins", Some(admin));
    assert_eq!(status, 200);

    let out = Command::new(env!("CARGO_BIN_EXE_divoc"))
        .args(["plugin", "reload", "--url", &server.base, "--token", admin])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["report"]["unchanged"].as_array().unwrap().len(),
        EXAMPLES.len()
    );
    let _ = std::io::stderr().flush();
}
