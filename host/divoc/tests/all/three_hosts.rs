//! Three `divoc serve` hosts on one PostgreSQL database behave as one
//! service, and losing one to SIGKILL mid-load loses and duplicates nothing.
//!
//! The hosts share what a deployment shares: the database, and the
//! `keys` directory of the first host (the issuer's keys and the person
//! key: the secret every host mounts). A rollout is run across them (each
//! step on another host, a facility's daily rate enforced across all
//! three), then many clients issue certificates spread over the hosts, and
//! one host is killed with SIGKILL in the middle. A client whose host dies
//! sends its request again to the next host, as a load balancer would.
//! Certificates are verified and revoked on hosts other than the one that
//! issued them. Afterwards: every request has exactly one certificate,
//! every acknowledged one under the id it was acknowledged with; every
//! certificate was delivered through the webhook under one idempotency
//! key; the audit chain verifies.
//!
//! Runs on PostgreSQL only: in `scripts/test.sh`'s PostgreSQL pass
//! (`TEST_DIVOC_POSTGRES`). Hosts on one SQLite file are not a deployment.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{self, deploy_webhook_plugin, repo, send_json, Server, Webhook};

const ADMIN: &str = "three-hosts-admin-token-0123";
const HOSTS: usize = 3;
/// Distinct issue requests.
const REQUESTS: usize = 900;
/// Clients sending at once, each starting on host `client % HOSTS`.
const CLIENTS: usize = 18;
/// The host killed, once this many requests are acknowledged.
const VICTIM: usize = 1;
const KILL_AFTER: usize = REQUESTS / 3;

struct Cluster {
    tmp: PathBuf,
    config: PathBuf,
    plugins: PathBuf,
    /// The database every host uses (a schema of the test cluster).
    url: String,
}

impl Cluster {
    fn data(&self, host: usize) -> PathBuf {
        self.tmp.join(format!("data-{host}"))
    }

    fn start(&self, host: usize) -> Server {
        let port = support::free_port();
        let mut cmd =
            support::serve_command(&self.config, &self.data(host), &self.plugins, port, ADMIN);
        cmd.env("DIVOC_STORAGE__BACKEND", "postgres")
            .env("DIVOC_STORAGE__URL", &self.url)
            .env("DIVOC_LOG", "warn")
            // notify-webhook signs what it sends with this.
            .env(
                "DIVOC_PLUGINS__CONFIG__NOTIFY_WEBHOOK__SECRET",
                "three-hosts-webhook-secret-0123456789",
            )
            .env(
                "DIVOC_CERTIFICATES__PDF__TEMPLATES",
                repo().join("config/templates/pdf"),
            )
            .stderr(std::fs::File::create(self.tmp.join(format!("host-{host}.log"))).unwrap());
        support::spawn(&mut cmd, port)
    }
}

fn config(origin: &str) -> String {
    format!(
        r#"
[server]
# One public name in front of the hosts: a credential's id and URLs do not
# depend on the host that issued it.
public-url = "https://divoc.example.org"

[plugins]
watch = false

[plugins.grants.notify-webhook]
http-origins = ["{origin}"]

[plugins.config.notify-webhook]
url = "{origin}/hook"
timeout_ms = 2000

[certificates.distribution]
channels = ["notify-webhook"]
max-attempts = 8
base-delay-ms = 200
max-delay-ms = 2000
poll-interval-ms = 50
# What a killed host had leased goes to another host after this.
lease-ms = 3000
"#
    )
}

/// Copies the first host's `keys` directory, subdirectories included
/// (files and directories keep their modes).
fn share_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            share_keys(&path, &target);
        } else {
            std::fs::copy(&path, target).unwrap();
        }
    }
}

fn request(i: usize) -> Value {
    let path = repo().join("host/certificates/tests/cases/valid-one-dose/request.json");
    let mut r: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    r["pre_enrollment_code"] = json!(code(i));
    r["recipient"]["contacts"] = json!([format!("tel:98800{i:05}")]);
    r
}

