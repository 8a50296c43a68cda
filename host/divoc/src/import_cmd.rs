//! `divoc import certificates FILE.csv`: a DIVOC bulk-upload CSV through a
//! running server's `POST /v1/certificates/import`, in chunks, with a
//! progress bar. `divoc import facilities|vaccinators|enrolments FILE.csv`:
//! DIVOC's registry CSVs streamed to `POST /v1/uploads/{kind}`.
//!
//! It goes through the server rather than opening the database: the server
//! is the single writer (group commit, status-list allocation), and an
//! import then obeys the same roles, plugins and validation as any other
//! issuance. Re-running an import is safe: rows already issued answer
//! "existing".

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use serde_json::Value;

use crate::config::{Config, Overrides};

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Issue certificates from a DIVOC CSV (DIVOC's column names).
    Certificates {
        /// The CSV file (header line first).
        file: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An issuer or admin token (default: $DIVOC_TOKEN, then
        /// $DIVOC_ADMIN_TOKEN, then <data-dir>/admin-token).
        #[arg(long)]
        token: Option<String>,
        /// Rows per request.
        #[arg(long, default_value_t = 500)]
        chunk_rows: usize,
        /// Write the per-row results (line, status, certificate id, error
        /// field and message) to this CSV.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Upload facilities from a DIVOC facility CSV to the registry.
    Facilities {
        #[command(flatten)]
        upload: RegistryUpload,
        /// The facilities' country (ISO 3166-1 alpha-2), for a file without
        /// a `country` column.
        #[arg(long)]
        country: Option<String>,
    },
    /// Upload vaccinators from a DIVOC vaccinator CSV to the registry.
    Vaccinators {
        #[command(flatten)]
        upload: RegistryUpload,
    },
    /// Upload pre-enrolments from a DIVOC pre-enrolment CSV.
    Enrolments {
        #[command(flatten)]
        upload: RegistryUpload,
        /// The programme the file enrols for.
        #[arg(long)]
        programme: String,
    },
}

/// What every registry upload takes.
#[derive(clap::Args)]
pub struct RegistryUpload {
    /// The CSV file (DIVOC's header line first).
    file: PathBuf,
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A controller or admin token (default: $DIVOC_TOKEN, then
    /// $DIVOC_ADMIN_TOKEN, then <data-dir>/admin-token).
    #[arg(long)]
    token: Option<String>,
    /// Write the refused rows (with the bad column and why) to this CSV.
    #[arg(long)]
    errors: Option<PathBuf>,
}

/// One row's outcome, by its line in the input file.
struct Outcome {
    line: u64,
    status: String,
    certificate_id: String,
    field: String,
    message: String,
}

pub fn run(command: ImportCommand, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    match command {
        ImportCommand::Certificates {
            file,
            url,
            token,
            chunk_rows,
            report,
        } => {
            let token = resolve_token(token, config_file)?;
            certificates(
                &file,
                &url,
                &token,
                chunk_rows.clamp(1, 10_000),
                report.as_deref(),
            )
        }
        ImportCommand::Facilities { upload, country } => {
            let query = country.map(|c| format!("country={c}"));
            registry(upload, "facilities", query, config_file)
        }
        ImportCommand::Vaccinators { upload } => registry(upload, "vaccinators", None, config_file),
        ImportCommand::Enrolments { upload, programme } => registry(
            upload,
            "enrolments",
            Some(format!("programme={programme}")),
            config_file,
        ),
    }
}

/// Streams a CSV file to `POST /v1/uploads/{kind}` with a progress bar
/// over its bytes (the server reads it as it arrives; nothing is held
/// whole), prints the upload's counts and saves the refused rows.
fn registry(
    upload: RegistryUpload,
    kind: &str,
    query: Option<String>,
    config_file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let token = resolve_token(upload.token, config_file)?;
    let file = std::fs::File::open(&upload.file)
        .with_context(|| format!("cannot open {}", upload.file.display()))?;
    let size = file.metadata()?.len();
    let base = upload.url.trim_end_matches('/');
    let mut endpoint = format!("{base}/v1/uploads/{kind}");
    if let Some(q) = query {
        endpoint.push('?');
        endpoint.push_str(&form_encode(&q));
    }
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes}  {bytes_per_sec}  eta {eta}",
        )
        .context("progress bar template")?,
    );
    let answer = match ureq::post(&endpoint)
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "text/csv; charset=utf-8")
        .send(bar.wrap_read(file))
    {
        Ok(r) => serde_json::from_str::<Value>(&r.into_string()?)
            .context("the server did not answer JSON")?,
        Err(ureq::Error::Status(code, r)) => {
            bar.abandon();
            let text = r.into_string().unwrap_or_default();
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(text);
            bail!("the server refused the upload ({code}): {detail}");
        }
        Err(e) => bail!("cannot reach {endpoint}: {e}"),
    };
    bar.finish();
    let count = |k: &str| answer[k].as_i64().unwrap_or(0);
    let id = answer["id"].as_str().unwrap_or_default();
    println!(
        "upload {id}: {} rows: {} created, {} updated, {} unchanged, {} refused",
        count("rows"),
        count("created"),
        count("updated"),
        count("unchanged"),
        count("failed")
    );
    if count("failed") > 0 {
        let errors = ureq::get(&format!("{base}/v1/uploads/{id}/errors.csv"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .context("cannot fetch the refused rows")?
            .into_string()?;
        match &upload.errors {
            Some(path) => {
                std::fs::write(path, errors)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!(
                    "refused rows (with the bad column and why): {}",
                    path.display()
                );
            }
            None => println!("refused rows: {base}/v1/uploads/{id}/errors.csv (or --errors FILE)"),
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `key=value` with the value percent-encoded for a query string.
fn form_encode(pair: &str) -> String {
    match pair.split_once('=') {
        Some((k, v)) => format!(
            "{k}={}",
            url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
        ),
        None => pair.to_owned(),
    }
}

fn resolve_token(token: Option<String>, config_file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(t) = token
        .or_else(|| std::env::var("DIVOC_TOKEN").ok())
        .or_else(|| std::env::var("DIVOC_ADMIN_TOKEN").ok())
    {
        return Ok(t);
    }
    let config = Config::load(config_file, &Overrides::default())?;
    let path = crate::serve::admin_token_path(&config.storage.data_dir);
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("no --token given and cannot read {}", path.display()))?
        .trim()
        .to_string())
}

fn certificates(
    file: &Path,
    url: &str,
    token: &str,
    chunk_rows: usize,
    report: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut data = Vec::new();
    std::fs::File::open(file)
        .with_context(|| format!("cannot open {}", file.display()))?
        .read_to_end(&mut data)?;
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(data);
    let header = reader
        .byte_headers()
        .context("the first line is not a CSV header")?
        .clone();
    // Every non-empty record with its line in the file; the server numbers
    // lines within each chunk, so results are mapped back by position.
    let mut records = Vec::new();
    for r in reader.byte_records() {
        let r = r.context("malformed CSV")?;
        if r.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        let line = r.position().map_or(0, |p| p.line());
        records.push((line, r));
    }
    let endpoint = format!("{}/v1/certificates/import", url.trim_end_matches('/'));
    let bar = indicatif::ProgressBar::new(records.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}",
        )
        .context("progress bar template")?,
    );
    let mut outcomes = Vec::with_capacity(records.len());
    let (mut created, mut existing, mut failed) = (0u64, 0u64, 0u64);
    for chunk in records.chunks(chunk_rows) {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_byte_record(&header)?;
        for (_, r) in chunk {
            w.write_byte_record(r)?;
        }
        let body = w.into_inner().context("writing a chunk")?;
        let answer = match ureq::post(&endpoint)
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", "text/csv; charset=utf-8")
            .send_bytes(&body)
        {
            Ok(r) => serde_json::from_str::<Value>(&r.into_string()?)
                .context("the server did not answer JSON")?,
            Err(ureq::Error::Status(code, r)) => {
                bar.abandon();
                let text = r.into_string().unwrap_or_default();
                let detail = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or(text);
                bail!("the server refused the import ({code}): {detail}");
            }
            Err(e) => bail!("cannot reach {endpoint}: {e}"),
        };
        let results = answer["results"]
            .as_array()
            .context("the server's answer has no results")?;
        if results.len() != chunk.len() {
            bail!(
                "the server answered {} results for {} rows",
                results.len(),
                chunk.len()
            );
        }
        for ((line, _), r) in chunk.iter().zip(results) {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let outcome = match r.get("error") {
                Some(e) => {
                    failed += 1;
                    Outcome {
                        line: *line,
                        status: "failed".into(),
                        certificate_id: String::new(),
                        field: text(&e["field"]),
                        message: text(&e["message"]),
                    }
                }
                None => {
                    let status = text(&r["status"]);
                    if status == "created" {
                        created += 1;
                    } else {
                        existing += 1;
                    }
                    Outcome {
                        line: *line,
                        status,
                        certificate_id: text(&r["certificateId"]),
                        field: String::new(),
                        message: String::new(),
                    }
                }
            };
            outcomes.push(outcome);
        }
        bar.inc(chunk.len() as u64);
        bar.set_message(format!("{failed} failed"));
    }
    bar.finish();
    for o in outcomes.iter().filter(|o| o.status == "failed") {
        // Field names and messages only: never the row's values.
        eprintln!("line {}: {}", o.line, o.message);
    }
    if let Some(path) = report {
        let mut w = csv::Writer::from_path(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        w.write_record(["line", "status", "certificateId", "field", "message"])?;
        for o in &outcomes {
            w.write_record([
                o.line.to_string().as_str(),
                &o.status,
                &o.certificate_id,
                &o.field,
                &o.message,
            ])?;
        }
        w.flush()?;
    }
    println!(
        "{} rows: {created} created, {existing} already issued, {failed} failed",
        outcomes.len()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
