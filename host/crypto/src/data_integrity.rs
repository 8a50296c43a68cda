//! Data Integrity proofs with the `eddsa-jcs-2022` cryptosuite.
//!
//! Implements W3C *Data Integrity EdDSA Cryptosuites v1.0*, §3.3
//! (<https://www.w3.org/TR/vc-di-eddsa/#eddsa-jcs-2022>), as three separately
//! testable steps followed by signing:
//!
//! 1. [`transform`] — §3.3.3 Transformation: JCS ([RFC 8785]) of the document
//!    without its `proof`.
//! 2. [`proof_configuration`] — §3.3.5 Proof Configuration: JCS of the proof
//!    options, which carry the document's `@context`.
//! 3. [`hash_data`] — §3.3.4 Hashing: `SHA-256(proofConfig) ‖ SHA-256(transformedDocument)`
//!    (proof configuration first, 64 bytes in total).
//! 4. §3.3.6 Proof Serialization: Ed25519 (RFC 8032, pure, not pre-hashed) over the
//!    64 bytes; `proofValue` is the signature as multibase base58btc (`z…`).
//!
//! [`create_proof`] follows §3.3.1 and [`verify_proof`] follows §3.3.2 and
//! §3.3.7, including the `@context` rule: when the proof carries `@context`, the
//! document's `@context` must start with the same entries in the same order,
//! and the proof's `@context` is what gets hashed.
//!
//! Only a single embedded proof is handled; proof sets and chains
//! (Data Integrity §2.1.2) are rejected as malformed.
//!
//! `eddsa-rdfc-2022` (§3.2) is deliberately absent: it needs JSON-LD expansion
//! and RDF Dataset Canonicalization, and DIVOC signs with the JCS suite only.
//!
//! [RFC 8785]: https://www.rfc-editor.org/rfc/rfc8785

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::jcs::{self, JcsError};
use crate::multibase;

/// The proof `type` every Data Integrity proof uses.
pub const PROOF_TYPE: &str = "DataIntegrityProof";
/// The cryptosuite identifier implemented here.
pub const CRYPTOSUITE: &str = "eddsa-jcs-2022";
/// The proof purpose for issuing credentials.
pub const ASSERTION_METHOD: &str = "assertionMethod";

/// Produces Ed25519 signatures for a verification method.
///
/// Implemented by [`crate::keys::Keyring`] and by any
/// `Fn(&str, &[u8]) -> Result<[u8; 64], E>` closure.
pub trait Signer {
    /// The signer's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Sign `data` with the private key behind `verification_method`.
    fn sign(&self, verification_method: &str, data: &[u8]) -> Result<[u8; 64], Self::Error>;
}

impl<F, E> Signer for F
where
    F: Fn(&str, &[u8]) -> Result<[u8; 64], E>,
    E: std::error::Error + Send + Sync + 'static,
{
    type Error = E;

    fn sign(&self, verification_method: &str, data: &[u8]) -> Result<[u8; 64], E> {
        self(verification_method, data)
    }
}

/// Options for a new proof (Data Integrity v1.0 §2.1 "Proofs").
///
/// `type` and `cryptosuite` are fixed to [`PROOF_TYPE`] / [`CRYPTOSUITE`];
/// `@context` is copied from the document being signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofOptions {
    /// URL of the verification method (a key id such as `did:web:…#z6Mk…`).
    pub verification_method: String,
    /// Why the proof was made; `assertionMethod` for certificates.
    pub proof_purpose: String,
    /// `created`, an XML Schema `dateTimeStamp`; omitted when `None`.
    pub created: Option<String>,
    /// `expires`, an XML Schema `dateTimeStamp`; omitted when `None`.
    pub expires: Option<String>,
    /// Optional proof `id`.
    pub id: Option<String>,
    /// Optional `domain` the proof is bound to.
    pub domain: Option<String>,
    /// Optional `challenge` (used with `domain` for authentication proofs).
    pub challenge: Option<String>,
    /// Optional `nonce`.
    pub nonce: Option<String>,
}

