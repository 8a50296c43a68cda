//! `divoc bench formats`: every loaded certificate-format plugin, in
//! process (no HTTP), encoding a real signed vaccination credential and
//! decoding (verifying) the artifact, on `--threads` threads; beside it the
//! raw ES256 (P-256) and Ed25519 rates of the same run.
//!
//! The set-up is a server's, on a temporary data dir: its Ed25519 and
//! ES256 keyrings, a credential issued by the certificate module and
//! signed with the Ed25519 key, and the plugin runtime built from the
//! configuration's `[plugins]` settings (limits, warm instances, grants,
//! plugin configs) with the keyrings behind the `signer` capability. Calls
//! go through [`RuntimeFormats`], the adapter `divoc serve` hands the API,
//! so each one costs what a `GET /v1/certificates/{id}/formats/{format}`
//! or a `/v1/verify` of that format's artifact costs the server apart from
//! HTTP and the database read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;
use divoc_certificates::formats::{Artifact, FormatDescriptor, FormatPlugins};
use divoc_runtime::{HostServices, MemoryKv, NoMail, Runtime, World};
use serde_json::{json, Value};

use super::{thousands, TEMPLATE};
use crate::config::{Config, Overrides};
use crate::wiring::{KeyringSigner, RuntimeFormats};

/// Issue "certificate formats" targets, per format, on the 2-core
/// reference machine.
const TARGET_ENCODE: f64 = 5_000.0;
const TARGET_VERIFY: f64 = 5_000.0;

#[derive(Args)]
pub struct FormatsArgs {
    /// The plugins directory (default: `[plugins] dir`).
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Threads calling at once (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds each measurement (a format's encode, its verify) runs.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of warm-up before each measurement.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Only these formats (format id or plugin name; repeatable).
    #[arg(long = "format")]
    only: Vec<String>,
    /// Measure only encoding or only verifying (to profile one of them).
    #[arg(long, value_enum, default_value_t = Op::Both)]
    op: Op,
    /// Print the figures as one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    Encode,
    Verify,
    Both,
}

/// One measured operation: calls that succeeded, over how long, and the
/// sorted per-call latencies.
struct Measured {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
    /// This process's CPU time over the measurement (all threads), when
    /// /proc says.
    cpu: Option<Duration>,
}

impl Measured {
    fn skipped() -> Measured {
        Measured {
            ok: 0,
            failed: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latencies_ns: Vec::new(),
            cpu: None,
        }
    }

    fn ran(&self) -> bool {
        !self.elapsed.is_zero()
    }

    fn rate(&self) -> f64 {
        if !self.ran() {
            return 0.0;
        }
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU time per successful call, in µs: what bounds the rate on a
    /// machine shared with other work (at most cores / this).
    fn cpu_us(&self) -> Option<f64> {
        let cpu = self.cpu?;
        (self.ok > 0).then(|| cpu.as_secs_f64() * 1e6 / self.ok as f64)
    }

    fn percentile_us(&self, p: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return 0.0;
        }
        let n = self.latencies_ns.len();
        let i = ((n as f64 * p).ceil() as usize).clamp(1, n);
        self.latencies_ns[i - 1] as f64 / 1e3
    }

    fn json(&self, target: Option<f64>) -> Value {
        if !self.ran() {
            return Value::Null;
        }
        json!({
            "cpu_us_per_call": self.cpu_us(),
            "per_s": self.rate().round(),
            "ok": self.ok,
            "failed": self.failed,
            "first_error": self.first_error,
            "seconds": self.elapsed.as_secs_f64(),
            "p50_us": self.percentile_us(0.50),
            "p99_us": self.percentile_us(0.99),
            "target_per_s": target,
            "met": target.map(|t| self.rate() >= t),
        })
    }
}

/// Runs `op` on `threads` threads, first for `warmup` (not counted), then
/// for `duration`; every call is timed. `op` answers whether the call did
/// what it should, or why not.
fn measure(
    threads: usize,
    warmup: Duration,
    duration: Duration,
    op: impl Fn() -> Result<(), String> + Sync,
) -> Measured {
    let warming = AtomicBool::new(true);
    let stop = AtomicBool::new(false);
    let started = parking_lot::Mutex::new(None::<(Instant, Option<Duration>)>);
    let per_thread: Vec<(u64, u64, Option<String>, Vec<u64>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    while warming.load(Ordering::Relaxed) {
                        let _ = op();
                    }
                    let (mut ok, mut failed, mut first_error) = (0u64, 0u64, None);
                    let mut latencies = Vec::with_capacity(64 * 1024);
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let r = op();
                        latencies.push(t.elapsed().as_nanos() as u64);
                        match r {
                            Ok(()) => ok += 1,
                            Err(e) => {
                                failed += 1;
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                    (ok, failed, first_error, latencies)
                })
            })
            .collect();
        std::thread::sleep(warmup);
        *started.lock() = Some((Instant::now(), process_cpu()));
        warming.store(false, Ordering::Relaxed);
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| (0, 1, Some("a bench thread panicked".into()), vec![]))
            })
            .collect()
    });
    // The calls in flight when `stop` was set finish after it: the clocks
    // run until the last thread is done.
    let (elapsed, cpu) = match *started.lock() {
        Some((t, cpu_before)) => (
            t.elapsed(),
            cpu_before
                .zip(process_cpu())
                .map(|(before, after)| after.saturating_sub(before)),
        ),
        None => (duration, None),
    };
    let mut m = Measured {
        ok: 0,
        failed: 0,
        first_error: None,
        elapsed,
        latencies_ns: Vec::new(),
        cpu,
    };
    for (ok, failed, first_error, latencies) in per_thread {
        m.ok += ok;
        m.failed += failed;
        if m.first_error.is_none() {
            m.first_error = first_error;
        }
        m.latencies_ns.extend(latencies);
    }
    m.latencies_ns.sort_unstable();
    m
}

