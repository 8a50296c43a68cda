//! Every example plugin (`target/plugins/*`) loads with the grants it asks
//! for and gives sensible answers, over real SQLite kv and a real keyring.

use std::path::Path;

use base64::Engine as _;
use divoc_runtime::types::eligibility::{Decision, PreviousDose, Query};
use divoc_runtime::types::events::Event;
use divoc_runtime::types::format::{ArtifactData, Credential};
use divoc_runtime::types::identity::Verification;
use divoc_runtime::types::payment::{Charge, PaymentStatus};
use divoc_runtime::types::{Identity, Money, Recipient};
use divoc_runtime::{Grant, GuestErrorKind, PluginState, Runtime, World};

use crate::support::{self, KeyringSigner, SqliteKv};

/// Verhoeff check digit (dihedral group D5), computed independently of the
/// plugin so the test does not trust the code it checks.
fn verhoeff_check_digit(digits: &[u8]) -> u8 {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    const INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];
    let mut c = 0u8;
    for (i, &d) in digits.iter().rev().enumerate() {
        c = D[c as usize][P[(i + 1) % 8][d as usize] as usize];
    }
    INV[c as usize]
}

/// Every plugin `scripts/setup.sh` built into target/plugins: (name, world),
/// from the manifests.
fn built_plugins() -> Vec<(String, String)> {
    let root = support::repo_root().join("target/plugins");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let manifest = entry.unwrap().path().join("plugin.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let value: toml::Value = toml::from_str(&text).unwrap();
        out.push((
            value["plugin"]["name"].as_str().unwrap().to_owned(),
            value["plugin"]["world"].as_str().unwrap().to_owned(),
        ));
    }
    out
}

struct Loaded {
    runtime: Runtime,
    kv: std::sync::Arc<SqliteKv>,
    signer: std::sync::Arc<KeyringSigner>,
    _state: tempfile::TempDir,
}

/// Loads all of `target/plugins` in one runtime with the grants each
/// manifest requests and a little configuration.
fn load_all() -> Loaded {
    let root = support::repo_root().join("target/plugins");
    for krate in [
        "id-verhoeff",
        "format-jws",
        "notify-webhook",
        "notify-log",
        "pay-voucher",
        "policy-age-interval",
        "events-counter",
    ] {
        support::plugin_dir(krate);
    }
    let mut settings = support::settings();
    let grant = |origins: &[&str]| Grant {
        http_origins: origins.iter().map(|o| o.to_string()).collect(),
        ..support::generous_grant()
    };
    let g = &mut settings.grants;
    g.insert("id-verhoeff".into(), grant(&["https://sms.example.org"]));
    g.insert("format-jws".into(), grant(&[]));
    g.insert(
        "notify-webhook".into(),
        grant(&["https://notify.example.org"]),
    );
    g.insert("pay-voucher".into(), grant(&[]));
    // Both payment adapters ask for 256 MiB of kv (one record per charge).
    let payments = |origins: &[&str]| Grant {
        kv_quota_bytes: Some(256 << 20),
        ..grant(origins)
    };
    g.insert("pay-government".into(), payments(&[]));
    g.insert("pay-gateway".into(), payments(&["https://pay.example.org"]));
    g.insert("notify-log".into(), grant(&[]));
    g.insert(
        "notify-sms".into(),
        grant(&["https://sms-gateway.example.org"]),
    );
    g.insert("policy-age-interval".into(), grant(&[]));
    g.insert("events-counter".into(), grant(&[]));
    // The country adapters: whatever each manifest asks for (the generous
    // grant covers kv, signing and no network), with their origins.
    for name in [
        "format-eu-dcc",
        "format-shc",
        "format-who-ddcc",
        "format-who-ddcc-fhir",
        "id-national",
        "id-passport",
        "policy-priority-groups",
    ] {
        g.insert(name.into(), grant(&[]));
    }
    g.insert(
        "notify-email".into(),
        Grant {
            mail_sender: Some("certificates@health.example".into()),
            ..grant(&[])
        },
    );
    g.insert(
        "events-dhis2".into(),
        Grant {
            kv_quota_bytes: Some(8 << 20),
            ..grant(&["https://dhis2.example.org"])
        },
    );
    settings.config.insert(
        "pay-voucher".into(),
        serde_json::json!({ "vouchers": { "GIFT-1": { "amount": 1000, "currency": "INR" } } }),
    );
    settings.config.insert(
        "notify-webhook".into(),
        serde_json::json!({
            "url": "https://notify.example.org/hook",
            "secret": "plugins-test-secret-0123456789abcdef",
        }),
    );
    let state = tempfile::tempdir().unwrap();
    let (services, kv, signer) = support::real_services(state.path());
    let runtime = Runtime::new(settings, services).unwrap();
    let report = runtime.reload_dir(&root);
    assert!(report.rejected.is_empty(), "{:#?}", report.rejected);
    assert_eq!(report.loaded.len(), built_plugins().len(), "{report:?}");
    Loaded {
        runtime,
        kv,
        signer,
        _state: state,
    }
}

