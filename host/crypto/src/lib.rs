//! # divoc-crypto
//!
//! The signer of DIVOC-rs: issuer keys, canonical JSON, Data Integrity proofs
//! and certificate identifiers. Everything a certificate needs cryptographically
//! lives here, behind a narrow API; nothing here does I/O beyond the keyring
//! directory.
//!
//! | module | what | specification |
//! | --- | --- | --- |
//! | [`keys`] | Ed25519 issuer keyring on disk, rotation, DID document, JWKS, offline trust file | CID v1.0 (Multikey), DID v1.0, RFC 8037 |
//! | [`jcs`] | JSON canonicalization | RFC 8785 |
//! | [`data_integrity`] | `eddsa-jcs-2022` proofs: create and verify | W3C Data Integrity EdDSA Cryptosuites v1.0 §3.3 |
//! | [`ids`] | certificate ids (Crockford base32 + mod-37 check) and EU UVCIs (Luhn mod N) | Crockford base32; eHealth Network Annex 2 |
//! | [`multibase`] | base58btc multibase and Ed25519 Multikey encoding | Multibase; CID v1.0 §2.2.2 |
//! | [`speed`] | the raw Ed25519 and ES256 (P-256) sign/verify rates of this machine, for benchmarks | — |
//!
//! ## Signing a certificate
//!
//! ```
//! use divoc_crypto::data_integrity::{create_proof, verify_proof, ProofOptions};
//! use divoc_crypto::keys::{IssuerConfig, Keyring};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("keys");
//! let keyring = Keyring::open_or_create(&dir, &IssuerConfig::new("did:web:localhost%3A8080"))?;
//! let key = keyring.active("certificate")?;
//!
//! let credential = serde_json::json!({
//!     "@context": ["https://www.w3.org/ns/credentials/v2"],
//!     "type": ["VerifiableCredential"],
//!     "issuer": keyring.did(),
//!     "credentialSubject": { "id": divoc_crypto::ids::generate_certificate_id().to_string() },
//! });
//! let signed = create_proof(&credential, &ProofOptions::assertion(&key.key_id), &keyring)?;
//!
//! // A verifier resolves the key from the DID document or trust file instead.
//! let verified = verify_proof(&signed, |id| keyring.resolve_public_key(id))?;
//! assert_eq!(verified.verification_method, key.key_id);
//! # Ok(()) }
//! ```
//!
//! ## Secrets
//!
//! Private keys live only inside [`keys::Keyring`]: PKCS#8 PEM files with mode
//! `0600` in a `0700` directory, in memory as zeroize-on-drop keys, never in
//! `Debug` output, errors or logs.
//!
//! ## Not implemented
//!
//! `eddsa-rdfc-2022` (RDF Dataset Canonicalization) is not offered: it needs
//! JSON-LD expansion with vendored contexts, and DIVOC signs with the JCS suite.
//! Proof sets and proof chains are rejected.

#![deny(missing_docs)]

pub mod data_integrity;
pub mod ids;
pub mod jcs;
pub mod keys;
pub mod multibase;
pub mod speed;
