//! `divoc verify` (offline, with a trust file) and `divoc audit verify`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use divoc_certificates::verify::{self, NoStatus, StatusLists, StatusSource, TrustStore};
use serde_json::Value;

/// Verifies a credential given as a file (JSON or QR text) or as QR text,
/// using only a trust file and, optionally, cached status lists.
pub fn verify_offline(
    input: &str,
    trust_file: &Path,
    status_cache: Option<&Path>,
    config: &crate::config::Config,
) -> anyhow::Result<ExitCode> {
    let trust: Value = serde_json::from_str(
        &std::fs::read_to_string(trust_file)
            .with_context(|| format!("cannot read {}", trust_file.display()))?,
    )
    .context("the trust file is not JSON")?;
    let text = if Path::new(input).is_file() {
        std::fs::read_to_string(input).with_context(|| format!("cannot read {input}"))?
    } else {
        input.to_string()
    };
    if let Some(verdict) = verify_foreign(text.trim(), &trust, config)? {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
        return Ok(ExitCode::from(verdict_exit_code(&verdict)));
    }
    let trust = TrustStore::from_trust_file(&trust)
        .context("the trust file has no usable keys (see `divoc keys export --trust-file`)")?;
    let resolve = |k: &str| trust.resolve(k);
    let text = text.trim();
    let credential: Value = if text.starts_with('{') {
        serde_json::from_str(text).context("the credential is not valid JSON")?
    } else {
        divoc_certificates::qr::decode(text).map_err(|e| anyhow::anyhow!("{e}"))?
    };

    let mut lists = StatusLists::default();
    let mut loaded = 0usize;
    if let Some(dir) = status_cache {
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let list: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
                    .with_context(|| format!("{} is not JSON", path.display()))?;
                if lists.add(&list, &resolve) {
                    loaded += 1;
                } else {
                    eprintln!(
                        "ignored {}: not a status list signed by a trusted key",
                        path.display()
                    );
                }
            }
        }
    }
    // Without status lists the answer is "signature valid, status unknown":
    // not valid (revocation cannot be excluded), and not "forged" either.
    let status: &dyn StatusSource = if loaded > 0 { &lists } else { &NoStatus };
    let verdict = verify::verify_credential(&credential, &resolve, status, now_ms())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::to_string_pretty(&verdict)?);
    Ok(ExitCode::from(verdict_exit_code(&verdict)))
}

/// `divoc verify`'s exit code: 0 valid; 1 not valid (bad signature,
/// revoked, suspended, expired, not yet valid) or an error; 3 signature
/// valid but status unknown (offline without status lists). Clap's usage
/// errors are 2.
pub fn verdict_exit_code(verdict: &verify::Verdict) -> u8 {
    match (
        verdict.valid,
        verdict.checks.signature.ok,
        verdict.checks.status,
    ) {
        (true, _, _) => 0,
        (false, true, verify::StatusVerdict::Unknown) => 3,
        _ => 1,
    }
}

fn now_ms() -> i64 {
    use divoc_time::Clock;
    divoc_time::SystemClock.now_ms()
}

