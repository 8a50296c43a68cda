use super::*;
use crate::data_integrity::{create_proof, verify_proof, ProofError, ProofOptions};
use serde_json::json;

const DID: &str = "did:web:localhost%3A8080";

fn open(dir: &Path) -> Keyring {
    Keyring::open_or_create(dir, &IssuerConfig::new(DID)).unwrap()
}

/// The keyring directory inside a test's temporary directory (which may be 0755).
fn kdir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("k")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keyring_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Keyring>();
}

#[test]
fn first_run_creates_private_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = kdir(&tmp);
    let ring = open(&dir);
    assert_eq!(mode(&dir), 0o700);
    let active = ring.active(DEFAULT_PURPOSE).unwrap();
    assert!(active.key_id.starts_with("did:web:localhost%3A8080#z6Mk"));
    assert_eq!(active.multibase, active.key_id.split_once('#').unwrap().1);
    assert!(active.active && active.retired_at.is_none());
    let pem = dir.join(format!("{}.pem", active.multibase));
    assert_eq!(mode(&pem), 0o600);
    assert!(fs::read_to_string(&pem)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(mode(&dir.join(METADATA_FILE)), 0o600);
    let meta: Value = serde_json::from_slice(&fs::read(dir.join(METADATA_FILE)).unwrap()).unwrap();
    assert_eq!(meta["keys"][0]["status"], "active");
    assert_eq!(meta["keys"][0]["purpose"], "certificate");
    // No temporary files are left behind.
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

use serde_json::Value;

#[test]
fn reopening_keeps_the_same_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let first = open(&kdir(&tmp)).public_keys();
    let second = open(&kdir(&tmp)).public_keys();
    assert_eq!(first, second);
    assert_eq!(first.len(), 1);
}

#[test]
fn one_key_per_purpose() {
    let tmp = tempfile::tempdir().unwrap();
    let config = IssuerConfig {
        did: DID.into(),
        purposes: vec!["certificate".into(), "revocation-list".into()],
        key_files: vec![],
    };
    let ring = Keyring::open_or_create(&kdir(&tmp), &config).unwrap();
    let a = ring.active("certificate").unwrap();
    let b = ring.active("revocation-list").unwrap();
    assert_ne!(a.key_id, b.key_id);
    assert!(matches!(
        ring.active("other"),
        Err(KeyError::NoActiveKey(_))
    ));
}

#[test]
fn sign_verify_and_rotate() {
    let tmp = tempfile::tempdir().unwrap();
    let ring = open(&kdir(&tmp));
    let old = ring.active(DEFAULT_PURPOSE).unwrap();
    let sig = ring.sign(&old.key_id, b"hello").unwrap();
    assert!(ring.verify(&old.key_id, b"hello", &sig).unwrap());
    assert!(!ring.verify(&old.key_id, b"hellO", &sig).unwrap());
    assert!(!ring.verify(&old.key_id, b"hello", &sig[..63]).unwrap());

    let new = ring.rotate(DEFAULT_PURPOSE).unwrap();
    assert_ne!(new.key_id, old.key_id);
    assert_eq!(ring.active(DEFAULT_PURPOSE).unwrap(), new);
    // The old key verifies but never signs again.
    assert!(ring.verify(&old.key_id, b"hello", &sig).unwrap());
    assert!(matches!(
        ring.sign(&old.key_id, b"x"),
        Err(KeyError::Retired(_))
    ));
    let retired = ring.find(&old.key_id).unwrap();
    assert!(!retired.active && retired.retired_at.is_some());
    // Its private key file is gone; the new one exists.
    assert!(!kdir(&tmp).join(format!("{}.pem", old.multibase)).exists());
    assert!(kdir(&tmp).join(format!("{}.pem", new.multibase)).exists());

    // State survives a restart.
    let reopened = open(&kdir(&tmp));
    assert_eq!(reopened.public_keys(), ring.public_keys());
    assert!(matches!(
        reopened.sign(&old.key_id, b"x"),
        Err(KeyError::Retired(_))
    ));
    let sig2 = reopened.sign(&new.key_id, b"m").unwrap();
    assert!(ring.verify(&new.key_id, b"m", &sig2).unwrap());

    assert!(matches!(
        ring.sign("did:web:x#nope", b"x"),
        Err(KeyError::UnknownKey(_))
    ));
    assert!(matches!(
        ring.verify("did:web:x#nope", b"x", &sig),
        Err(KeyError::UnknownKey(_))
    ));
    assert!(matches!(ring.rotate("nope"), Err(KeyError::NoActiveKey(_))));
}

