//! Logins of an external OpenID Connect provider: the test is the provider
//! (an ES256 key it makes, its JWKS served on loopback) and the service
//! accepts its JWTs for the configured issuer and audience, with the role
//! and facilities from claims, and refuses every token that is not exactly
//! that.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use crate::support;

const ADMIN: &str = "oidc-test-admin-token-0123456789";
const ISSUER: &str = "https://sso.health.test/realms/divoc";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A P-256 key: its PKCS#8 document (to sign) and its JWK (to publish).
fn key(kid: &str) -> (Vec<u8>, Value) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // Uncompressed point: 0x04 || x || y.
    let point = pair.public_key().as_ref();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                     "kid": kid, "alg": "ES256", "use": "sig"});
    (pkcs8.as_ref().to_vec(), jwk)
}

/// Serves `body` to every request (the provider's JWKS endpoint).
fn serve_jwks(body: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn config(tmp: &Path, jwks_port: u16) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("config/divoc.toml")).unwrap();
    text.push_str(&format!(
        "\n[auth.oidc]\nissuer = \"{ISSUER}\"\naudience = \"divoc\"\njwks-url = \"http://127.0.0.1:{jwks_port}/certs\"\nrole-claim = \"realm_access.roles\"\nfacility-claim = \"facilities\"\n"
    ));
    let templates = repo().join("config/templates/pdf");
    let text = text.replace(
        "templates = \"templates/pdf\"",
        &format!("templates = {:?}", templates.display().to_string()),
    );
    let path = tmp.join("divoc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn sign(pkcs8: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(pkcs8)).unwrap()
}

fn claims(role: &str, facilities: &[&str], changes: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut c = json!({"iss": ISSUER, "aud": "divoc", "sub": "u-1", "preferred_username": "asha",
                       "iat": now, "exp": now + 300,
                       "realm_access": {"roles": ["offline_access", role]}, "facilities": facilities});
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
fn provider_tokens_are_accepted_exactly_as_configured() {
    let (pkcs8, jwk) = key("k1");
    let (other_pkcs8, _) = key("k1");
    let port = serve_jwks(json!({"keys": [jwk]}).to_string());
    let tmp = tempfile::tempdir().unwrap();
    let server = support::start(&config(tmp.path(), port), tmp.path(), ADMIN);
    let base = server.base.as_str();

    // A controller from the provider builds the registry.
    let controller = sign(&pkcs8, "k1", &claims("controller", &[], json!({})));
    let vaccine = json!({"code": "COVAX", "name": "CoVax", "manufacturer": "M", "mode": "injection", "doses": 1});
    let (s, body) = support::send_json(
        "POST",
        &format!("{base}/v1/vaccines"),
        Some(&controller),
        Some(&vaccine),
    );
    assert_eq!(s, 201, "{body}");
    let (_, history) = support::send_json(
        "GET",
        &format!("{base}/v1/vaccines/COVAX/history"),
        Some(ADMIN),
        None,
    );
    assert_eq!(history["versions"][0]["actor"], "oidc:u-1");
    for code in ["FAC-1", "FAC-2"] {
        let facility = json!({"code": code, "name": format!("PHC {code}"), "category": "government", "type": "fixed",
            "address": {"line1": "Main Rd", "district": "North", "state": "KA", "country": "IN"}});
        let (s, body) = support::send_json(
            "POST",
            &format!("{base}/v1/facilities"),
            Some(&controller),
            Some(&facility),
        );
        assert_eq!(s, 201, "{body}");
    }

    // Facility staff: their facility only.
    let staff = sign(&pkcs8, "k1", &claims("facility", &["FAC-1"], json!({})));
    let (s, page) = support::send_json("GET", &format!("{base}/v1/facilities"), Some(&staff), None);
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["code"], "FAC-1");
    let (s, _) = support::send_json(
        "POST",
        &format!("{base}/v1/vaccines"),
        Some(&staff),
        Some(&vaccine),
    );
    assert_eq!(s, 403);

    // Everything else is refused as unauthenticated.
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("admin", &[], json!({})),
        &EncodingKey::from_secret(b"a shared secret"),
    )
    .unwrap();
    let refused = [
        (
            "expired",
            sign(
                &pkcs8,
                "k1",
                &claims("controller", &[], json!({"exp": 1_000_000_000})),
            ),
        ),
        (
            "another audience",
            sign(
                &pkcs8,
                "k1",
                &claims("controller", &[], json!({"aud": "someone-else"})),
            ),
        ),
        (
            "another issuer",
            sign(
                &pkcs8,
                "k1",
                &claims("controller", &[], json!({"iss": "https://evil.test"})),
            ),
        ),
        (
            "another key, same kid",
            sign(&other_pkcs8, "k1", &claims("controller", &[], json!({}))),
        ),
        (
            "an unknown kid",
            sign(&pkcs8, "k9", &claims("controller", &[], json!({}))),
        ),
        (
            "no role of ours",
            sign(&pkcs8, "k1", &claims("superuser", &[], json!({}))),
        ),
        (
            "facility role without facilities",
            sign(&pkcs8, "k1", &claims("facility", &[], json!({}))),
        ),
        (
            "a recipient from the staff directory",
            sign(&pkcs8, "k1", &claims("recipient", &[], json!({}))),
        ),
        ("HS256 with a shared secret", hs256),
    ];
    for (why, token) in refused {
        let (s, body) =
            support::send_json("GET", &format!("{base}/v1/vaccines"), Some(&token), None);
        assert_eq!(s, 401, "{why}: {body}");
    }
    server.stop();
}
