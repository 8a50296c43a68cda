//! # divoc-crypto
//!
//! The signer of DIVOC-rs: canonical JSON and Data Integrity proofs.
//!
//! | module | what | specification |
//! | --- | --- | --- |
//! | [`jcs`] | JSON canonicalization | RFC 8785 |
//! | [`data_integrity`] | `eddsa-jcs-2022` proofs: create and verify | W3C Data Integrity EdDSA Cryptosuites v1.0 §3.3 |
//! | [`multibase`] | base58btc multibase and Ed25519 Multikey encoding | Multibase; CID v1.0 §2.2.2 |

#![deny(missing_docs)]

pub mod data_integrity;
pub mod jcs;
pub mod multibase;