#[test]
fn concurrent_rotation_and_signing() {
    let tmp = tempfile::tempdir().unwrap();
    let ring = open(&kdir(&tmp));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    if i == 0 {
                        ring.rotate(DEFAULT_PURPOSE).unwrap();
                    } else {
                        let key = ring.active(DEFAULT_PURPOSE).unwrap();
                        // May race with a rotation; either outcome is well-defined.
                        match ring.sign(&key.key_id, b"m") {
                            Ok(sig) => assert!(ring.verify(&key.key_id, b"m", &sig).unwrap()),
                            Err(KeyError::Retired(_)) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let keys = ring.public_keys();
    assert_eq!(keys.len(), 6);
    assert_eq!(keys.iter().filter(|k| k.active).count(), 1);
    assert_eq!(open(&kdir(&tmp)).public_keys(), keys);
}

#[test]
fn keyring_signs_data_integrity_proofs() {
    let tmp = tempfile::tempdir().unwrap();
    let ring = open(&kdir(&tmp));
    let key = ring.active(DEFAULT_PURPOSE).unwrap();
    let doc = json!({"@context": ["https://www.w3.org/ns/credentials/v2"], "id": "urn:x"});
    let signed = create_proof(&doc, &ProofOptions::assertion(&key.key_id), &ring).unwrap();
    let resolve = |id: &str| ring.resolve_public_key(id);
    assert_eq!(
        verify_proof(&signed, resolve).unwrap().verification_method,
        key.key_id
    );

    ring.rotate(DEFAULT_PURPOSE).unwrap();
    // Old certificates still verify; the retired key refuses to sign new ones.
    assert!(verify_proof(&signed, resolve).is_ok());
    assert!(matches!(
        create_proof(&doc, &ProofOptions::assertion(&key.key_id), &ring),
        Err(ProofError::Signer(_))
    ));
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let tmp = tempfile::tempdir().unwrap();
    let ring = open(&kdir(&tmp));
    let key = ring.active(DEFAULT_PURPOSE).unwrap();
    let pem = fs::read_to_string(kdir(&tmp).join(format!("{}.pem", key.multibase))).unwrap();
    let secret = SigningKey::from_pkcs8_pem(&pem).unwrap().to_bytes();
    let debug = format!("{ring:?} {:?}", ring.inner);
    assert!(debug.contains("<redacted>"));
    for needle in [
        hex::encode(secret),
        format!("{:?}", secret),
        multibase::encode_base58btc(&secret),
    ] {
        assert!(!debug.contains(&needle));
    }
    assert!(!debug.contains("PRIVATE KEY"));
}

#[test]
fn imports_operator_key_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = kdir(&tmp);
    let generated = open(&dir).active(DEFAULT_PURPOSE).unwrap();

    let operator_key = SigningKey::from_bytes(&[42u8; 32]);
    let operator_pem = tmp.path().join("operator.pem");
    fs::write(
        &operator_pem,
        operator_key
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let config = IssuerConfig {
        did: DID.into(),
        purposes: vec![DEFAULT_PURPOSE.into()],
        key_files: vec![KeyFileConfig {
            path: operator_pem.clone(),
            purpose: DEFAULT_PURPOSE.into(),
        }],
    };
    let ring = Keyring::open_or_create(&dir, &config).unwrap();
    let active = ring.active(DEFAULT_PURPOSE).unwrap();
    assert_eq!(active.public_key, operator_key.verifying_key().to_bytes());
    assert!(!ring.find(&generated.key_id).unwrap().active);
    assert_eq!(ring.public_keys().len(), 2);

    // Re-opening with the same configuration imports nothing new.
    let again = Keyring::open_or_create(&dir, &config).unwrap();
    assert_eq!(again.public_keys(), ring.public_keys());

    // After rotating away from the imported key, the config does not revive it.
    again.rotate(DEFAULT_PURPOSE).unwrap();
    let third = Keyring::open_or_create(&dir, &config).unwrap();
    assert!(!third.find(&active.key_id).unwrap().active);
    assert_eq!(third.public_keys().len(), 3);

    let garbage = tmp.path().join("garbage.pem");
    fs::write(&garbage, "not a key").unwrap();
    let bad = IssuerConfig {
        key_files: vec![KeyFileConfig {
            path: garbage,
            purpose: "x".into(),
        }],
        ..config
    };
    let err = Keyring::open_or_create(&dir, &bad).unwrap_err();
    assert!(matches!(err, KeyError::InvalidKeyFile { .. }), "{err}");
}

#[test]
fn refuses_inconsistent_state() {
    let tmp = tempfile::tempdir().unwrap();
    let ring = open(&kdir(&tmp));
    let key = ring.active(DEFAULT_PURPOSE).unwrap();
    drop(ring);

    // Another DID.
    let err = Keyring::open_or_create(&kdir(&tmp), &IssuerConfig::new("did:web:example.org"))
        .unwrap_err();
    assert!(matches!(err, KeyError::DidMismatch { .. }));

    // Loose permissions on a private key file.
    let pem = kdir(&tmp).join(format!("{}.pem", key.multibase));
    fs::set_permissions(&pem, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        Keyring::open_or_create(&kdir(&tmp), &IssuerConfig::new(DID)),
        Err(KeyError::InsecurePermissions { .. })
    ));
    fs::set_permissions(&pem, fs::Permissions::from_mode(0o600)).unwrap();

    // A PEM that does not match the metadata.
    let other = SigningKey::from_bytes(&[1u8; 32])
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
    let original = fs::read(&pem).unwrap();
    fs::write(&pem, other.as_bytes()).unwrap();
    assert!(matches!(
        Keyring::open_or_create(&kdir(&tmp), &IssuerConfig::new(DID)),
        Err(KeyError::KeyMismatch { .. })
    ));
    fs::write(&pem, original).unwrap();

    // Corrupt metadata.
    fs::write(kdir(&tmp).join(METADATA_FILE), "{").unwrap();
    assert!(matches!(
        Keyring::open_or_create(&kdir(&tmp), &IssuerConfig::new(DID)),
        Err(KeyError::CorruptMetadata { .. })
    ));
}

#[test]
fn rejects_bad_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    for did in [
        "",
        "web:x",
        "did:web:",
        "did:web:x#frag",
        "did:Web:x",
        "did:web:x/path",
    ] {
        assert!(
            matches!(
                Keyring::open_or_create(&kdir(&tmp), &IssuerConfig::new(did)),
                Err(KeyError::InvalidConfig(_))
            ),
            "{did}"
        );
    }
    let none = IssuerConfig {
        purposes: vec![],
        ..IssuerConfig::new(DID)
    };
    assert!(matches!(
        Keyring::open_or_create(&kdir(&tmp), &none),
        Err(KeyError::InvalidConfig(_))
    ));
    let open_dir = tmp.path().join("open");
    fs::create_dir(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(
        Keyring::open_or_create(&open_dir, &IssuerConfig::new(DID)),
        Err(KeyError::InsecurePermissions { .. })
    ));
}

