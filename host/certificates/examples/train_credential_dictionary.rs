//! Trains the zstd dictionary that stored credentials are compressed with
//! (`host/storage/src/credential_codec.rs`) and writes it to
//! `host/storage/dictionaries/credential-<version>.zdict`.
//!
//! ```text
//! cargo run --release -p divoc-certificates --example train_credential_dictionary -- v1
//! ```
//!
//! The samples are real signed credentials, issued through the certificate
//! service on a throw-away database from [`divoc_certificates::synthetic`]
//! requests, under several hosts' base URLs and DIDs (so that the
//! dictionary learns the shape, not one deployment's address), with and
//! without evidence links. A released dictionary is never retrained in
//! place: a new one is a new version (and codec number) beside it.

use std::path::Path;

use anyhow::Context;
use divoc_certificates::{synthetic, CertificateService, IssueRequest, ServiceConfig};
use divoc_crypto::keys::{IssuerConfig, Keyring};
use divoc_storage::{Database, DbOptions};

/// Samples per deployment, and deployments.
const PER_HOST: u64 = 4_000;
const HOSTS: &[(&str, &str)] = &[
    ("https://divoc.example.org", "did:web:divoc.example.org"),
    (
        "https://certificates.health.gov.example",
        "did:web:certificates.health.gov.example",
    ),
    ("http://localhost:8080", "did:web:localhost%3A8080"),
];
/// Dictionary size: measured in docs/PERFORMANCE.md (§ Storage footprint).
const DICTIONARY_BYTES: usize = 16 * 1024;

fn main() -> anyhow::Result<()> {
    let version = std::env::args().nth(1).unwrap_or_else(|| "v1".into());
    let mut samples = Vec::new();
    for (n, (base, did)) in HOSTS.iter().enumerate() {
        let tmp = tempfile::tempdir()?;
        let db = Database::open(&tmp.path().join("divoc.db"), DbOptions::default())?;
        let keyring = Keyring::open_or_create(&tmp.path().join("keys"), &IssuerConfig::new(*did))?;
        let mut cfg = ServiceConfig::new(base);
        if n % 2 == 0 {
            cfg.credential.feedback_url = Some(format!("{base}/feedback/{{id}}"));
            cfg.credential.info_url = Some(format!("{base}/about"));
        }
        let svc = CertificateService::open(db, keyring, cfg)?;
        for i in 0..PER_HOST {
            let req = IssueRequest::from_json(synthetic::issue_request(n as u64, i, "TRAIN-"))?;
            let issued = svc
                .issue(&req, "trainer")
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let cert = svc.get(&issued.id).map_err(|e| anyhow::anyhow!("{e}"))?;
            samples.push(serde_json::to_vec(&cert.credential)?);
        }
    }
    let dict = zstd::dict::from_samples(&samples, DICTIONARY_BYTES).context("training")?;
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../storage/dictionaries")
        .join(format!("credential-{version}.zdict"));
    std::fs::create_dir_all(out.parent().context("no parent")?)?;
    std::fs::write(&out, &dict)?;
    // A held-out credential (a seed no sample came from) for the codec's
    // tests, so they measure what the dictionary does on unseen data.
    let held_out = {
        let tmp = tempfile::tempdir()?;
        let db = Database::open(&tmp.path().join("divoc.db"), DbOptions::default())?;
        let keyring = Keyring::open_or_create(
            &tmp.path().join("keys"),
            &IssuerConfig::new("did:web:vax.example.net"),
        )?;
        let svc =
            CertificateService::open(db, keyring, ServiceConfig::new("https://vax.example.net"))?;
        let req = IssueRequest::from_json(synthetic::issue_request(99, 1, "HELD-OUT-"))?;
        let issued = svc
            .issue(&req, "trainer")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        svc.get(&issued.id)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .credential
    };
    let sample =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../storage/tests/cases/credential-sample.json");
    std::fs::write(&sample, serde_json::to_string(&held_out)? + "\n")?;
    let total: usize = samples.iter().map(Vec::len).sum();
    println!(
        "{} samples, {} bytes on average; dictionary of {} bytes written to {}",
        samples.len(),
        total / samples.len(),
        dict.len(),
        out.display()
    );
    Ok(())
}