fn code(i: usize) -> String {
    format!("HOSTS-{i:05}")
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// `Ok((status, body))` for an HTTP answer, `Err` when the connection
/// failed (the request may or may not have reached the host).
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Result<(u16, Value), String> {
    let req = agent
        .request(method, url)
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .set("Content-Type", "application/json");
    let result = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = response.status();
    let text = response.into_string().map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn upload(base: &str, what: &str, query: &str, file: &str) -> Value {
    let csv = std::fs::read(repo().join("host/rollout/testdata").join(file)).unwrap();
    let response = ureq::post(&format!("{base}/v1/uploads/{what}{query}"))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .set("Content-Type", "text/csv")
        .send_bytes(&csv)
        .unwrap();
    serde_json::from_str(&response.into_string().unwrap()).unwrap()
}

/// A programme run across the hosts: each step on another one.
fn rollout(hosts: &[Server]) {
    let b = |h: usize| hosts[h % HOSTS].base.clone();
    let post = |h: usize, path: &str, body: Value| {
        send_json("POST", &format!("{}{path}", b(h)), Some(ADMIN), Some(&body))
    };
    let (s, v) = post(
        0,
        "/v1/vaccines",
        json!({"code": "COVAX", "name": "CoVax", "manufacturer": "COVPharma", "mode": "injection",
               "doses": 2, "intervals": [{"minDays": 28, "maxDays": 84}], "validityDays": 365}),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        1,
        "/v1/programmes",
        json!({"code": "C19", "name": "COVID-19 vaccination", "startDate": "2021-01-16",
               "vaccines": ["COVAX"]}),
    );
    assert_eq!(s, 201, "{v}");
    let v = upload(&b(2), "facilities", "?country=IN", "divoc-facilities.csv");
    assert_eq!(
        (v["created"].as_i64(), v["failed"].as_i64()),
        (Some(4), Some(1)),
        "{v}"
    );
    let v = upload(&b(0), "vaccinators", "", "divoc-vaccinators.csv");
    assert_eq!(
        (v["created"].as_i64(), v["failed"].as_i64()),
        (Some(2), Some(1)),
        "{v}"
    );
    let v = upload(
        &b(1),
        "enrolments",
        "?programme=C19",
        "divoc-enrolments.csv",
    );
    assert_eq!(
        (v["created"].as_i64(), v["failed"].as_i64()),
        (Some(2), Some(1)),
        "{v}"
    );
    // BLR311 takes 4 people a day, whichever host records them.
    let (s, v) = post(
        2,
        "/v1/programmes/C19/facilities",
        json!({"status": "active", "dailyRate": 4, "filter": {"district": "Bengaluru Urban"}}),
    );
    assert_eq!((s, v["matched"].as_i64()), (200, Some(2)), "{v}");

    // Seven walk-ins, enrolled on one host each, recorded at once on all
    // three: four get a certificate, three are refused for the rate.
    let codes: Vec<String> = (0..7)
        .map(|i| {
            let (s, v) = post(
                i,
                "/v1/enrolments",
                json!({"programme": "C19", "name": format!("Walk-in {i}"), "dob": "1980-01-01",
                       "gender": "Female", "nationality": "Indian", "address": {"line1": "1 Main St",
                       "district": "Bengaluru Urban", "state": "Karnataka"}}),
            );
            assert_eq!(s, 201, "{v}");
            v["code"].as_str().unwrap().to_owned()
        })
        .collect();
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = codes
            .iter()
            .enumerate()
            .map(|(i, code)| {
                let post = &post;
                s.spawn(move || {
                    post(
                        i + 1,
                        "/v1/vaccinations",
                        json!({"enrolment": code, "facility": "BLR311", "vaccinator": "A1",
                               "vaccine": "COVAX", "batch": "LOT-4711"}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let done: Vec<(&String, &Value)> = codes
        .iter()
        .zip(&answers)
        .filter(|(_, (s, _))| *s == 201)
        .map(|(code, (_, v))| (code, v))
        .collect();
    let limited = answers
        .iter()
        .filter(|(s, v)| *s == 429 && v["error"]["code"] == "rate_limited")
        .count();
    assert_eq!((done.len(), limited), (4, 3), "{answers:?}");
    // Each certificate reads the same on every host; the second dose is
    // refused as too early, on another host than the first.
    for (n, (enrolment, v)) in done.iter().enumerate() {
        let id = v["certificateId"].as_str().unwrap();
        let read: Vec<Value> = (0..HOSTS)
            .map(|h| {
                let (s, c) = send_json(
                    "GET",
                    &format!("{}/v1/certificates/{id}", b(h)),
                    Some(ADMIN),
                    None,
                );
                assert_eq!(s, 200, "{c}");
                c
            })
            .collect();
        assert!(read.iter().all(|c| *c == read[0]), "{read:?}");
        let name = read[0]["credentialSubject"]["name"].as_str().unwrap();
        assert!(name.starts_with("Walk-in "), "{name}");
        let (s, e) = post(
            n,
            "/v1/vaccinations",
            json!({"enrolment": enrolment, "facility": "BLR311", "vaccinator": "A1",
                   "vaccine": "COVAX", "batch": "LOT-4711"}),
        );
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (422, Some("dose")),
            "{e}"
        );
    }
    let (s, p) = send_json(
        "GET",
        &format!("{}/v1/programmes/C19/progress", b(2)),
        Some(ADMIN),
        None,
    );
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["vaccinated"], json!({"1": 4}), "{p}");
}

#[test]
fn three_hosts_on_one_database_survive_losing_one() {
    if !support::on_postgres() {
        eprintln!("three hosts: runs in the PostgreSQL pass of scripts/test.sh");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let webhook = Webhook::default();
    let origin = format!("http://127.0.0.1:{}", webhook.start());
    let plugins = tmp.path().join("plugins");
    deploy_webhook_plugin(&plugins, &origin);
    let config = tmp.path().join("divoc.toml");
    std::fs::write(&config, self::config(&origin)).unwrap();
    let key = std::path::absolute(tmp.path()).unwrap();
    let cluster = Cluster {
        tmp: tmp.path().to_owned(),
        config,
        plugins,
        url: divoc_storage::pg::test_database_url_for(&key.to_string_lossy()).unwrap(),
    };

    // The first host makes the keys; the others get a copy.
    let first = cluster.start(0);
    for h in 1..HOSTS {
        share_keys(&cluster.data(0).join("keys"), &cluster.data(h).join("keys"));
    }
    let mut hosts = vec![first];
    for h in 1..HOSTS {
        hosts.push(cluster.start(h));
    }
    rollout(&hosts);

    // Load on all three, and SIGKILL one in the middle of it.
    let bodies: Vec<String> = (0..REQUESTS).map(|i| request(i).to_string()).collect();
    let bases: Vec<String> = hosts.iter().map(|h| h.base.clone()).collect();
    let dead = AtomicBool::new(false);
    let acked: Mutex<HashMap<usize, (usize, String)>> = Mutex::new(HashMap::new());
    let failed_over = AtomicUsize::new(0);
    let unexpected: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for client in 0..CLIENTS {
            let (bases, bodies, dead) = (&bases, &bodies, &dead);
            let (acked, failed_over, unexpected, next) = (&acked, &failed_over, &unexpected, &next);
            s.spawn(move || {
                let agent = agent();
                let mut host = client % HOSTS;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(body) = bodies.get(i) else { break };
                    let answer = loop {
                        if host == VICTIM && dead.load(Ordering::SeqCst) {
                            host = (host + 1) % HOSTS;
                        }
                        let url = format!("{}/v1/certificates", bases[host]);
                        match call(&agent, "POST", &url, Some(body)) {
                            Ok(answer) => break answer,
                            Err(e) => {
                                // Only the killed host may fail to answer;
                                // the request goes to the next host.
                                assert_eq!(host, VICTIM, "host {host} failed: {e}");
                                failed_over.fetch_add(1, Ordering::SeqCst);
                                host = (host + 1) % HOSTS;
                            }
                        }
                    };
                    match answer {
                        (201 | 200, v) => {
                            let id = v["id"].as_str().unwrap().to_owned();
                            acked.lock().unwrap().insert(i, (host, id));
                        }
                        (status, v) => unexpected
                            .lock()
                            .unwrap()
                            .push(format!("request {i} on host {host}: HTTP {status}: {v}")),
                    }
                    host = (host + 1) % HOSTS;
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        while acked.lock().unwrap().len() < KILL_AFTER {
            assert!(Instant::now() < deadline, "load did not progress");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Child::kill is SIGKILL: no shutdown handler runs.
        hosts[VICTIM].child.kill().unwrap();
        hosts[VICTIM].child.wait().unwrap();
        dead.store(true, Ordering::SeqCst);
    });
    let acked = acked.into_inner().unwrap();
    let unexpected = unexpected.into_inner().unwrap();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert_eq!(
        acked.len(),
        REQUESTS,
        "every request is answered in the end"
    );
    let failed_over = failed_over.load(Ordering::SeqCst);
    assert!(failed_over > 0, "no request was in flight at the kill");
    let by_victim = acked.values().filter(|(h, _)| *h == VICTIM).count();
    assert!(
        (KILL_AFTER / HOSTS / 2..REQUESTS / HOSTS).contains(&by_victim),
        "the killed host answered {by_victim}"
    );
    let ids: HashSet<&String> = acked.values().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), REQUESTS, "two requests share a certificate");
    let live: Vec<&str> = (0..HOSTS)
        .filter(|h| *h != VICTIM)
        .map(|h| bases[h].as_str())
        .collect();

    // Sent again to a live host, every request finds its certificate.
    let agent = agent();
    for (i, body) in bodies.iter().enumerate() {
        let base = live[i % live.len()];
        let (status, v) = call(
            &agent,
            "POST",
            &format!("{base}/v1/certificates"),
            Some(body),
        )
        .unwrap();
        assert_eq!(status, 200, "request {i} again: {v}");
        assert_eq!(v["id"].as_str(), Some(acked[&i].1.as_str()), "request {i}");
    }

    // Verified on one live host, revoked on the other, then reported
    // revoked by both: a certificate of each host, the killed one's too.
    let mut picked: Vec<(usize, String)> = Vec::new();
    for h in 0..HOSTS {
        let (i, (_, id)) = acked.iter().find(|(_, (host, _))| *host == h).unwrap();
        picked.push((*i, id.clone()));
    }
    for (n, (_, id)) in picked.iter().enumerate() {
        let (reader, revoker) = (live[n % 2], live[(n + 1) % 2]);
        let qr = agent
            .get(&format!("{reader}/v1/certificates/{id}/qr.txt"))
            .set("Authorization", &format!("Bearer {ADMIN}"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let verify = json!({ "qr": qr }).to_string();
        let (s, v) = call(
            &agent,
            "POST",
            &format!("{reader}/v1/verify"),
            Some(&verify),
        )
        .unwrap();
        assert_eq!((s, &v["valid"]), (200, &json!(true)), "{v}");
        let reason = json!({"reason": "issued in error"}).to_string();
        let (s, v) = call(
            &agent,
            "POST",
            &format!("{revoker}/v1/certificates/{id}/revoke"),
            Some(&reason),
        )
        .unwrap();
        assert_eq!(s, 200, "{v}");
        for base in &live {
            let (s, v) = call(&agent, "POST", &format!("{base}/v1/verify"), Some(&verify)).unwrap();
            assert_eq!(s, 200, "{v}");
            assert_eq!(
                (&v["valid"], &v["checks"]["status"]),
                (&json!(false), &json!("revoked")),
                "{id} revoked on {revoker}, verified on {base}: {v}"
            );
        }
    }

    // Every certificate is delivered (what the killed host had leased,
    // by another host once the lease ran out), each under one idempotency
    // key, so the receiving end sees each message once.
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut missing, mut resent);
    loop {
        let hits = webhook.hits.lock().unwrap().clone();
        let mut keys: HashMap<String, HashSet<String>> = HashMap::new();
        let mut ok: HashMap<String, usize> = HashMap::new();
        for h in &hits {
            let Some(id) = h.body["certificate-ids"][0].as_str() else {
                continue;
            };
            keys.entry(id.to_owned())
                .or_default()
                .insert(h.idempotency_key.clone());
            if h.status == 200 {
                *ok.entry(id.to_owned()).or_default() += 1;
            }
        }
        for (id, k) in &keys {
            assert_eq!(k.len(), 1, "{id} was sent under {} keys", k.len());
        }
        // The revoked ones are delivered only if they went out before the
        // revocation (the outbox does not send a revoked certificate).
        let revoked: HashSet<&String> = picked.iter().map(|(_, id)| id).collect();
        missing = ids
            .iter()
            .filter(|id| !ok.contains_key(**id) && !revoked.contains(*id))
            .count();
        resent = ok.values().filter(|n| **n > 1).count();
        if missing == 0 {
            break;
        }
        if Instant::now() >= deadline {
            let one = ids
                .iter()
                .find(|id| !ok.contains_key(**id) && !revoked.contains(*id))
                .unwrap();
            let (_, d) = call(
                &agent,
                "GET",
                &format!("{}/v1/certificates/{one}/distribution", live[0]),
                None,
            )
            .unwrap();
            let log = std::fs::read_to_string(cluster.tmp.join("host-0.log")).unwrap_or_default();
            panic!(
                "{missing} certificates never delivered ({} requests reached the webhook); \
                 {one}: {d}; host 0 logged:\n{}",
                hits.len(),
                log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "three hosts: host {VICTIM} killed after {KILL_AFTER} acknowledgements, having answered \
         {by_victim}; {failed_over} requests failed over; {resent} deliveries sent again under \
         their key (the killed host's, in flight)"
    );
    // A delivery is sent again only when the host that sent it died
    // before recording it: at most the killed host's leased batch.
    assert!(resent <= 64, "{resent} deliveries sent twice");
    let survivors: Vec<Server> = hosts
        .into_iter()
        .enumerate()
        .filter(|(h, _)| *h != VICTIM)
        .map(|(_, s)| s)
        .collect();
    for s in survivors {
        s.stop();
    }

    // The database: one certificate per request (and the four of the
    // rollout), each with its audit record and event; the chain verifies.
    let db = divoc_storage::Database::open_postgres(
        &cluster.url,
        divoc_storage::DbOptions {
            readers: 1,
            ..divoc_storage::DbOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        db.read(divoc_storage::certificates::count).unwrap(),
        (REQUESTS + 4) as u64
    );
    for (i, (_, id)) in &acked {
        let records = db
            .read(|r| divoc_storage::certificates::by_recipient_ref(r, &code(*i)))
            .unwrap();
        assert_eq!(records.len(), 1, "{}", code(*i));
        assert_eq!(&records[0].id, id);
    }
    let issued = |kind: &str| {
        db.events_after(0, 100 * REQUESTS)
            .unwrap()
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    };
    assert_eq!(issued("certificate.issued"), REQUESTS + 4);
    let audited = db
        .audit_after(0, 100 * REQUESTS)
        .unwrap()
        .iter()
        .filter(|a| a.action == "certificate.issued")
        .count();
    assert_eq!(audited, REQUESTS + 4);
    drop(db);
    let out = Command::new(env!("CARGO_BIN_EXE_divoc"))
        .env("DIVOC_STORAGE__BACKEND", "postgres")
        .env("DIVOC_STORAGE__URL", &cluster.url)
        .args(["audit", "verify", "--data-dir"])
        .arg(cluster.data(0))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("intact"), "{stdout}");
}