impl ProofOptions {
    /// Options for an `assertionMethod` proof by `verification_method`, stamped with the current time.
    pub fn assertion(verification_method: impl Into<String>) -> Self {
        Self {
            verification_method: verification_method.into(),
            proof_purpose: ASSERTION_METHOD.to_owned(),
            created: Some(now_date_time_stamp()),
            expires: None,
            id: None,
            domain: None,
            challenge: None,
            nonce: None,
        }
    }

    /// The options as the proof object they start (Data Integrity §2.1), without `@context`.
    fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        if let Some(id) = &self.id {
            map.insert("id".into(), id.clone().into());
        }
        map.insert("type".into(), PROOF_TYPE.into());
        map.insert("cryptosuite".into(), CRYPTOSUITE.into());
        if let Some(created) = &self.created {
            map.insert("created".into(), created.clone().into());
        }
        if let Some(expires) = &self.expires {
            map.insert("expires".into(), expires.clone().into());
        }
        map.insert(
            "verificationMethod".into(),
            self.verification_method.clone().into(),
        );
        map.insert("proofPurpose".into(), self.proof_purpose.clone().into());
        for (key, value) in [
            ("domain", &self.domain),
            ("challenge", &self.challenge),
            ("nonce", &self.nonce),
        ] {
            if let Some(v) = value {
                map.insert(key.into(), v.clone().into());
            }
        }
        map
    }
}

/// What a successful [`verify_proof`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The verification method (key id) whose key verified the signature.
    pub verification_method: String,
    /// The proof purpose the signer declared; callers check it matches their expectation.
    pub proof_purpose: String,
    /// The proof's `created` timestamp, if any.
    pub created: Option<String>,
    /// The proof's `expires` timestamp, if any.
    pub expires: Option<String>,
}