/// Walks the hash-chained audit log; exit code 1 on a tampered or missing record.
pub fn audit_verify(db: &divoc_storage::Database) -> anyhow::Result<ExitCode> {
    let report = db.read(divoc_storage::audit::verify_audit_chain)?;
    match &report.first_bad {
        None => {
            println!("audit log intact: {} records", report.records);
            Ok(ExitCode::SUCCESS)
        }
        Some((seq, fault)) => {
            println!(
                "audit log BROKEN at record {seq}: {fault} ({} records)",
                report.records
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Verifies another format's artifact offline: the certificate-format
/// plugin that declares its prefix reads it, checking the signature with
/// the trust file's ES256 keys only. Offline there is no status for it, so
/// a good signature is "status unknown" (exit 3), never valid: the formats'
/// own revocation lists are for their own verifiers. `None` when no
/// plugin claims the text.
fn verify_foreign(
    text: &str,
    trust: &Value,
    config: &crate::config::Config,
) -> anyhow::Result<Option<verify::Verdict>> {
    use divoc_runtime::{HostKey, HostServices, KeyAlgorithm, Runtime, World};
    let plugins_dir = &config.plugins.dir;
    if !plugins_dir.is_dir() {
        return Ok(None);
    }
    let keys: Vec<HostKey> = trust["es256Keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|jwk| {
            let b64 = |v: &Value| {
                use base64::Engine as _;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(v.as_str()?)
                    .ok()
            };
            let (x, y) = (b64(&jwk["x"])?, b64(&jwk["y"])?);
            let mut point = vec![4u8];
            point.extend(x);
            point.extend(y);
            let certificate = jwk["x5c"][0].as_str().and_then(|c| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(c).ok()
            });
            Some(HostKey {
                key_id: jwk["kid"].as_str()?.to_owned(),
                purpose: jwk["purpose"].as_str().unwrap_or("certificate").to_owned(),
                algorithm: KeyAlgorithm::Es256,
                public_key: point,
                active: false,
                certificate,
            })
        })
        .collect();
    // The plugins see the trust file's keys under every purpose they were
    // granted, and can verify with them; nothing can sign.
    let cache = tempfile::tempdir()?;
    let mut settings = config.plugins.runtime_settings(cache.path());
    for grant in settings.grants.values_mut() {
        for key in &keys {
            if !grant.signer_purposes.contains(&key.purpose) && !grant.signer_purposes.is_empty() {
                grant.signer_purposes.push(key.purpose.clone());
            }
        }
    }
    let services = HostServices {
        signer: std::sync::Arc::new(TrustedKeys(keys)),
        ..HostServices::isolated()
    };
    let runtime = Runtime::new(settings, services)?;
    runtime.reload_dir(plugins_dir);
    let formats = crate::wiring::RuntimeFormats::new(runtime.clone());
    let claimants: Vec<_> = divoc_certificates::formats::FormatPlugins::formats(&formats)
        .into_iter()
        .filter(|f| {
            f.prefixes
                .iter()
                .any(|p| !p.is_empty() && text.starts_with(p.as_str()))
        })
        .filter(|f| {
            runtime
                .plugins_of(World::CertificateFormat)
                .contains(&f.plugin)
        })
        .collect();
    if claimants.is_empty() {
        return Ok(None);
    }
    let artifact = divoc_certificates::formats::Artifact::Text(text.to_owned());
    let mut refusals = Vec::new();
    for format in &claimants {
        match divoc_certificates::formats::FormatPlugins::decode(&formats, format, &artifact) {
            Ok(decoded) => {
                let signature = verify::SignatureCheck {
                    ok: decoded.signature_valid,
                    key_id: Some(decoded.key_id),
                    issuer: trust["issuer"]
                        .as_str()
                        .map(|i| format!("{i} ({})", format.id)),
                    error: (!decoded.signature_valid)
                        .then(|| "the signature does not verify with the trust file's keys".into()),
                };
                let certificate_id = decoded
                    .claims
                    .get("certificateId")
                    .and_then(Value::as_str)
                    .and_then(divoc_certificates::formats::host_certificate_id);
                let ok = signature.ok;
                return Ok(Some(verify::Verdict {
                    valid: false,
                    message: if ok {
                        format!(
                            "{}: signature valid, but the certificate's status is unknown \
                             offline (verify online, or check the format's revocation list)",
                            format.id
                        )
                    } else {
                        format!("{}: signature invalid", format.id)
                    },
                    checks: verify::Checks {
                        signature,
                        status: verify::StatusVerdict::Unknown,
                    },
                    claims: ok.then(|| verify::ClaimsSummary {
                        certificate_id,
                        ..Default::default()
                    }),
                    format: Some(format.id.clone()),
                }));
            }
            Err(e) => refusals.push(format!("{}: {e}", format.id)),
        }
    }
    anyhow::bail!("not a readable certificate ({})", refusals.join("; "))
}

/// The trust file's ES256 keys, for verification only.
struct TrustedKeys(Vec<divoc_runtime::HostKey>);

impl divoc_runtime::SignerBackend for TrustedKeys {
    fn keys(&self) -> Vec<divoc_runtime::HostKey> {
        self.0.clone()
    }
    fn sign(&self, key_id: &str, _data: &[u8]) -> Result<Vec<u8>, String> {
        Err(format!("offline verification cannot sign (key `{key_id}`)"))
    }
    fn verify(&self, key_id: &str, data: &[u8], signature: &[u8]) -> Result<bool, String> {
        let key = self
            .0
            .iter()
            .find(|k| k.key_id == key_id)
            .ok_or_else(|| format!("no key `{key_id}` in the trust file"))?;
        Ok(divoc_crypto::keys::es256::verify_es256(
            &key.public_key,
            data,
            signature,
        ))
    }
}