#[test]
fn config_deserializes_with_defaults() {
    let config: IssuerConfig = serde_json::from_value(json!({"did": DID})).unwrap();
    assert_eq!(config, IssuerConfig::new(DID));
}

#[test]
fn published_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let ring = open(&kdir(&tmp));
    let first = ring.active(DEFAULT_PURPOSE).unwrap();

    let doc = did_document(&ring);
    assert_eq!(doc["@context"][0], "https://www.w3.org/ns/did/v1");
    assert_eq!(doc["@context"][1], "https://w3id.org/security/multikey/v1");
    assert_eq!(doc["@context"][2]["divocKeyStatus"], "urn:divoc:keyStatus");
    assert_eq!(doc["id"], DID);
    assert_eq!(
        doc["verificationMethod"],
        json!([{
            "id": first.key_id,
            "type": "Multikey",
            "controller": DID,
            "publicKeyMultibase": first.multibase,
            "divocKeyStatus": "active",
        }])
    );
    assert_eq!(doc["assertionMethod"], json!([first.key_id]));

    let second = ring.rotate(DEFAULT_PURPOSE).unwrap();
    let doc = did_document(&ring);
    assert_eq!(doc["@context"].as_array().unwrap().len(), 3);
    assert_eq!(doc["verificationMethod"][0]["divocKeyStatus"], "retired");
    assert!(doc["verificationMethod"][0]["divocRetiredAt"].is_string());
    assert_eq!(doc["verificationMethod"][1]["divocKeyStatus"], "active");
    assert_eq!(doc["assertionMethod"], json!([first.key_id, second.key_id]));

    let set = jwks(&ring);
    let jwk = &set["keys"][1];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["kid"], second.key_id.as_str());
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"], "EdDSA");
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    assert_eq!(x, second.public_key);

    let trust = trust_file(&ring);
    assert_eq!(trust["issuer"], DID);
    assert_eq!(trust["keys"][0]["status"], "retired");
    assert!(trust["keys"][0]["retiredAt"].is_string());
    assert_eq!(trust["keys"][1]["status"], "active");
    assert!(trust["keys"][1].get("retiredAt").is_none());
    assert_eq!(
        trust["keys"][1]["publicKeyMultibase"],
        second.multibase.as_str()
    );
    assert_eq!(trust["cryptosuites"], json!(["eddsa-jcs-2022"]));
}

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