#[test]
fn every_example_plugin_loads_and_reports_ready() {
    let _load = support::shared();
    let l = load_all();
    let status = l.runtime.status();
    let built = built_plugins();
    assert_eq!(status.len(), built.len());
    for row in &status {
        assert_eq!(row.state, PluginState::Ready, "{row:?}");
        let info = row.info.as_ref().unwrap();
        assert_eq!(info.wit, "divoc:plugin@1.2.0");
        assert!(info
            .dir
            .starts_with(Path::new(&support::repo_root()).join("target/plugins")));
    }
    for world in World::ALL {
        let expected = built.iter().filter(|(_, w)| *w == world.name()).count();
        assert!(expected >= 1, "no example plugin of world {world}");
        assert_eq!(l.runtime.plugins_of(world).len(), expected, "{world}");
    }
    // A handle of the wrong world is refused without calling anything.
    let err = l.runtime.payment_provider("id-verhoeff").unwrap_err();
    assert!(err.to_string().contains("identity-provider"), "{err}");
}

#[test]
fn id_verhoeff_verifies_valid_and_rejects_bad_numbers() {
    let _load = support::shared();
    let l = load_all();
    let p = l.runtime.identity_provider("id-verhoeff").unwrap();
    assert_eq!(p.identity_types().unwrap(), vec!["national-id"]);
    let base = [4u8, 9, 9, 1, 1, 8, 6, 5, 2, 3, 7];
    let check = verhoeff_check_digit(&base);
    let number: String = base.iter().map(|d| char::from(b'0' + d)).collect();
    let good = format!("{} {} {}{check}", &number[..4], &number[4..8], &number[8..]);
    match p.verify(&support::claim("national-id", &good)).unwrap() {
        Verification::Verified(v) => {
            assert_eq!(v.normalized_id, format!("{number}{check}"));
            assert_eq!(v.id_type, "national-id");
        }
        other => panic!("expected verified, got {other:?}"),
    }
    let bad = format!("{number}{}", (check + 1) % 10);
    match p.verify(&support::claim("national-id", &bad)).unwrap() {
        Verification::Rejected(reason) => assert!(reason.contains("check digit"), "{reason}"),
        other => panic!("expected rejected, got {other:?}"),
    }
    // An unknown id type is the plugin's own invalid-input error, not a fault.
    let err = p.verify(&support::claim("passport", &good)).unwrap_err();
    assert_eq!(
        err.guest_error().unwrap().kind,
        GuestErrorKind::InvalidInput
    );
    assert!(!err.is_fault());
}

/// base64url without padding (RFC 7515 §2).
fn b64url(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

#[test]
fn format_jws_round_trips_with_the_real_keyring() {
    let _load = support::shared();
    let l = load_all();
    let f = l.runtime.certificate_format("format-jws").unwrap();
    let info = f.format_info().unwrap();
    assert_eq!(info.id, "jws-compact");
    let json = r#"{"credentialSubject":{"name":"A"},"id":"urn:uuid:1"}"#;
    let credential = Credential {
        id: "c-1".into(),
        json: json.into(),
        signing_purpose: "certificate".into(),
    };
    let ArtifactData::Text(jws) = f.encode(&credential).unwrap() else {
        panic!("expected a text artifact");
    };
    let active = l.signer.keyring.active("certificate").unwrap();

    // Check the signature without the plugin: header.payload signed by the
    // active certificate key.
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: serde_json::Value = serde_json::from_slice(&b64url(parts[0])).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], active.key_id.as_str());
    assert_eq!(b64url(parts[1]), json.as_bytes());
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    assert!(l
        .signer
        .keyring
        .verify(&active.key_id, signing_input.as_bytes(), &b64url(parts[2]))
        .unwrap());

    let decoded = f.decode(&ArtifactData::Text(jws.clone())).unwrap();
    assert_eq!(decoded.claims_json, json);
    assert_eq!(decoded.key_id, active.key_id);
    assert!(decoded.signature_valid);

    // A tampered payload decodes but does not verify.
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"forged":true}"#),
        parts[2]
    );
    let decoded = f.decode(&ArtifactData::Bytes(forged.into_bytes())).unwrap();
    assert!(!decoded.signature_valid);

    // Signing with a purpose that is not granted is the host's refusal.
    let mut other = credential.clone();
    other.signing_purpose = "feedback".into();
    let err = f.encode(&other).unwrap_err();
    assert_eq!(err.guest_error().unwrap().kind, GuestErrorKind::Rejected);
}

