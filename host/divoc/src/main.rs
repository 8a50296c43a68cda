//! `divoc`: the DIVOC-rs host binary.

mod bench_cmd;
mod config;
mod import_cmd;
mod offline;
mod plugin_cmd;
mod serve;
mod wiring;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat, Overrides};

/// mimalloc instead of the system allocator: glibc's malloc/free (with
/// its chunk consolidation) was 12–20 % of every server thread's CPU while
/// issuing and verifying certificates (docs/PERFORMANCE.md). The
/// `heap-profiling` feature keeps the system allocator, which heap
/// profilers (heaptrack) can see: docs/PERFORMANCE.md, § Memory.
#[cfg(not(feature = "heap-profiling"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "divoc",
    version,
    about = "Digital infrastructure for vaccination open credentialing"
)]
struct Cli {
    /// Configuration file (default: config/divoc.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Directory of plugins (one sub-directory each).
        #[arg(long)]
        plugins: Option<PathBuf>,
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Write, build, check and reload plugins.
    Plugin {
        #[command(subcommand)]
        command: plugin_cmd::PluginCommand,
    },
    /// Run the conformance suite against a plugin component.
    Conformance {
        /// The component (`plugin.toml` is read from beside it).
        plugin: PathBuf,
        /// Also write a JUnit XML report here.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// Verify a certificate offline: signature with a trust file, status
    /// from cached status lists when given. Exit code 0 valid, 1 not valid
    /// (bad signature, revoked, suspended, expired) or error, 3 signature
    /// valid but status unknown (no status lists for it).
    Verify {
        /// A file (credential JSON or QR text) or the QR text itself; an
        /// EU DCC (`HC1:`), SMART Health Card (`shc:/`) or other format's
        /// artifact goes to the certificate-format plugin declaring it.
        input: String,
        #[arg(long)]
        trust_file: PathBuf,
        /// A directory of downloaded status list credentials (`*.json`).
        #[arg(long)]
        status_cache: Option<PathBuf>,
        /// Where the certificate-format plugins are (default: `[plugins] dir`).
        #[arg(long)]
        plugins: Option<PathBuf>,
    },
    /// Check the hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Manage the issuer's signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Move a deployment: copy its SQLite database into PostgreSQL
    /// (resumable; verified by row counts and the audit chain). Stop the
    /// server first; then run it with `storage.backend = "postgres"`.
    Migrate {
        /// The backend to copy to.
        #[arg(long, value_enum)]
        to: MigrateTarget,
        /// The PostgreSQL database, `postgres://user@host:port/db` (or
        /// `DIVOC_STORAGE__URL`, to keep a password off the command line).
        url: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Bulk-load data into a running server.
    Import {
        #[command(subcommand)]
        command: import_cmd::ImportCommand,
    },
    /// Load a server over loopback HTTP: certificates/s beside raw Ed25519.
    Bench {
        #[command(subcommand)]
        command: bench_cmd::BenchCommand,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MigrateTarget {
    Postgres,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the chain; exit code 1 on a tampered, missing or truncated record.
    Verify,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List every key with its id, purpose and status.
    List,
    /// Make a new key sign for a purpose; the old one keeps verifying.
    Rotate {
        #[arg(long, default_value = "certificate")]
        purpose: String,
        /// `ed25519` (our credentials) or `es256` (EU DCC, SMART Health
        /// Cards, WHO DDCC: a new key and document-signer certificate).
        #[arg(long, default_value = "ed25519")]
        algorithm: String,
    },
    /// Export what verifiers need (public keys only).
    Export {
        /// Write the offline verifier's trust file here (Ed25519 keys and
        /// the ES256 keys as JWKs with their certificates).
        #[arg(long)]
        trust_file: Option<PathBuf>,
        /// Write each ES256 key's document-signer certificate here as
        /// `<EU DCC kid, hex>.pem`, with `dsc.json` listing kid (base64),
        /// file, purpose and status: what an EU DCC national backend takes.
        #[arg(long)]
        dsc_dir: Option<PathBuf>,
        /// Write the ES256 keys' JWKS here (kid = RFC 7638 thumbprint), as
        /// SMART Health Card verifiers import it.
        #[arg(long)]
        jwks: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DIVOC_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours for a terminal only: a log redirected to a file stays
    // greppable text.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            plugins,
            log_format,
        } => {
            let overrides = Overrides {
                data_dir,
                listen,
                plugins,
                log_format,
            };
            let config = Config::load(cli.config.as_deref(), &overrides)?;
            init_logging(config.log.format, &config.log.level);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .max_blocking_threads(config.server.blocking_threads.max(1))
                .enable_all()
                .build()?;
            rt.block_on(serve::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin { command } => {
            init_logging(LogFormat::Human, "warn");
            plugin_cmd::run(command, cli.config.as_deref())
        }
        Command::Conformance { plugin, junit } => {
            init_logging(LogFormat::Human, "warn");
            plugin_cmd::conformance(&plugin, junit.as_deref())
        }
        Command::Verify {
            input,
            trust_file,
            status_cache,
            plugins,
        } => {
            init_logging(LogFormat::Human, "warn");
            let overrides = Overrides {
                plugins,
                ..Overrides::default()
            };
            let config = Config::load(cli.config.as_deref(), &overrides)?;
            offline::verify_offline(&input, &trust_file, status_cache.as_deref(), &config)
        }
        Command::Audit { command, data_dir } => {
            let overrides = Overrides {
                data_dir,
                ..Overrides::default()
            };
            let config = Config::load(cli.config.as_deref(), &overrides)?;
            // Only the database: opening the keyring could import keys
            // under a running server.
            let db = serve::open_database(&config)?;
            match command {
                AuditCommand::Verify => offline::audit_verify(&db),
            }
        }
        Command::Migrate {
            to: MigrateTarget::Postgres,
            url,
            data_dir,
        } => {
            init_logging(LogFormat::Human, "warn");
            let overrides = Overrides {
                data_dir,
                ..Overrides::default()
            };
            let config = Config::load(cli.config.as_deref(), &overrides)?;
            let url = url
                .or_else(|| config.storage.url.clone())
                .context("name the PostgreSQL database: divoc migrate --to postgres URL")?;
            let sqlite = config.storage.data_dir.join("divoc.sqlite");
            anyhow::ensure!(sqlite.is_file(), "no database at {}", sqlite.display());
            let mut shown = String::new();
            let report = divoc_storage::copy::sqlite_to_postgres(
                &sqlite,
                &url,
                divoc_storage::copy::CHUNK_ROWS,
                |table, n| {
                    if shown != table {
                        eprintln!("copying {table}");
                        shown = table.to_owned();
                    }
                    if n % 100_000 == 0 {
                        eprintln!("  {n} rows");
                    }
                },
            )
            .with_context(|| format!("copy to {}", divoc_storage::pg::redact(&url)))?;
            for (table, rows, _) in &report.tables {
                println!("{table:<24} {rows:>12} rows");
            }
            println!(
                "copied {} rows; every table's count matches; audit chain intact ({} records)",
                report.copied, report.audit_records
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { command } => import_cmd::run(command, cli.config.as_deref()),
        Command::Bench { command } => bench_cmd::run(command, cli.config.as_deref()),
        Command::Keys { command, data_dir } => {
            init_logging(LogFormat::Human, "warn");
            let overrides = Overrides {
                data_dir,
                ..Overrides::default()
            };
            let mut config = Config::load(cli.config.as_deref(), &overrides)?;
            // A running server keeps its keys in memory: rotating under it
            // would leave it signing with the retired key. Listing and
            // exporting show the keyring as it is, without importing
            // configured key files (that is for `serve` and `rotate`).
            let _lock = match &command {
                KeysCommand::Rotate { .. } => {
                    match serve::lock_data_dir(&config.storage.data_dir) {
                        Err(serve::DataDirLockError::Busy(dir)) => anyhow::bail!(
                            "a divoc server is running on {}: rotate through it \
                             (POST /v1/keys/rotate with an admin token) or stop it first",
                            dir.display()
                        ),
                        other => Some(other?),
                    }
                }
                KeysCommand::List | KeysCommand::Export { .. } => {
                    config.issuer.key_files.clear();
                    None
                }
            };
            let host = serve::open_host(&config)?;
            match command {
                KeysCommand::List => {
                    for k in host.keyring.public_keys() {
                        println!(
                            "{}\t{}\t{}\ted25519",
                            k.key_id,
                            k.purpose,
                            if k.active { "active" } else { "retired" }
                        );
                    }
                    for k in host.es256.keys() {
                        println!(
                            "{}\t{}\t{}\tes256\tdcc-kid={}",
                            k.kid,
                            k.purpose,
                            if k.active { "active" } else { "retired" },
                            base64_std(&k.dcc_kid()),
                        );
                    }
                }
                KeysCommand::Rotate { purpose, algorithm } if algorithm == "es256" => {
                    let rotation = divoc_certificates::shared_keys::rotate_es256(
                        host.shared_keys.as_ref(),
                        &host.es256,
                        &purpose,
                    )?;
                    let (k, old) = (rotation.new, rotation.retired.kid);
                    let detail = serde_json::json!({
                        "purpose": purpose,
                        "algorithm": "es256",
                        "key_id": k.kid,
                        "retired_key_id": old,
                    });
                    let subject = k.kid.clone();
                    host.db
                        .write(move |tx| {
                            divoc_storage::audit::append_audit(
                                tx,
                                "cli",
                                "keys.rotated",
                                &subject,
                                &detail,
                            )
                        })
                        .wait()
                        .context("the key was rotated; recording it in the audit log failed")?;
                    println!(
                        "{} (EU DCC kid {}) now signs for `{purpose}`",
                        k.kid,
                        base64_std(&k.dcc_kid())
                    );
                }
                KeysCommand::Rotate { algorithm, .. } if algorithm != "ed25519" => {
                    anyhow::bail!("--algorithm is `ed25519` or `es256`, not {algorithm:?}")
                }
                KeysCommand::Rotate { purpose, .. } => {
                    let rotation = divoc_certificates::shared_keys::rotate_ed25519(
                        host.shared_keys.as_ref(),
                        &host.keyring,
                        &purpose,
                    )?;
                    let (k, retired) = (rotation.new, rotation.retired);
                    let detail = serde_json::json!({
                        "purpose": purpose,
                        "key_id": k.key_id,
                        "retired_key_id": retired.key_id,
                    });
                    let subject = k.key_id.clone();
                    host.db
                        .write(move |tx| {
                            divoc_storage::audit::append_audit(
                                tx,
                                "cli",
                                "keys.rotated",
                                &subject,
                                &detail,
                            )
                        })
                        .wait()
                        .context("the key was rotated; recording it in the audit log failed")?;
                    println!("{} now signs for `{purpose}`", k.key_id);
                }
                KeysCommand::Export {
                    trust_file,
                    dsc_dir,
                    jwks,
                } => {
                    let es256 = host.es256.keys();
                    let mut trust = divoc_crypto::keys::trust_file(&host.keyring);
                    trust["es256Keys"] = es256
                        .iter()
                        .map(|k| {
                            let mut jwk = k.jwk();
                            jwk["purpose"] = k.purpose.clone().into();
                            jwk["status"] = if k.active { "active" } else { "retired" }.into();
                            jwk
                        })
                        .collect();
                    let text = serde_json::to_string_pretty(&trust)?;
                    if let Some(dir) = &dsc_dir {
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("cannot create {}", dir.display()))?;
                        let mut index = Vec::new();
                        for k in &es256 {
                            let file = format!("{}.pem", hex::encode(k.dcc_kid()));
                            std::fs::write(dir.join(&file), k.certificate_pem())?;
                            index.push(serde_json::json!({
                                "kid": base64_std(&k.dcc_kid()),
                                "file": file,
                                "purpose": k.purpose,
                                "status": if k.active { "active" } else { "retired" },
                            }));
                        }
                        std::fs::write(
                            dir.join("dsc.json"),
                            serde_json::to_string_pretty(&index)?,
                        )?;
                        println!(
                            "wrote {} document-signer certificates to {}",
                            es256.len(),
                            dir.display()
                        );
                    }
                    if let Some(path) = &jwks {
                        let doc = serde_json::json!({
                            "keys": es256.iter().map(|k| k.jwk()).collect::<Vec<_>>()
                        });
                        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
                        println!("wrote {}", path.display());
                    }
                    match trust_file {
                        Some(path) => {
                            std::fs::write(&path, text)?;
                            println!("wrote {}", path.display());
                        }
                        None if dsc_dir.is_none() && jwks.is_none() => println!("{text}"),
                        None => {}
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Standard base64 (the EU DCC `kid` is written this way).
fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