/// CPU time this process has used (every thread), from /proc.
fn process_cpu() -> Option<Duration> {
    super::proc_ticks("/proc/self/stat")
}

/// One format's figures.
struct FormatRow {
    format: FormatDescriptor,
    algorithm: &'static str,
    artifact_len: usize,
    /// A no-op call (`info()`): the runtime's own cost per call.
    call: Measured,
    encode: Measured,
    verify: Measured,
}

/// A signed vaccination credential from the certificate module, issued on
/// the temporary data dir: its id and JSON.
fn issue_credential(
    config: &Config,
    host: &crate::serve::Host,
) -> anyhow::Result<(String, String)> {
    let certificates = divoc_certificates::CertificateService::open(
        host.db.clone(),
        host.keyring.clone(),
        divoc_certificates::ServiceConfig::new(&config.server.public_url),
    )
    .context("cannot open the certificate module")?;
    let mut request: Value = serde_json::from_str(TEMPLATE)?;
    request["pre_enrollment_code"] = Value::from(format!("BENCH-FORMATS-{}", super::run_id()));
    let request = divoc_certificates::IssueRequest::from_json(request)
        .context("the bench's issue request")?;
    let issued = certificates
        .issue(&request, "bench")
        .context("cannot issue the credential to encode")?;
    let certificate = certificates
        .get(&issued.id)
        .context("cannot read the issued credential")?;
    let json = serde_json::to_string(&certificate.credential)?;
    Ok((certificate.id, json))
}