#[test]
fn pay_voucher_keeps_its_state_in_sqlite() {
    let _load = support::shared();
    let l = load_all();
    let p = l.runtime.payment_provider("pay-voucher").unwrap();
    assert_eq!(p.modes().unwrap(), vec!["voucher"]);
    let inr = |n| Money {
        currency: "INR".into(),
        minor_units: n,
    };
    let charge = Charge {
        reference: "r-1".into(),
        mode: "voucher".into(),
        amount: inr(600),
        program: "covid-19".into(),
        description: "voucher: GIFT-1".into(),
    };
    let r = p.authorize(&charge).unwrap();
    assert!(matches!(r.status, PaymentStatus::Authorized));
    // Idempotent by reference.
    p.authorize(&charge).unwrap();
    let second = Charge {
        reference: "r-2".into(),
        ..charge.clone()
    };
    let err = p.authorize(&second).unwrap_err();
    assert_eq!(err.guest_error().unwrap().kind, GuestErrorKind::Rejected);
    let r = p.capture("r-1", &inr(500)).unwrap();
    assert!(matches!(r.status, PaymentStatus::Captured));
    let r = p.refund("r-1", &inr(500), "cancelled").unwrap();
    assert!(matches!(r.status, PaymentStatus::Refunded));
    // The state is in the database, in the plugin's own namespace.
    assert!(l
        .kv
        .db
        .kv_get("pay-voucher", "charge/r-1")
        .unwrap()
        .is_some());
    assert_eq!(l.kv.db.kv_list("pay-voucher", "", 10).unwrap().len(), 2);
    assert!(l
        .kv
        .db
        .kv_list("events-counter", "", 10)
        .unwrap()
        .is_empty());
}

fn query(age: Option<u32>, dose: u32, previous: &[(u32, &str)]) -> Query {
    Query {
        recipient: Recipient {
            name: "A".into(),
            dob: None,
            age,
            gender: None,
            nationality: None,
            identity: Identity {
                id_type: "national-id".into(),
                value: "1".into(),
            },
            contacts: Vec::new(),
            address: None,
        },
        program: "covid-19".into(),
        vaccine: None,
        dose,
        date: "2024-03-01".into(),
        previous_doses: previous
            .iter()
            .map(|(dose, date)| PreviousDose {
                vaccine: "v".into(),
                dose: *dose,
                date: date.to_string(),
            })
            .collect(),
    }
}

#[test]
fn policy_age_interval_allows_and_denies() {
    let _load = support::shared();
    let l = load_all();
    let p = l.runtime.rollout_policy("policy-age-interval").unwrap();
    assert!(matches!(
        p.evaluate(&query(Some(30), 1, &[])).unwrap(),
        Decision::Allow
    ));
    assert!(matches!(
        p.evaluate(&query(Some(30), 2, &[(1, "2024-01-01")]))
            .unwrap(),
        Decision::Allow
    ));
    match p.evaluate(&query(Some(10), 1, &[])).unwrap() {
        Decision::Deny(reasons) => assert!(reasons.iter().any(|r| r.contains("18")), "{reasons:?}"),
        Decision::Allow => panic!("a 10-year-old must be denied"),
    }
    match p
        .evaluate(&query(Some(30), 2, &[(1, "2024-02-20")]))
        .unwrap()
    {
        Decision::Deny(reasons) => assert!(!reasons.is_empty()),
        Decision::Allow => panic!("a second dose 10 days after the first must be denied"),
    }
    let mut bad = query(Some(30), 1, &[]);
    bad.date = "yesterday".into();
    let err = p.evaluate(&bad).unwrap_err();
    assert_eq!(
        err.guest_error().unwrap().kind,
        GuestErrorKind::InvalidInput
    );
}

#[test]
fn events_counter_acknowledges_and_counts_in_kv() {
    let _load = support::shared();
    let l = load_all();
    let s = l.runtime.event_subscriber("events-counter").unwrap();
    assert!(s.interests().unwrap().is_empty());
    let ev = |sequence, kind: &str| Event {
        sequence,
        kind: kind.into(),
        occurred_at: 1_700_000_000_000,
        payload: "{}".into(),
    };
    let batch = [
        ev(1, "certificate.issued"),
        ev(2, "certificate.issued"),
        ev(3, "certificate.revoked"),
    ];
    assert_eq!(s.deliver(&batch).unwrap(), 3);
    // A resend is acknowledged without double counting.
    assert_eq!(s.deliver(&batch[1..]).unwrap(), 3);
    let state = l.kv.db.kv_get("events-counter", "state").unwrap().unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    assert_eq!(state["counts"]["certificate.issued"], 2);
    assert_eq!(state["last"], 3);
}
