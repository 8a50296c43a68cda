//! Public documents derived from the keyring: DID document, JWK Set, trust file.
//!
//! All three list *every* key, active and retired: certificates signed before a
//! rotation must keep verifying. Retired keys are marked as such, but are not
//! given the Controlled Identifiers `revoked` property: CID v1.0 §2.2
//! ("Verification Methods", <https://www.w3.org/TR/cid-1.0/#verification-methods>)
//! says verifiers are "expected to not verify any proofs associated with the
//! verification method at or after the time of revocation", which is right for
//! a compromised key and wrong for an orderly rotation. For the same reason
//! retired keys stay in `assertionMethod`: a Data Integrity verifier checks that
//! the proof's verification method is listed under the proof purpose
//! (CID v1.0 §3.3, "Retrieve Verification Method").

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::{Keyring, PublicKeyInfo};
use crate::data_integrity;

/// JSON-LD term definitions for the two DIVOC-specific verification-method
/// properties.
fn divoc_context() -> Value {
    json!({
        "divocKeyStatus": "urn:divoc:keyStatus",
        "divocRetiredAt": {
            "@id": "urn:divoc:retiredAt",
            "@type": "http://www.w3.org/2001/XMLSchema#dateTime"
        }
    })
}

/// The issuer's `did:web` DID document ([DID v1.0 §5], [CID v1.0 §2.2.2 Multikey]).
///
/// Every key is a `Multikey` verification method with `publicKeyMultibase`,
/// listed in `assertionMethod`, with its status: `"divocKeyStatus": "active"`
/// (signs now) or `"retired"` (verifies only, with `divocRetiredAt`), terms
/// defined in an inline `@context` entry.
///
/// [DID v1.0 §5]: https://www.w3.org/TR/did-core/#core-properties
/// [CID v1.0 §2.2.2 Multikey]: https://www.w3.org/TR/cid-1.0/#Multikey
pub fn did_document(keyring: &Keyring) -> Value {
    let did = keyring.did();
    let keys = keyring.public_keys();
    let context = vec![
        json!("https://www.w3.org/ns/did/v1"),
        json!("https://w3id.org/security/multikey/v1"),
        divoc_context(),
    ];
    let methods: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut vm = Map::new();
            vm.insert("id".into(), k.key_id.clone().into());
            vm.insert("type".into(), "Multikey".into());
            vm.insert("controller".into(), did.into());
            vm.insert("publicKeyMultibase".into(), k.multibase.clone().into());
            if k.active {
                vm.insert("divocKeyStatus".into(), "active".into());
            } else {
                vm.insert("divocKeyStatus".into(), "retired".into());
                if let Some(at) = &k.retired_at {
                    vm.insert("divocRetiredAt".into(), at.clone().into());
                }
            }
            Value::Object(vm)
        })
        .collect();
    let assertion: Vec<Value> = keys.iter().map(|k| k.key_id.clone().into()).collect();
    json!({
        "@context": context,
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": assertion,
    })
}

/// The keys as a JWK Set ([RFC 7517 §5]) of `OKP`/`Ed25519` keys ([RFC 8037 §2]),
/// each with `kid` (the key id), `use: "sig"` and `alg: "EdDSA"` (RFC 8037 §3.1).
///
/// [RFC 7517 §5]: https://www.rfc-editor.org/rfc/rfc7517#section-5
/// [RFC 8037 §2]: https://www.rfc-editor.org/rfc/rfc8037#section-2
pub fn jwks(keyring: &Keyring) -> Value {
    let keys: Vec<Value> = keyring.public_keys().iter().map(jwk).collect();
    json!({ "keys": keys })
}

fn jwk(k: &PublicKeyInfo) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(k.public_key),
        "kid": k.key_id,
        "use": "sig",
        "alg": "EdDSA",
    })
}

/// Everything an offline verifier needs to check DIVOC certificates.
///
/// Format (`"type": "DivocTrustFile"`, `"version": 1`):
///
/// ```json
/// {
///   "type": "DivocTrustFile",
///   "version": 1,
///   "issuer": "did:web:…",
///   "generatedAt": "2024-05-01T10:00:00Z",
///   "cryptosuites": ["eddsa-jcs-2022"],
///   "keys": [{
///     "id": "did:web:…#z6Mk…",
///     "type": "Multikey",
///     "controller": "did:web:…",
///     "purpose": "certificate",
///     "publicKeyMultibase": "z6Mk…",
///     "status": "active",
///     "createdAt": "…",
///     "retiredAt": "…"
///   }]
/// }
/// ```
///
/// A verifier accepts a proof whose `verificationMethod` equals some `keys[].id`,
/// with that key, in one of `cryptosuites`. `status: "retired"` means the issuer
/// no longer signs with the key; certificates it signed before `retiredAt` stay
/// valid, and a verifier may reject a proof by a retired key whose `created`
/// is later than `retiredAt`. `retiredAt` is absent for active keys.
pub fn trust_file(keyring: &Keyring) -> Value {
    let did = keyring.did();
    let keys: Vec<Value> = keyring
        .public_keys()
        .iter()
        .map(|k| {
            let mut entry = Map::new();
            entry.insert("id".into(), k.key_id.clone().into());
            entry.insert("type".into(), "Multikey".into());
            entry.insert("controller".into(), did.into());
            entry.insert("purpose".into(), k.purpose.clone().into());
            entry.insert("publicKeyMultibase".into(), k.multibase.clone().into());
            entry.insert(
                "status".into(),
                if k.active { "active" } else { "retired" }.into(),
            );
            entry.insert("createdAt".into(), k.created_at.clone().into());
            if let Some(at) = &k.retired_at {
                entry.insert("retiredAt".into(), at.clone().into());
            }
            Value::Object(entry)
        })
        .collect();
    json!({
        "type": "DivocTrustFile",
        "version": 1,
        "issuer": did,
        "generatedAt": data_integrity::now_date_time_stamp(),
        "cryptosuites": [data_integrity::CRYPTOSUITE],
        "keys": keys,
    })
}