#[test]
fn signing_during_rotations_never_meets_a_retired_key() {
    // Issuers sign while an operator rotates: each proof is made with the
    // key that was active while it was made, and verifies with it.
    let tmp = tempfile::tempdir().unwrap();
    let ring = open(&kdir(&tmp));
    let doc = json!({"@context": ["https://www.w3.org/ns/credentials/v2"], "n": 1});
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let signers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let mut made = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) || made < 50 {
                        let signed = ring
                            .with_active_signer(DEFAULT_PURPOSE, |key, signer| {
                                create_proof(&doc, &ProofOptions::assertion(&key.key_id), signer)
                            })
                            .unwrap()
                            .unwrap();
                        verify_proof(&signed, |id| ring.resolve_public_key(id)).unwrap();
                        made += 1;
                    }
                    made
                })
            })
            .collect();
        let mut rotations = Vec::new();
        for _ in 0..20 {
            rotations.push(ring.rotate_reporting(DEFAULT_PURPOSE).unwrap());
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in signers {
            assert!(t.join().unwrap() >= 50);
        }
        // Each rotation retired the key the previous one made.
        for pair in rotations.windows(2) {
            assert_eq!(pair[1].retired.key_id, pair[0].new.key_id);
        }
    });
    // A signer only signs for its own key id.
    let other = ring
        .with_active_signer(DEFAULT_PURPOSE, |_, signer| {
            data_integrity::Signer::sign(signer, "did:example:other#key", b"x")
        })
        .unwrap();
    assert!(matches!(other, Err(KeyError::UnknownKey(_))));
}