pub fn run(args: FormatsArgs, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    ensure!(
        args.seconds > 0.0 && args.warmup >= 0.0,
        "--seconds must be positive and --warmup not negative"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or(cores);
    ensure!(threads > 0, "--threads must be at least 1");
    let duration = Duration::from_secs_f64(args.seconds);
    let warmup = Duration::from_secs_f64(args.warmup);

    let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let overrides = Overrides {
        data_dir: Some(temp.path().join("data")),
        plugins: args.plugins.clone(),
        ..Overrides::default()
    };
    let config = Config::load(config_file, &overrides)?;
    let plugins_dir = config.plugins.dir.clone();
    ensure!(
        plugins_dir.is_dir(),
        "no plugins directory {} (build the plugins with `divoc plugin build plugins --out {}`, \
         or give --plugins)",
        plugins_dir.display(),
        plugins_dir.display()
    );
    let host = crate::serve::open_host(&config)?;
    let (certificate_id, credential) = issue_credential(&config, &host)?;

    let services = HostServices {
        kv: Arc::new(MemoryKv::default()),
        signer: Arc::new(KeyringSigner {
            ed25519: host.keyring.clone(),
            es256: host.es256.clone(),
        }),
        mail: Arc::new(NoMail),
    };
    let settings = config.plugins.runtime_settings(temp.path());
    let warm_instances = settings.limits.warm_instances;
    let runtime = Runtime::new(settings, services).context("cannot start the plugin runtime")?;
    let loading = Instant::now();
    let report = runtime.reload_dir(&plugins_dir);
    let load_time = loading.elapsed();
    let formats_of_runtime = RuntimeFormats::new(runtime.clone());
    let mut formats = formats_of_runtime.formats();
    if !args.only.is_empty() {
        formats.retain(|f| args.only.iter().any(|o| *o == f.id || *o == f.plugin));
    }
    // Every refusal is shown: a format plugin refused (a missing grant, a
    // contract mismatch) is a format the figures would silently lack.
    let refused = &report.rejected;
    if formats.is_empty() {
        bail!(
            "no certificate-format plugin loaded from {}{}",
            plugins_dir.display(),
            refused
                .iter()
                .map(|(n, e)| format!("; {n}: {e}"))
                .collect::<String>()
        );
    }
    let human = !args.json;
    if human {
        println!(
            "plugins: {} ({} loaded in {:.1} s; {} certificate formats; pooling allocator {}, \
             {warm_instances} warm instances per plugin)",
            plugins_dir.display(),
            report.loaded.len(),
            load_time.as_secs_f64(),
            runtime.plugins_of(World::CertificateFormat).len(),
            if runtime.pooling() { "on" } else { "off" },
        );
        for (name, error) in refused {
            println!("  refused: {name}: {error}");
        }
        println!(
            "credential: {certificate_id}, {} bytes of signed JSON; {threads} threads, \
             {:.1} s warm-up + {:.1} s per measurement",
            credential.len(),
            warmup.as_secs_f64(),
            duration.as_secs_f64()
        );
    }

    let purpose = divoc_crypto::keys::DEFAULT_PURPOSE;
    let mut rows = Vec::new();
    for format in formats {
        let encode_once = || {
            formats_of_runtime
                .encode(&format, &certificate_id, &credential, purpose)
                .map_err(|e| e.to_string())
        };
        let artifact = encode_once()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{}: the first encode failed", format.plugin))?;
        let decoded = formats_of_runtime
            .decode(&format, &artifact)
            .with_context(|| format!("{}: the first decode failed", format.plugin))?;
        ensure!(
            decoded.signature_valid,
            "{}: its own artifact does not verify (key {})",
            format.plugin,
            decoded.key_id
        );
        // Which of the host's keys signed it says the algorithm.
        let algorithm = if host.es256.find(&decoded.key_id).is_some() {
            "ES256"
        } else if host.keyring.find(&decoded.key_id).is_some() {
            "Ed25519"
        } else {
            "?"
        };
        let artifact_len = match &artifact {
            Artifact::Text(t) => t.len(),
            Artifact::Bytes(b) => b.len(),
        };
        if human {
            println!("{}: measuring ({artifact_len}-byte artifact) …", format.id);
        }
        let handle = runtime
            .certificate_format(&format.plugin)
            .with_context(|| format!("{}: no handle", format.plugin))?;
        let call = measure(
            threads,
            warmup.min(Duration::from_millis(200)),
            duration / 5,
            || handle.format_info().map(|_| ()).map_err(|e| e.to_string()),
        );
        let encode = if args.op == Op::Verify {
            Measured::skipped()
        } else {
            measure(threads, warmup, duration, || encode_once().map(|_| ()))
        };
        let verify = if args.op == Op::Encode {
            Measured::skipped()
        } else {
            measure(threads, warmup, duration, || {
                match formats_of_runtime.decode(&format, &artifact) {
                    Ok(d) if d.signature_valid => Ok(()),
                    Ok(d) => Err(format!("signature not valid (key {})", d.key_id)),
                    Err(e) => Err(e.to_string()),
                }
            })
        };
        rows.push(FormatRow {
            algorithm,
            format,
            artifact_len,
            call,
            encode,
            verify,
        });
    }

    // The raw rates, right after, on the same threads.
    let raw_time = Duration::from_millis(1_000);
    let p256 = divoc_crypto::speed::p256_rates(threads, raw_time);
    let ed25519 = divoc_crypto::speed::ed25519_rates(threads, raw_time);

    let missed = rows.iter().any(|r| {
        (r.encode.ran() && r.encode.rate() < TARGET_ENCODE)
            || (r.verify.ran() && r.verify.rate() < TARGET_VERIFY)
    });
    if args.json {
        let doc = json!({
            "threads": threads,
            "cores": cores,
            "seconds": duration.as_secs_f64(),
            "warmup_seconds": warmup.as_secs_f64(),
            "warm_instances": warm_instances,
            "pooling": runtime.pooling(),
            "credential_bytes": credential.len(),
            "refused": refused,
            "formats": rows.iter().map(|r| json!({
                "format": r.format.id,
                "plugin": r.format.plugin,
                "algorithm": r.algorithm,
                "artifact_bytes": r.artifact_len,
                "noop_call": r.call.json(None),
                "encode": r.encode.json(Some(TARGET_ENCODE)),
                "verify": r.verify.json(Some(TARGET_VERIFY)),
            })).collect::<Vec<_>>(),
            "raw": {
                "p256_sign_per_s": p256.sign_per_s.round(),
                "p256_verify_per_s": p256.verify_per_s.round(),
                "host_es256_verify_per_s": p256.host_verify_per_s.round(),
                "ed25519_sign_per_s": ed25519.sign_per_s.round(),
                "ed25519_verify_per_s": ed25519.verify_per_s.round(),
            },
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_table(&rows, threads, cores);
        println!(
            "raw ES256 (256-byte message, same run, {} threads): p256 crate sign {} /s (the \
             keyring's signer), verify {} /s; the host's verify_es256 (ring) {} /s",
            p256.threads,
            thousands(p256.sign_per_s),
            thousands(p256.verify_per_s),
            thousands(p256.host_verify_per_s),
        );
        println!(
            "raw Ed25519 (ed25519-dalek, 64-byte message, same run, {} threads): sign {} /s, \
             verify_strict {} /s",
            ed25519.threads,
            thousands(ed25519.sign_per_s),
            thousands(ed25519.verify_per_s),
        );
        println!(
            "so the signature alone allows at most {} ES256 encodes/s and {} verifies/s \
             ({} and {} for Ed25519) on these threads",
            thousands(p256.sign_per_s),
            thousands(p256.host_verify_per_s),
            thousands(ed25519.sign_per_s),
            thousands(ed25519.verify_per_s),
        );
        for r in &rows {
            for (what, m) in [("encode", &r.encode), ("verify", &r.verify)] {
                if m.failed > 0 {
                    println!(
                        "  {} {what}: {} failed; first: {}",
                        r.format.id,
                        m.failed,
                        m.first_error.as_deref().unwrap_or("?")
                    );
                }
            }
        }
    }
    drop(runtime);
    drop(host);
    Ok(if missed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_table(rows: &[FormatRow], threads: usize, cores: usize) {
    let rate = |m: &Measured| {
        if m.ran() {
            thousands(m.rate())
        } else {
            "-".into()
        }
    };
    let us = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
    let pct = |m: &Measured, p: f64| us(m.ran().then(|| m.percentile_us(p)));
    let verdict = |m: &Measured, target: f64| {
        if !m.ran() {
            "-"
        } else if m.rate() >= target {
            "met"
        } else {
            "MISSED"
        }
    };
    println!();
    println!(
        "{:<14} {:<7} | {:>8} {:>6} {:>6} {:>6} | {:>8} {:>6} {:>6} {:>6} | {:>5} | target ≥ {}/s each",
        "format",
        "alg",
        "encode/s",
        "p50",
        "p99",
        "CPU",
        "verify/s",
        "p50",
        "p99",
        "CPU",
        "call",
        thousands(TARGET_ENCODE),
    );
    for r in rows {
        println!(
            "{:<14} {:<7} | {:>8} {:>6} {:>6} {:>6} | {:>8} {:>6} {:>6} {:>6} | {:>5.1} | encode {}, verify {}",
            r.format.id,
            r.algorithm,
            rate(&r.encode),
            pct(&r.encode, 0.50),
            pct(&r.encode, 0.99),
            us(r.encode.cpu_us()),
            rate(&r.verify),
            pct(&r.verify, 0.50),
            pct(&r.verify, 0.99),
            us(r.verify.cpu_us()),
            r.call.percentile_us(0.50),
            verdict(&r.encode, TARGET_ENCODE),
            verdict(&r.verify, TARGET_VERIFY),
        );
    }
    println!(
        "(per call on {threads} threads; p50/p99: wall-clock latency of one call, µs; CPU: this \
         process's CPU time per call, µs, so at most {cores} cores / CPU calls/s on an otherwise \
         idle machine; call: p50 of a no-op `info()` call, the runtime's own cost per call, µs)"
    );
}
