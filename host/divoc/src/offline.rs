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
) -> anyhow::Result<ExitCode> {
    let trust: Value = serde_json::from_str(
        &std::fs::read_to_string(trust_file)
            .with_context(|| format!("cannot read {}", trust_file.display()))?,
    )
    .context("the trust file is not JSON")?;
    let trust = TrustStore::from_trust_file(&trust)
        .context("the trust file has no usable keys (see `divoc keys export --trust-file`)")?;
    let resolve = |k: &str| trust.resolve(k);

    let text = if Path::new(input).is_file() {
        std::fs::read_to_string(input).with_context(|| format!("cannot read {input}"))?
    } else {
        input.to_string()
    };
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