/// Why a proof could not be created or verified.
#[derive(Debug, Error)]
pub enum ProofError {
    /// The input document is not a JSON object.
    #[error("document must be a JSON object")]
    NotAnObject,
    /// The document to sign already carries a proof.
    #[error("document already has a proof; proof sets are not supported")]
    AlreadySigned,
    /// The secured document has no `proof`.
    #[error("document has no proof")]
    MissingProof,
    /// The proof `type` is not `DataIntegrityProof`.
    #[error("proof type {0:?} is not DataIntegrityProof")]
    WrongProofType(String),
    /// The proof uses a cryptosuite other than `eddsa-jcs-2022`.
    #[error("unsupported cryptosuite {0:?}; expected eddsa-jcs-2022")]
    WrongCryptosuite(String),
    /// The proof names a verification method the resolver does not know.
    #[error("unknown verification method {0:?}")]
    UnknownKey(String),
    /// The signature does not verify against the document and key.
    #[error("signature does not verify")]
    BadSignature,
    /// The proof's `@context` is not a prefix of the document's `@context`.
    #[error("proof @context is not a prefix of the document @context")]
    ContextMismatch,
    /// A required field is missing, of the wrong type, or badly encoded.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// `created` or `expires` is not an XML Schema dateTimeStamp.
    #[error("{field} {value:?} is not an XML Schema dateTimeStamp")]
    InvalidDateTime {
        /// Which field.
        field: &'static str,
        /// The offending value.
        value: String,
    },
    /// Canonicalization failed.
    #[error(transparent)]
    Canonicalization(#[from] JcsError),
    /// The signer refused or failed.
    #[error("signing failed: {0}")]
    Signer(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// §3.3.3 Transformation: the RFC 8785 canonical form of the unsecured document.
///
/// The caller removes `proof` first (as [`create_proof`] and [`verify_proof`] do).
pub fn transform(unsecured_document: &Value) -> Result<String, ProofError> {
    Ok(jcs::canonicalize(unsecured_document)?)
}

/// §3.3.5 Proof Configuration: the RFC 8785 canonical form of the proof options.
///
/// `proof_options` is the proof object without `proofValue`, already carrying
/// the document's `@context` when there is one. Its `type`, `cryptosuite` and
/// `created` are checked as the section requires.
pub fn proof_configuration(proof_options: &Map<String, Value>) -> Result<String, ProofError> {
    let mut out = Vec::with_capacity(512);
    proof_configuration_into(proof_options, &mut out)?;
    // Canonical JSON is UTF-8 by construction.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// [`proof_configuration`] into a buffer.
fn proof_configuration_into(
    proof_options: &Map<String, Value>,
    out: &mut Vec<u8>,
) -> Result<(), ProofError> {
    check_type_and_suite(proof_options)?;
    check_date_time(proof_options, "created")?;
    Ok(jcs::canonicalize_object_into(
        proof_options,
        None,
        None,
        out,
    )?)
}

/// §3.3.4 Hashing: `SHA-256(canonical proof config) ‖ SHA-256(transformed document)`.
pub fn hash_data(transformed_document: &str, canonical_proof_config: &str) -> [u8; 64] {
    hash_bytes(
        transformed_document.as_bytes(),
        canonical_proof_config.as_bytes(),
    )
}

fn hash_bytes(transformed_document: &[u8], canonical_proof_config: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&Sha256::digest(canonical_proof_config));
    out[32..].copy_from_slice(&Sha256::digest(transformed_document));
    out
}

/// §3.3.1 Create Proof: sign `document` and return it with an embedded `proof`.
///
/// The proof's `@context` is set to the document's `@context` (when present),
/// so that the proof configuration hash binds the vocabulary in use.
pub fn create_proof<S>(
    document: &Value,
    options: &ProofOptions,
    signer: &S,
) -> Result<Value, ProofError>
where
    S: Signer + ?Sized,
{
    let doc = document.as_object().ok_or(ProofError::NotAnObject)?;
    let proof = make_proof(doc, options, signer)?;
    let mut secured = doc.clone();
    secured.insert("proof".into(), Value::Object(proof));
    Ok(Value::Object(secured))
}

/// [`create_proof`] for a document the caller no longer needs: the proof
/// is added to it in place instead of to a copy (a copy of a certificate
/// costs about a tenth of its signing).
pub fn add_proof<S>(
    document: Value,
    options: &ProofOptions,
    signer: &S,
) -> Result<Value, ProofError>
where
    S: Signer + ?Sized,
{
    let Value::Object(mut doc) = document else {
        return Err(ProofError::NotAnObject);
    };
    let proof = make_proof(&doc, options, signer)?;
    doc.insert("proof".into(), Value::Object(proof));
    Ok(Value::Object(doc))
}

/// The proof object for `doc` (§3.3.1 steps 1-6).
fn make_proof<S>(
    doc: &Map<String, Value>,
    options: &ProofOptions,
    signer: &S,
) -> Result<Map<String, Value>, ProofError>
where
    S: Signer + ?Sized,
{
    if doc.contains_key("proof") {
        return Err(ProofError::AlreadySigned);
    }
    // Both canonical forms are written into buffers and hashed in place:
    // this runs once per certificate issued.
    let mut transformed = Vec::with_capacity(4096);
    jcs::canonicalize_object_into(doc, None, None, &mut transformed)?;
    proof_for_canonical(&transformed, doc.get("@context"), options, signer)
}

/// The proof object (§3.3.1 steps 2-6) for a document the caller has
/// already transformed: `transformed` must be the RFC 8785 form of the
/// unsecured document, without `proof`, and `context` its `@context`. For
/// documents written as canonical JSON from a template (the certificate
/// module's vaccination credential, tested byte for byte against
/// [`transform`]), which skips building and canonicalizing a `Value`.
pub fn proof_for_canonical<S>(
    transformed: &[u8],
    context: Option<&Value>,
    options: &ProofOptions,
    signer: &S,
) -> Result<Map<String, Value>, ProofError>
where
    S: Signer + ?Sized,
{
    check_date_time_opt("expires", options.expires.as_deref())?;
    let mut proof = options.to_map();
    if let Some(context) = context {
        proof.insert("@context".into(), context.clone());
    }
    let mut canonical_proof_config = Vec::with_capacity(512);
    proof_configuration_into(&proof, &mut canonical_proof_config)?;
    let data = hash_bytes(transformed, &canonical_proof_config);
    let signature = signer
        .sign(&options.verification_method, &data)
        .map_err(|e| ProofError::Signer(Box::new(e)))?;
    proof.insert(
        "proofValue".into(),
        multibase::encode_base58btc(&signature).into(),
    );
    Ok(proof)
}

/// The decompressed key for `bytes`, remembering the last one per thread:
/// decompressing a point is a square root in the field (~7 % of a
/// verification), and a verifier sees the same few issuer keys over and
/// over.
fn verifying_key(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    thread_local! {
        static LAST: std::cell::Cell<Option<VerifyingKey>> = const { std::cell::Cell::new(None) };
    }
    LAST.with(|last| match last.get() {
        Some(key) if key.as_bytes() == bytes => Some(key),
        _ => {
            let key = VerifyingKey::from_bytes(bytes).ok()?;
            last.set(Some(key));
            Some(key)
        }
    })
}

/// §3.3.2 Verify Proof: check the embedded `eddsa-jcs-2022` proof of `secured_document`.
///
/// `resolve_key` maps a verification method id to its raw Ed25519 public key.
/// It must only return keys the verifier trusts for the issuer in question
/// (for DIVOC: keys from the issuer's DID document or trust file, active or
/// retired). The caller still checks `proof_purpose` and any time window.
pub fn verify_proof<R>(
    secured_document: &Value,
    resolve_key: R,
) -> Result<VerifiedProof, ProofError>
where
    R: Fn(&str) -> Option<[u8; 32]>,
{
    let doc = secured_document
        .as_object()
        .ok_or(ProofError::NotAnObject)?;
    let mut proof_options = match doc.get("proof") {
        None => return Err(ProofError::MissingProof),
        Some(Value::Object(p)) => p.clone(),
        Some(Value::Array(_)) => {
            return Err(ProofError::Malformed(
                "proof sets (arrays of proofs) are not supported".into(),
            ))
        }
        Some(_) => return Err(ProofError::Malformed("proof must be an object".into())),
    };
    check_type_and_suite(&proof_options)?;

    let proof_value = match proof_options.remove("proofValue") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(ProofError::Malformed("proofValue must be a string".into())),
        None => return Err(ProofError::Malformed("proofValue is missing".into())),
    };
    let proof_bytes = multibase::decode_base58btc(&proof_value)
        .map_err(|e| ProofError::Malformed(format!("proofValue: {e}")))?;
    let signature = Signature::from_slice(&proof_bytes)
        .map_err(|_| ProofError::Malformed("proofValue is not a 64-byte signature".into()))?;

    let verification_method = required_string(&proof_options, "verificationMethod")?;
    let proof_purpose = required_string(&proof_options, "proofPurpose")?;
    check_date_time(&proof_options, "created")?;
    check_date_time(&proof_options, "expires")?;

    // The unsecured document is the secured one without `proof`, with the
    // proof's `@context` in place of its own; it is canonicalized as such
    // rather than copied.
    let proof_context = proof_options.get("@context");
    if let Some(proof_context) = proof_context {
        let doc_context = doc.get("@context").ok_or(ProofError::ContextMismatch)?;
        if !is_context_prefix(proof_context, doc_context) {
            return Err(ProofError::ContextMismatch);
        }
    }
    let mut transformed = Vec::with_capacity(4096);
    jcs::canonicalize_object_into(
        doc,
        Some("proof"),
        proof_context.map(|c| ("@context", c)),
        &mut transformed,
    )?;
    let mut canonical_proof_config = Vec::with_capacity(512);
    proof_configuration_into(&proof_options, &mut canonical_proof_config)?;
    let data = hash_bytes(&transformed, &canonical_proof_config);

    let public_key = resolve_key(&verification_method)
        .ok_or_else(|| ProofError::UnknownKey(verification_method.clone()))?;
    let key = verifying_key(&public_key).ok_or_else(|| {
        ProofError::Malformed(format!(
            "key for {verification_method} is not a valid Ed25519 point"
        ))
    })?;
    // verify_strict rejects small-order keys and non-canonical signatures, so one
    // document cannot carry two distinct valid proofValues for the same key.
    key.verify_strict(&data, &signature)
        .map_err(|_| ProofError::BadSignature)?;

    Ok(VerifiedProof {
        verification_method,
        proof_purpose,
        created: optional_string(&proof_options, "created"),
        expires: optional_string(&proof_options, "expires"),
    })
}

/// The current time as an XML Schema `dateTimeStamp` in UTC, to the second.
pub fn now_date_time_stamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn check_type_and_suite(proof: &Map<String, Value>) -> Result<(), ProofError> {
    match proof.get("type") {
        Some(Value::String(t)) if t == PROOF_TYPE => {}
        Some(Value::String(t)) => return Err(ProofError::WrongProofType(t.clone())),
        Some(_) => return Err(ProofError::Malformed("proof type must be a string".into())),
        None => return Err(ProofError::Malformed("proof type is missing".into())),
    }
    match proof.get("cryptosuite") {
        Some(Value::String(s)) if s == CRYPTOSUITE => Ok(()),
        Some(Value::String(s)) => Err(ProofError::WrongCryptosuite(s.clone())),
        Some(_) => Err(ProofError::Malformed("cryptosuite must be a string".into())),
        None => Err(ProofError::Malformed("cryptosuite is missing".into())),
    }
}

fn required_string(map: &Map<String, Value>, field: &str) -> Result<String, ProofError> {
    match map.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(ProofError::Malformed(format!(
            "{field} is missing or not a non-empty string"
        ))),
    }
}

fn optional_string(map: &Map<String, Value>, field: &str) -> Option<String> {
    map.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn check_date_time(map: &Map<String, Value>, field: &'static str) -> Result<(), ProofError> {
    match map.get(field) {
        None => Ok(()),
        Some(Value::String(s)) => check_date_time_opt(field, Some(s)),
        Some(other) => Err(ProofError::InvalidDateTime {
            field,
            value: other.to_string(),
        }),
    }
}

fn check_date_time_opt(field: &'static str, value: Option<&str>) -> Result<(), ProofError> {
    match value {
        Some(v) if !is_date_time_stamp(v) => Err(ProofError::InvalidDateTime {
            field,
            value: v.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// XML Schema 1.1 Part 2 §3.4.28 `dateTimeStamp`: `YYYY-MM-DDThh:mm:ss(.s+)?` plus a
/// mandatory time zone (`Z` or `±hh:mm`). Field ranges are checked; leap-day and
/// `24:00:00` subtleties are not, as they cannot make a proof ambiguous.
fn is_date_time_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter()
            .try_fold(0u32, |acc, d| Some(acc * 10 + u32::from(d - b'0')))
    };
    let fixed = (|| {
        let (month, day) = (digits(5..7)?, digits(8..10)?);
        let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        digits(0..4)?;
        let seps = b.get(4) == Some(&b'-')
            && b.get(7) == Some(&b'-')
            && b.get(10) == Some(&b'T')
            && b.get(13) == Some(&b':')
            && b.get(16) == Some(&b':');
        Some(
            seps && (1..=12).contains(&month)
                && (1..=31).contains(&day)
                && hour < 24
                && minute < 60
                && second < 60,
        )
    })();
    if fixed != Some(true) {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z'] => true,
        [sign, h1, h2, b':', m1, m2] if (*sign == b'+' || *sign == b'-') => {
            let ok = [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit());
            ok && (h1 - b'0') * 10 + (h2 - b'0') <= 14 && (m1 - b'0') * 10 + (m2 - b'0') < 60
        }
        _ => false,
    }
}

/// True when `document_context` starts with every entry of `proof_context`, in order.
/// A single (non-array) `@context` value counts as a one-entry list.
fn is_context_prefix(proof_context: &Value, document_context: &Value) -> bool {
    fn as_list(v: &Value) -> &[Value] {
        match v {
            Value::Array(items) => items,
            single => std::slice::from_ref(single),
        }
    }
    let (proof, doc) = (as_list(proof_context), as_list(document_context));
    proof.len() <= doc.len() && proof.iter().zip(doc).all(|(p, d)| p == d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests panic on failure by design.
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};
    use serde_json::json;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/eddsa-jcs-2022");

    fn read(name: &str) -> String {
        std::fs::read_to_string(format!("{VECTORS}/{name}")).unwrap()
    }

    fn read_json(name: &str) -> Value {
        serde_json::from_str(&read(name)).unwrap()
    }

    fn spec_keys() -> (SigningKey, [u8; 32]) {
        let pair = read_json("key-pair.json");
        let secret = multibase::ed25519_secret_key_from_multikey(
            pair["secretKeyMultibase"].as_str().unwrap(),
        )
        .unwrap();
        let public = multibase::ed25519_public_key_from_multikey(
            pair["publicKeyMultibase"].as_str().unwrap(),
        )
        .unwrap();
        let signing = SigningKey::from_bytes(&secret);
        assert_eq!(
            signing.verifying_key().to_bytes(),
            public,
            "spec key pair is consistent"
        );
        (signing, public)
    }

    fn spec_options() -> ProofOptions {
        let o = read_json("proof-options.json");
        ProofOptions {
            verification_method: o["verificationMethod"].as_str().unwrap().into(),
            proof_purpose: o["proofPurpose"].as_str().unwrap().into(),
            created: Some(o["created"].as_str().unwrap().into()),
            expires: None,
            id: None,
            domain: None,
            challenge: None,
            nonce: None,
        }
    }

    fn spec_signer(key: SigningKey) -> impl Fn(&str, &[u8]) -> Result<[u8; 64], std::io::Error> {
        move |_vm: &str, data: &[u8]| Ok(key.sign(data).to_bytes())
    }

    #[test]
    fn spec_vector_transformation() {
        let unsigned = read_json("unsigned-credential.json");
        assert_eq!(
            transform(&unsigned).unwrap(),
            read("canonical-document.txt")
        );
        assert_eq!(
            hex::encode(Sha256::digest(read("canonical-document.txt"))),
            read("document-hash.hex")
        );
    }

    #[test]
    fn spec_vector_proof_configuration() {
        let options = read_json("proof-options.json");
        let canonical = proof_configuration(options.as_object().unwrap()).unwrap();
        assert_eq!(canonical, read("canonical-proof-config.txt"));
        assert_eq!(
            hex::encode(Sha256::digest(&canonical)),
            read("proof-config-hash.hex")
        );
        // The options the API builds (plus the document @context) give the same config.
        let mut built = spec_options().to_map();
        built.insert(
            "@context".into(),
            read_json("unsigned-credential.json")["@context"].clone(),
        );
        assert_eq!(proof_configuration(&built).unwrap(), canonical);
    }

    #[test]
    fn spec_vector_hash_signature_and_proof_value() {
        let data = hash_data(
            &read("canonical-document.txt"),
            &read("canonical-proof-config.txt"),
        );
        assert_eq!(hex::encode(data), read("combined-hash.hex"));
        let (key, _) = spec_keys();
        let signature = key.sign(&data).to_bytes();
        assert_eq!(hex::encode(signature), read("signature.hex"));
        assert_eq!(
            multibase::encode_base58btc(&signature),
            read("proof-value.txt")
        );
    }

    #[test]
    fn spec_vector_create_proof_matches_signed_credential() {
        let (key, _) = spec_keys();
        let unsigned = read_json("unsigned-credential.json");
        let secured = create_proof(&unsigned, &spec_options(), &spec_signer(key)).unwrap();
        assert_eq!(secured, read_json("signed-credential.json"));
    }

    #[test]
    fn add_proof_equals_create_proof() {
        let (key, _) = spec_keys();
        let unsigned = read_json("unsigned-credential.json");
        let signer = spec_signer(key);
        let copied = create_proof(&unsigned, &spec_options(), &signer).unwrap();
        let in_place = add_proof(unsigned, &spec_options(), &signer).unwrap();
        assert_eq!(in_place, copied);
        assert_eq!(in_place, read_json("signed-credential.json"));
        assert!(matches!(
            add_proof(json!(1), &spec_options(), &signer),
            Err(ProofError::NotAnObject)
        ));
    }

    #[test]
    fn spec_vector_verifies() {
        let (_, public) = spec_keys();
        let signed = read_json("signed-credential.json");
        let vm = spec_options().verification_method;
        let verified = verify_proof(&signed, |id| (id == vm).then_some(public)).unwrap();
        assert_eq!(verified.verification_method, vm);
        assert_eq!(verified.proof_purpose, "assertionMethod");
        assert_eq!(verified.created.as_deref(), Some("2023-02-24T23:36:38Z"));
    }

    fn signed_and_key() -> (Value, [u8; 32]) {
        let (_, public) = spec_keys();
        (read_json("signed-credential.json"), public)
    }

    #[test]
    fn tampered_document_fails() {
        let (mut signed, public) = signed_and_key();
        signed["credentialSubject"]["alumniOf"] = json!("Another School");
        assert!(matches!(
            verify_proof(&signed, |_| Some(public)),
            Err(ProofError::BadSignature)
        ));
    }

    #[test]
    fn tampered_proof_options_fail() {
        let (mut signed, public) = signed_and_key();
        signed["proof"]["created"] = json!("2023-02-24T23:36:39Z");
        assert!(matches!(
            verify_proof(&signed, |_| Some(public)),
            Err(ProofError::BadSignature)
        ));
    }

    #[test]
    fn distinct_errors() {
        let (signed, public) = signed_and_key();
        let resolve = |_: &str| Some(public);

        let mut no_proof = signed.clone();
        no_proof.as_object_mut().unwrap().remove("proof");
        assert!(matches!(
            verify_proof(&no_proof, resolve),
            Err(ProofError::MissingProof)
        ));

        let mut suite = signed.clone();
        suite["proof"]["cryptosuite"] = json!("eddsa-rdfc-2022");
        assert!(matches!(
            verify_proof(&suite, resolve),
            Err(ProofError::WrongCryptosuite(s)) if s == "eddsa-rdfc-2022"
        ));

        let mut ty = signed.clone();
        ty["proof"]["type"] = json!("Ed25519Signature2020");
        assert!(matches!(
            verify_proof(&ty, resolve),
            Err(ProofError::WrongProofType(_))
        ));

        assert!(matches!(
            verify_proof(&signed, |_| None),
            Err(ProofError::UnknownKey(_))
        ));

        let mut bad_value = signed.clone();
        bad_value["proof"]["proofValue"] = json!("uAAAA");
        assert!(matches!(
            verify_proof(&bad_value, resolve),
            Err(ProofError::Malformed(_))
        ));

        let mut short = signed.clone();
        short["proof"]["proofValue"] = json!(multibase::encode_base58btc(&[1, 2, 3]));
        assert!(matches!(
            verify_proof(&short, resolve),
            Err(ProofError::Malformed(_))
        ));

        let mut no_vm = signed.clone();
        no_vm["proof"]
            .as_object_mut()
            .unwrap()
            .remove("verificationMethod");
        assert!(matches!(
            verify_proof(&no_vm, resolve),
            Err(ProofError::Malformed(_))
        ));

        let mut bad_created = signed.clone();
        bad_created["proof"]["created"] = json!("yesterday");
        assert!(matches!(
            verify_proof(&bad_created, resolve),
            Err(ProofError::InvalidDateTime {
                field: "created",
                ..
            })
        ));

        let mut set = signed.clone();
        set["proof"] = json!([signed["proof"].clone()]);
        assert!(matches!(
            verify_proof(&set, resolve),
            Err(ProofError::Malformed(_))
        ));

        assert!(matches!(
            verify_proof(&json!([1]), resolve),
            Err(ProofError::NotAnObject)
        ));
    }

    #[test]
    fn context_rule() {
        let (signed, public) = signed_and_key();
        let resolve = |_: &str| Some(public);

        // Appending a context after signing is allowed: the proof's @context is hashed.
        let mut extended = signed.clone();
        extended["@context"]
            .as_array_mut()
            .unwrap()
            .push(json!("https://w3id.org/security/data-integrity/v2"));
        assert!(verify_proof(&extended, resolve).is_ok());

        // Reordering or replacing entries breaks the prefix rule.
        let mut reordered = signed.clone();
        reordered["@context"].as_array_mut().unwrap().reverse();
        assert!(matches!(
            verify_proof(&reordered, resolve),
            Err(ProofError::ContextMismatch)
        ));

        let mut missing = signed.clone();
        missing.as_object_mut().unwrap().remove("@context");
        assert!(matches!(
            verify_proof(&missing, resolve),
            Err(ProofError::ContextMismatch)
        ));

        // A proof without @context hashes the document as it stands.
        let mut no_proof_context = signed.clone();
        no_proof_context["proof"]
            .as_object_mut()
            .unwrap()
            .remove("@context");
        assert!(matches!(
            verify_proof(&no_proof_context, resolve),
            Err(ProofError::BadSignature)
        ));
    }

    #[test]
    fn context_prefix_semantics() {
        let a = json!("https://a");
        let ab = json!(["https://a", "https://b"]);
        assert!(is_context_prefix(&a, &ab));
        assert!(is_context_prefix(&ab, &ab));
        assert!(!is_context_prefix(&ab, &a));
        assert!(!is_context_prefix(&json!(["https://b"]), &ab));
    }

    #[test]
    fn round_trip_without_context() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = key.verifying_key().to_bytes();
        let doc = json!({"id": "urn:example:1", "n": 1.5, "s": "é"});
        let options = ProofOptions::assertion("did:example:issuer#key-1");
        let secured = create_proof(&doc, &options, &spec_signer(key)).unwrap();
        assert!(secured["proof"].get("@context").is_none());
        let verified = verify_proof(&secured, |_| Some(public)).unwrap();
        assert_eq!(verified.created, options.created);
    }

    #[test]
    fn create_rejects_bad_input() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let signer = spec_signer(key);
        let options = ProofOptions::assertion("did:example:issuer#key-1");
        assert!(matches!(
            create_proof(&json!("x"), &options, &signer),
            Err(ProofError::NotAnObject)
        ));
        assert!(matches!(
            create_proof(&json!({"proof": {}}), &options, &signer),
            Err(ProofError::AlreadySigned)
        ));
        let mut bad = options.clone();
        bad.created = Some("2023-02-30".into());
        assert!(matches!(
            create_proof(&json!({}), &bad, &signer),
            Err(ProofError::InvalidDateTime { .. })
        ));
        let failing = |_: &str, _: &[u8]| -> Result<[u8; 64], std::io::Error> {
            Err(std::io::Error::other("hsm offline"))
        };
        assert!(matches!(
            create_proof(&json!({}), &options, &failing),
            Err(ProofError::Signer(_))
        ));
    }

    #[test]
    fn date_time_stamps() {
        for ok in [
            "2023-02-24T23:36:38Z",
            "2023-02-24T23:36:38.123Z",
            "2023-02-24T23:36:38+05:30",
            "2023-02-24T23:36:38-00:00",
        ] {
            assert!(is_date_time_stamp(ok), "{ok}");
        }
        for bad in [
            "2023-02-24T23:36:38",
            "2023-02-24 23:36:38Z",
            "2023-13-24T23:36:38Z",
            "2023-02-24T24:36:38Z",
            "2023-02-24T23:36:38.Z",
            "2023-02-24T23:36:38+5:30",
            "",
            "2023-02-24T23:36:38Zjunk",
        ] {
            assert!(!is_date_time_stamp(bad), "{bad}");
        }
        assert!(is_date_time_stamp(&now_date_time_stamp()));
    }
}
