//! `divoc bench issue|verify|qr`: load a running server over loopback HTTP and
//! print certificates per second next to the raw Ed25519 rate of the same
//! machine, measured in the same run. (`divoc bench formats`, in
//! [`formats`], calls the certificate-format plugins in process instead.)
//!
//! Without `--url` the bench starts its own `divoc serve` (this binary) on a
//! temporary data dir and stops it at the end, so `divoc bench issue` alone
//! is a complete run. The client is a minimal HTTP/1.1 keep-alive client on
//! one tokio thread: the server shares the machine with it, and a lean
//! client leaves it the most CPU. Request bodies are built before the clock
//! starts and responses are checked after it stops.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::{Args, Subcommand, ValueEnum};
use rand::RngCore;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Issue #3 targets on the reference machine (2 cores), printed beside the
/// figures.
const TARGET_BATCH: f64 = 20_000.0;
const TARGET_SINGLE: f64 = 5_000.0;
const TARGET_VERIFY: f64 = 15_000.0;
/// `GET /v1/certificates/{id}/qr.png`, 16 connections.
const TARGET_QR: f64 = 2_000.0;
/// The most items `POST /v1/certificates/batch` accepts.
const MAX_BATCH: usize = 1000;

/// A realistic issue request (the `valid-one-dose` test case); the bench
/// gives each copy its own pre-enrolment code.
const TEMPLATE: &str = r#"{
  "recipient": {
    "name": "Bhaya Mitra",
    "dob": "1994-11-30",
    "gender": "Male",
    "nationality": "IN",
    "identity": { "type": "in.gov.uidai.aadhaar", "value": "2342343334" },
    "contacts": ["tel:9880414888", "mailto:bhaya@example.org"],
    "address": {
      "line1": "no. 23, some lane, some road",
      "line2": "some nagar",
      "district": "Bengaluru South",
      "state": "Karnataka",
      "pincode": "560033"
    }
  },
  "vaccination": {
    "program": "covid-19",
    "vaccine": "CoVax",
    "manufacturer": "COVPharma",
    "batch": "MB3428BX",
    "date": "2021-03-02T09:21:18Z",
    "dose": 1,
    "total_doses": 2,
    "effective_start": "2021-03-02",
    "effective_until": "2030-03-02"
  },
  "facility": {
    "id": "FAC-0042",
    "name": "ABC Medical Center",
    "address": { "line1": "4th cross", "district": "Bengaluru South", "state": "Karnataka", "pincode": "560034" }
  },
  "vaccinator": { "name": "Sooraj Singh" },
  "pre_enrollment_code": ""
}"#;

mod abuse;
mod chains;
mod formats;
mod growth;
mod rollout;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Book appointments, one per request (`POST /v1/appointments`), for
    /// `--count` people over slots that seat 80 % of them: bookings/s,
    /// latency, and seats booked over any slot's capacity (must be 0).
    Book {
        #[command(flatten)]
        target: Target,
        /// People to book for.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Connections.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seats per slot.
        #[arg(long, default_value_t = 50)]
        seats: u32,
        /// Let the example `policy-age-interval` plugin decide eligibility
        /// (default: the built-in rule), to see what a plugin decision costs.
        #[arg(long)]
        policy_plugin: bool,
    },
    /// Record vaccinations, one per request (`POST /v1/vaccinations`: the
    /// checks, the certificate, the dose and the daily count).
    Vaccinate {
        #[command(flatten)]
        target: Target,
        /// Vaccinations to record (one per person).
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Connections.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Issue certificates in batches (`POST /v1/certificates/batch`) and
    /// one per request (`POST /v1/certificates`).
    Issue {
        #[command(flatten)]
        target: Target,
        /// Certificates to issue in each mode.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Requests in flight (default: 4 batches, 64 single requests).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Items per batch request (at most 1000).
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        #[arg(long, value_enum, default_value_t = IssueMode::Both)]
        mode: IssueMode,
        /// Clients reading `GET /v1/events/stream` (certificate events)
        /// while the load runs; reports whether they kept up.
        #[arg(long, default_value_t = 0)]
        stream_clients: usize,
        /// First fill the database up to this many certificates (batch
        /// path; what a `--data-dir` holds from earlier preloads counts).
        #[arg(long, default_value_t = 0)]
        preload: usize,
    },
    /// Verify certificates one per request (`POST /v1/verify`) and in
    /// batches (`POST /v1/verify/batch`), after issuing `--certs` of them
    /// to verify.
    Verify {
        #[command(flatten)]
        target: Target,
        /// Verifications in each mode.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Requests in flight (default: 32 single requests, 4 batches).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Credentials per batch request (at most 200).
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        #[arg(long, value_enum, default_value_t = IssueMode::Both)]
        mode: IssueMode,
        /// Distinct certificates to issue first and cycle through.
        #[arg(long, default_value_t = 1000)]
        certs: usize,
        /// What to send: the QR text (`{"qr": …}`) or the credential JSON.
        #[arg(long, value_enum, default_value_t = VerifyInput::Qr)]
        input: VerifyInput,
    },
    /// Fetch certificates' QR images (`GET /v1/certificates/{id}/qr.png`,
    /// or `.svg`), after issuing `--certs` of them to cycle through.
    Qr {
        #[command(flatten)]
        target: Target,
        /// Images to fetch.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Connections.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Distinct certificates to issue first and cycle through.
        #[arg(long, default_value_t = 1000)]
        certs: usize,
        /// The image format.
        #[arg(long, value_enum, default_value_t = QrFormat::Png)]
        format: QrFormat,
    },
    /// Certificate-format plugins in process (no HTTP): each loaded
    /// format's encode/s and decode-and-verify/s of a real signed
    /// credential on `--threads` threads, p50/p99 per call, beside the raw
    /// ES256 (P-256) and Ed25519 sign/verify rates of the same run.
    Formats(formats::FormatsArgs),
    /// Issuance, verification and reads by id at each of `--sizes` stored
    /// certificates (default 0, 1 M and 10 M), preloading in between, with
    /// the server's memory and the database's bytes per certificate: a
    /// markdown table.
    Growth(growth::GrowthArgs),
    /// One-per-request issuance at a steady load, alone and then while the
    /// public routes are flooded (hostile images and malformed bodies from
    /// many loopback addresses); issuance rate and p99 both ways, how the
    /// flood was answered, and the worst hostile image's search time.
    Abuse(abuse::AbuseArgs),
    /// Audited writes per second from `--hosts` hosts on one PostgreSQL
    /// database (`DIVOC_STORAGE__URL`): all appending to the one audit
    /// chain (as the hosts do), then each to a chain of its own.
    AuditChains(chains::ChainsArgs),
}

#[derive(Args)]
pub struct Target {
    /// Base URL of a running server (`http://host:port`). Without it the
    /// bench starts `divoc serve` on `--data-dir` (default: a temporary
    /// data dir, removed afterwards) and stops it at the end.
    #[arg(long)]
    url: Option<String>,
    /// Bearer token with the admin or issuer role (default:
    /// $DIVOC_ADMIN_TOKEN, then <data-dir>/admin-token).
    #[arg(long)]
    token: Option<String>,
    /// The server's data dir (to read its admin token, or to start a server on).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Plugins for the server the bench starts (default: none, so that
    /// only the host is measured).
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Hosts to start on one database, connections spread over them (the
    /// first host's `keys` copied to the others, as a deployment mounts
    /// them). Above 1 needs PostgreSQL: `DIVOC_STORAGE__BACKEND=postgres`
    /// and `DIVOC_STORAGE__URL`.
    #[arg(long, default_value_t = 1)]
    hosts: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IssueMode {
    Batch,
    Single,
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyInput {
    Qr,
    Credential,
}

/// The image `bench qr` fetches.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QrFormat {
    Png,
    Svg,
}

impl QrFormat {
    fn extension(self) -> &'static str {
        match self {
            QrFormat::Png => "png",
            QrFormat::Svg => "svg",
        }
    }

    /// How every good answer starts.
    fn magic(self) -> &'static [u8] {
        match self {
            QrFormat::Png => b"\x89PNG\r\n\x1a\n",
            QrFormat::Svg => b"<?xml",
        }
    }
}

pub fn run(command: BenchCommand, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match command {
        BenchCommand::Book {
            target,
            count,
            concurrency,
            seats,
            policy_plugin,
        } => {
            ensure!(
                count > 0 && concurrency > 0 && seats > 0,
                "--count, --concurrency and --seats must be at least 1"
            );
            let server = Server::connect(&target, config_file, &rt)?;
            let policy = policy_plugin.then_some("policy-age-interval");
            let registry = rt.block_on(rollout::set_up(&server.endpoint, count, seats, policy))?;
            let before = cpu_now(&server.pids());
            let (out, refused, over) =
                rt.block_on(rollout::book(&server.endpoint, &registry, concurrency, 0.8))?;
            let missed = out.report(
                &format!("bookings ({concurrency} connections)"),
                "bookings",
                rollout::TARGET_BOOK,
            );
            report_cpu(
                before,
                cpu_now(&server.pids()),
                out.ok + refused,
                "booking request",
            );
            println!("refused as full: {refused}; seats booked over capacity: {over} (must be 0)");
            server.stop();
            Ok(if missed || over > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        BenchCommand::Vaccinate {
            target,
            count,
            concurrency,
        } => {
            ensure!(
                count > 0 && concurrency > 0,
                "--count and --concurrency must be at least 1"
            );
            let server = Server::connect(&target, config_file, &rt)?;
            let registry = rt.block_on(rollout::set_up(&server.endpoint, count, 1, None))?;
            let id = registry.programme.trim_start_matches("BP").to_owned();
            let before = cpu_now(&server.pids());
            let out = rt.block_on(rollout::vaccinate(
                &server.endpoint,
                &registry,
                &format!("BN{id}"),
                &format!("BV{id}"),
                concurrency,
            ))?;
            let missed = out.report(
                &format!("vaccinations with certificates ({concurrency} connections)"),
                "vaccinations",
                rollout::TARGET_VACCINATE,
            );
            report_cpu(before, cpu_now(&server.pids()), out.ok, "vaccination");
            server.stop();
            Ok(if missed {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        BenchCommand::Issue {
            target,
            count,
            concurrency,
            batch_size,
            mode,
            stream_clients,
            preload,
        } => {
            ensure!(count > 0, "--count must be at least 1");
            ensure!(
                (1..=MAX_BATCH).contains(&batch_size),
                "--batch-size must be 1 to {MAX_BATCH}"
            );
            let server = Server::connect(&target, config_file, &rt)?;
            if preload > 0 {
                rt.block_on(growth::preload(
                    &server.endpoint,
                    server.data.as_deref(),
                    preload,
                ))?;
            }
            let rates = raw_rates();
            let run_id = run_id();
            let mut missed = false;
            let streams = StreamClients::start(&server.endpoint, stream_clients)?;
            if mode != IssueMode::Single {
                let c = concurrency.unwrap_or(4);
                let before = cpu_now(&server.pids());
                let r = rt.block_on(issue_batches(
                    &server.endpoint,
                    &run_id,
                    count,
                    batch_size,
                    c,
                ))?;
                missed |= r.report(
                    &format!("batch issuance ({batch_size} per request, {c} in flight)"),
                    "certificates",
                    TARGET_BATCH,
                );
                report_cpu(before, cpu_now(&server.pids()), r.ok, "certificate");
            }
            if mode != IssueMode::Batch {
                let c = concurrency.unwrap_or(64);
                let before = cpu_now(&server.pids());
                let r = rt.block_on(issue_single(&server.endpoint, &run_id, count, c))?;
                missed |= r.report(
                    &format!("one per request ({c} connections)"),
                    "certificates",
                    TARGET_SINGLE,
                );
                report_cpu(before, cpu_now(&server.pids()), r.ok, "certificate");
            }
            if let Some(streams) = streams {
                let issued = count * usize::from(mode == IssueMode::Both) + count;
                missed |= !streams.report(issued);
            }
            rates.print();
            server.report_memory();
            server.stop();
            Ok(if missed {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        BenchCommand::Verify {
            target,
            count,
            concurrency,
            batch_size,
            mode,
            certs,
            input,
        } => {
            ensure!(
                count > 0 && certs > 0,
                "--count and --certs must be at least 1"
            );
            ensure!(
                (1..=200).contains(&batch_size),
                "--batch-size must be 1 to 200"
            );
            let server = Server::connect(&target, config_file, &rt)?;
            let rates = raw_rates();
            let bodies = rt.block_on(verify_setup(&server.endpoint, certs, input))?;
            let what = match input {
                VerifyInput::Qr => "QR text",
                VerifyInput::Credential => "credential JSON",
            };
            let mut missed = false;
            if mode != IssueMode::Single {
                let c = concurrency.unwrap_or(4);
                let (out, before, after) = rt.block_on(verify_load(
                    &server.endpoint,
                    &server.pids(),
                    &bodies,
                    count,
                    c,
                    Some(batch_size),
                ))?;
                missed |= out.report(
                    &format!(
                        "batch verification ({what}, {batch_size} per request, {c} in flight)"
                    ),
                    "verifications",
                    TARGET_VERIFY,
                );
                report_cpu(before, after, out.ok, "verification");
            }
            if mode != IssueMode::Batch {
                let c = concurrency.unwrap_or(32);
                let (out, before, after) = rt.block_on(verify_load(
                    &server.endpoint,
                    &server.pids(),
                    &bodies,
                    count,
                    c,
                    None,
                ))?;
                missed |= out.report(
                    &format!("verification ({what}, one per request, {c} connections)"),
                    "verifications",
                    TARGET_VERIFY,
                );
                report_cpu(before, after, out.ok, "verification");
            }
            rates.print();
            server.report_memory();
            server.stop();
            Ok(if missed {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        BenchCommand::Qr {
            target,
            count,
            concurrency,
            certs,
            format,
        } => {
            ensure!(
                count > 0 && certs > 0 && concurrency > 0,
                "--count, --certs and --concurrency must be at least 1"
            );
            let (magic, format) = (format.magic(), format.extension());
            let server = Server::connect(&target, config_file, &rt)?;
            let ids = rt.block_on(issue_for_reading(&server.endpoint, certs))?;
            let jobs: Vec<Job> = (0..count)
                .map(|i| Job {
                    method: "GET",
                    path: format!("/v1/certificates/{}/qr.{format}", ids[i % ids.len()]),
                    body: None,
                })
                .collect();
            let before = cpu_now(&server.pids());
            let (answers, elapsed) =
                rt.block_on(drive(&server.endpoint, concurrency, Arc::new(jobs)))?;
            let after = cpu_now(&server.pids());
            let mut out = Outcome::new(&answers, elapsed);
            for answer in &answers {
                match answer {
                    Some((Ok(r), _)) if r.status == 200 && r.body.starts_with(magic) => out.ok += 1,
                    Some((Ok(r), _)) => out.fail(1, || {
                        format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body))
                    }),
                    Some((Err(e), _)) => out.fail(1, || e.clone()),
                    None => out.fail(1, || "not sent".into()),
                }
            }
            let missed = out.report(
                &format!("qr.{format} ({concurrency} connections)"),
                "images",
                TARGET_QR,
            );
            report_cpu(before, after, out.ok, "image");
            server.stop();
            Ok(if missed {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        BenchCommand::Formats(args) => formats::run(args, config_file),
        BenchCommand::Growth(args) => growth::run(args, config_file),
        BenchCommand::Abuse(args) => abuse::run(args, config_file, &rt),
        BenchCommand::AuditChains(args) => chains::run(args),
    }
}

fn run_id() -> String {
    let mut b = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b).to_uppercase()
}

// ---------------------------------------------------------------------------
// Raw Ed25519.

struct RawRates {
    one: divoc_crypto::speed::Ed25519Rates,
    all: divoc_crypto::speed::Ed25519Rates,
}

fn raw_rates() -> RawRates {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let d = Duration::from_millis(700);
    RawRates {
        one: divoc_crypto::speed::ed25519_rates(1, d),
        all: divoc_crypto::speed::ed25519_rates(threads, d),
    }
}

impl RawRates {
    fn print(&self) {
        println!(
            "raw Ed25519 (ed25519-dalek, 64-byte message, same run): sign {} /s on 1 thread, {} /s on {}; \
             verify_strict {} /s on 1 thread, {} /s on {}",
            thousands(self.one.sign_per_s),
            thousands(self.all.sign_per_s),
            self.all.threads,
            thousands(self.one.verify_per_s),
            thousands(self.all.verify_per_s),
            self.all.threads,
        );
    }
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------
// CPU accounting.
//
// On a shared machine the wall-clock rate moves with whatever else runs;
// CPU time per certificate does not, and it says which thread bounds the
// rate: a single writer thread cannot go faster than 1 s / its CPU per
// certificate, and the whole server not faster than cores / its total.

/// CPU time used so far by the servers (all threads, including exited
/// ones), by their storage writer threads, by this (client) process, and
/// by this machine's PostgreSQL server processes (none on SQLite).
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: Duration,
    writer: Duration,
    client: Duration,
    postgres: Duration,
}

/// utime + stime of a `/proc/.../stat` file, in clock ticks of 10 ms
/// (USER_HZ is 100 on Linux).
fn proc_ticks(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may contain spaces; fields resume after its `)`.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Nanosecond on-CPU time of the server's storage writer thread.
fn writer_cpu(pid: u32) -> Option<Duration> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() == "divoc-storage-w" {
            let sched = std::fs::read_to_string(dir.join("schedstat")).ok()?;
            let ns = sched.split(' ').next()?.parse::<u64>().ok()?;
            return Some(Duration::from_nanos(ns));
        }
    }
    None
}

fn cpu_now(server_pids: &[u32]) -> Option<Cpu> {
    if server_pids.is_empty() {
        return None;
    }
    let mut cpu = Cpu {
        client: proc_ticks("/proc/self/stat")?,
        postgres: postgres_cpu(),
        ..Cpu::default()
    };
    for pid in server_pids {
        cpu.server += proc_ticks(&format!("/proc/{pid}/stat"))?;
        cpu.writer += writer_cpu(*pid).unwrap_or_default();
    }
    Some(cpu)
}

/// CPU time of every `postgres` process now running (the postmaster and
/// its backends: a backend's time is counted while it lives, and the
/// bench's connections live through a run).
fn postgres_cpu() -> Duration {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    procs
        .flatten()
        .filter(|p| {
            p.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|p| {
            std::fs::read_to_string(p.path().join("comm")).is_ok_and(|c| c.trim_end() == "postgres")
        })
        .filter_map(|p| proc_ticks(&format!("{}/stat", p.path().display())))
        .sum()
}

/// Prints CPU per item between two snapshots.
fn report_cpu(before: Option<Cpu>, after: Option<Cpu>, items: usize, unit: &str) {
    let (Some(b), Some(a)) = (before, after) else {
        return;
    };
    if items == 0 {
        return;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / items as f64;
    let server = per(a.server.saturating_sub(b.server));
    let writer = per(a.writer.saturating_sub(b.writer));
    let client = per(a.client.saturating_sub(b.client));
    let postgres = per(a.postgres.saturating_sub(b.postgres));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let writer_bound = if writer >= 1.0 {
        format!(
            ", {} /s for the writer thread ({writer:.0} µs of the server's)",
            thousands(1e6 / writer)
        )
    } else {
        String::new()
    };
    if postgres >= 1.0 {
        println!(
            "  CPU per {unit}: hosts {server:.0} µs, PostgreSQL {postgres:.0} µs, bench client \
             {client:.0} µs; so at most {} /s for all three on {cores} cores",
            thousands(cores * 1e6 / (server + postgres + client).max(1e-9)),
        );
        return;
    }
    println!(
        "  CPU per {unit}: server {server:.0} µs, bench client {client:.0} µs; \
         so at most {} /s for server + client on {cores} cores{writer_bound}",
        thousands(cores * 1e6 / (server + client).max(1e-9)),
    );
}

// ---------------------------------------------------------------------------
// The server under test.

struct Endpoint {
    /// The hosts' addresses: each new connection goes to the next one.
    addrs: Vec<SocketAddr>,
    next: AtomicUsize,
    host: String,
    token: String,
}

impl Endpoint {
    fn new(addrs: Vec<SocketAddr>, host: String, token: String) -> Endpoint {
        Endpoint {
            addrs,
            next: AtomicUsize::new(0),
            host,
            token,
        }
    }

    /// The address the next connection goes to (round robin).
    fn addr(&self) -> SocketAddr {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.addrs[i % self.addrs.len()]
    }
}

struct Server {
    endpoint: Arc<Endpoint>,
    /// Set when the bench started the servers itself (the first one is
    /// the one whose data dir is `data`).
    children: Vec<Child>,
    /// A temporary data dir to remove at the end.
    temp: Option<PathBuf>,
    /// The server's data dir, when known.
    data: Option<PathBuf>,
}

impl Server {
    fn connect(
        target: &Target,
        config_file: Option<&Path>,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<Server> {
        match &target.url {
            Some(url) => {
                let token = match &target.token {
                    Some(t) => t.clone(),
                    None => token_from(target.data_dir.as_deref())?,
                };
                let (addr, host) = parse_url(url)?;
                println!("server: {url}");
                ensure!(
                    target.hosts == 1,
                    "--hosts starts servers: give it without --url"
                );
                Ok(Server {
                    endpoint: Arc::new(Endpoint::new(vec![addr], host, token)),
                    children: Vec::new(),
                    temp: None,
                    data: target.data_dir.clone(),
                })
            }
            None => Self::start(target, config_file, rt),
        }
    }

    fn start(
        target: &Target,
        config_file: Option<&Path>,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<Server> {
        ensure!(target.hosts >= 1, "--hosts must be at least 1");
        if target.hosts > 1 {
            ensure!(
                std::env::var("DIVOC_STORAGE__BACKEND").is_ok_and(|b| b == "postgres"),
                "--hosts {} shares one database: set DIVOC_STORAGE__BACKEND=postgres and \
                 DIVOC_STORAGE__URL (scripts/pg.sh starts a local cluster)",
                target.hosts
            );
        }
        // The servers' logs and an empty plugins directory live in a
        // temporary directory; so does their data unless --data-dir says.
        let root = std::env::temp_dir().join(format!("divoc-bench-{}", run_id()));
        let data = target.data_dir.clone().unwrap_or_else(|| root.join("data"));
        let plugins = target
            .plugins
            .clone()
            .unwrap_or_else(|| root.join("plugins"));
        std::fs::create_dir_all(&plugins)
            .with_context(|| format!("cannot create {}", plugins.display()))?;
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let token = target.token.clone().unwrap_or_else(|| {
            let mut b = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut b);
            hex::encode(b)
        });
        let mut server = Server {
            endpoint: Arc::new(Endpoint::new(Vec::new(), String::new(), token.clone())),
            children: Vec::new(),
            temp: Some(root.clone()),
            data: Some(data.clone()),
        };
        let mut addrs = Vec::new();
        for host in 0..target.hosts {
            let dir = if host == 0 {
                data.clone()
            } else {
                let dir = root.join(format!("data-{host}"));
                // The first host made the issuer's keys; every host signs
                // with them (what a deployment mounts as a secret).
                copy_keys(&data.join("keys"), &dir.join("keys"))?;
                dir
            };
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let log_path = root.join(format!("server-{host}.log"));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("cannot create {}", log_path.display()))?;
            let mut cmd = Command::new(std::env::current_exe()?);
            if let Some(c) = config_file {
                cmd.arg("--config").arg(c);
            }
            let child = cmd
                .arg("serve")
                .arg("--data-dir")
                .arg(&dir)
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--plugins")
                .arg(&plugins)
                .env("DIVOC_ADMIN_TOKEN", &token)
                // Measured: issuing and verifying, not delivering. The shipped
                // `notify-log` channel is not in the bench's plugins, and rows
                // routed to it would retry alongside the load.
                .env("DIVOC_CERTIFICATES__DISTRIBUTION__CHANNELS", "[]")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("cannot start `divoc serve`")?;
            server.children.push(child);
            let one = Endpoint::new(vec![addr], addr.to_string(), token.clone());
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let up = rt.block_on(async {
                    let mut c = Conn::open(&one).await?;
                    c.call("GET", "/healthz", None).await
                });
                if matches!(up, Ok(ref r) if r.status == 200) {
                    break;
                }
                if Instant::now() >= deadline || server.exited() {
                    // Keep the data dir: its log says why.
                    server.temp = None;
                    bail!("the server did not come up; see {}", log_path.display());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            println!(
                "server: started `divoc serve` on http://{addr} (data dir {}, log {})",
                dir.display(),
                log_path.display()
            );
            addrs.push(addr);
        }
        let host = addrs[0].to_string();
        server.endpoint = Arc::new(Endpoint::new(addrs, host, token));
        Ok(server)
    }

    /// The processes of the servers the bench started.
    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Prints the servers' resident and peak memory, when they are ours.
    fn report_memory(&self) {
        for (host, pid) in self.pids().into_iter().enumerate() {
            if let Some((rss, peak)) = growth::memory_mib(pid) {
                println!(
                    "server {host} memory: {rss:.0} MiB resident now, {peak:.0} MiB at peak \
                     (target ≤ 150)"
                );
            }
        }
    }

    fn exited(&mut self) -> bool {
        self.children
            .iter_mut()
            .any(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        for mut child in self.children.drain(..) {
            // Everything acknowledged is committed; SIGKILL loses nothing.
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.temp.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Copies a keys directory (the issuer's keys, the store key, the person
/// key; subdirectories too) for another host; files keep their modes.
fn copy_keys(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let path = entry?.path();
        let Some(name) = path.file_name() else {
            continue;
        };
        if path.is_dir() {
            copy_keys(&path, &to.join(name))?;
        } else {
            std::fs::copy(&path, to.join(name))
                .with_context(|| format!("cannot copy {}", path.display()))?;
        }
    }
    Ok(())
}

fn token_from(data_dir: Option<&Path>) -> anyhow::Result<String> {
    if let Ok(t) = std::env::var("DIVOC_ADMIN_TOKEN") {
        return Ok(t);
    }
    let Some(dir) = data_dir else {
        bail!("give --token, set DIVOC_ADMIN_TOKEN, or give --data-dir to read its admin-token");
    };
    let path = dir.join("admin-token");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .trim()
        .to_string())
}

fn parse_url(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--url must be http://host:port (the bench drives loopback HTTP)");
    };
    let host = rest.split('/').next().unwrap_or(rest);
    let with_port = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    Ok((addr, host.to_string()))
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 keep-alive client.

struct Reply {
    status: u16,
    body: Vec<u8>,
}

struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet consumed.
    buf: Vec<u8>,
    /// `Host` and `Authorization` lines, sent with every request.
    fixed: String,
    out: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    async fn open(e: &Endpoint) -> anyhow::Result<Conn> {
        Conn::open_as(e, None, true).await
    }

    /// A connection from `source` (a loopback address other than
    /// 127.0.0.1 looks like another client), with the bench's token or
    /// none.
    async fn open_as(
        e: &Endpoint,
        source: Option<std::net::IpAddr>,
        with_token: bool,
    ) -> anyhow::Result<Conn> {
        let stream = match source {
            None => TcpStream::connect(e.addr()).await,
            Some(ip) => {
                let socket = if ip.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()?
                } else {
                    tokio::net::TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(e.addr()).await
            }
        }
        .with_context(|| format!("cannot connect to {}", e.host))?;
        stream.set_nodelay(true)?;
        let fixed = if with_token {
            format!("Host: {}\r\nAuthorization: Bearer {}\r\n", e.host, e.token)
        } else {
            format!("Host: {}\r\n", e.host)
        };
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            fixed,
            out: Vec::with_capacity(4 * 1024),
        })
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        ensure!(n > 0, "the server closed the connection");
        Ok(())
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> anyhow::Result<Reply> {
        self.call_typed(method, path, "application/json", body)
            .await
    }

    async fn call_typed(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&[u8]>,
    ) -> anyhow::Result<Reply> {
        self.out.clear();
        write!(self.out, "{method} {path} HTTP/1.1\r\n{}", self.fixed)?;
        match body {
            Some(b) => {
                write!(
                    self.out,
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                )?;
                self.out.extend_from_slice(b);
            }
            None => self.out.extend_from_slice(b"\r\n"),
        }
        self.stream.write_all(&self.out).await?;

        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("response head")?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .context("malformed status line")?;
        let (mut length, mut chunked) = (None, false);
        for line in lines {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(v.parse::<usize>().context("content-length")?);
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.eq_ignore_ascii_case("chunked");
            }
        }
        self.buf.drain(..head_end + 4);
        let body = match (chunked, length) {
            (true, _) => self.chunked().await?,
            (false, Some(n)) => self.take(n).await?,
            (false, None) => bail!("response without a length"),
        };
        Ok(Reply { status, body })
    }

    async fn take(&mut self, n: usize) -> anyhow::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    async fn chunked(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                self.fill().await?;
            };
            let line = std::str::from_utf8(&self.buf[..line_end]).context("chunk size")?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .context("chunk size")?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers (none expected) end with an empty line.
                loop {
                    let end = loop {
                        if let Some(i) = find(&self.buf, b"\r\n") {
                            break i;
                        }
                        self.fill().await?;
                    };
                    self.buf.drain(..end + 2);
                    if end == 0 {
                        return Ok(body);
                    }
                }
            }
            let chunk = self.take(size + 2).await?;
            body.extend_from_slice(&chunk[..size]);
        }
    }
}

// ---------------------------------------------------------------------------
// Load.

struct Job {
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
}

/// One answered job: the reply (or the transport error) and its latency.
type Answer = (Result<Reply, String>, Duration);

/// Sends every job over `concurrency` keep-alive connections, each taking
/// the next job as soon as its previous one is answered. Returns the
/// answers in job order and the wall time from the first request to the
/// last answer (connections are opened before the clock starts).
async fn drive(
    e: &Arc<Endpoint>,
    concurrency: usize,
    jobs: Arc<Vec<Job>>,
) -> anyhow::Result<(Vec<Option<Answer>>, Duration)> {
    let concurrency = concurrency.clamp(1, jobs.len().max(1));
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(Conn::open(e).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for mut conn in conns {
        let (jobs, next, e) = (Arc::clone(&jobs), Arc::clone(&next), Arc::clone(e));
        set.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let t = Instant::now();
                let r = conn.call(job.method, &job.path, job.body.as_deref()).await;
                let latency = t.elapsed();
                let failed = r.is_err();
                done.push((i, (r.map_err(|e| format!("{e:#}")), latency)));
                if failed {
                    // The connection is in an unknown state: start a new one.
                    match Conn::open(&e).await {
                        Ok(c) => conn = c,
                        Err(_) => break,
                    }
                }
            }
            done
        });
    }
    let mut answers: Vec<Option<Answer>> = (0..jobs.len()).map(|_| None).collect();
    while let Some(done) = set.join_next().await {
        for (i, a) in done? {
            if let Some(slot) = answers.get_mut(i) {
                *slot = Some(a);
            }
        }
    }
    Ok((answers, start.elapsed()))
}

/// What a load produced.
struct Outcome {
    /// Items (certificates or verifications) that succeeded.
    ok: usize,
    /// Items that failed, and the first failure.
    failed: usize,
    first_error: Option<String>,
    elapsed: Duration,
    /// Per-request latencies, sorted.
    latencies: Vec<Duration>,
    requests: usize,
}

impl Outcome {
    fn new(answers: &[Option<Answer>], elapsed: Duration) -> Outcome {
        let mut latencies: Vec<Duration> = answers.iter().flatten().map(|(_, l)| *l).collect();
        latencies.sort_unstable();
        Outcome {
            ok: 0,
            failed: 0,
            first_error: None,
            elapsed,
            latencies,
            requests: answers.len(),
        }
    }

    fn fail(&mut self, n: usize, why: impl FnOnce() -> String) {
        self.failed += n;
        if self.first_error.is_none() {
            self.first_error = Some(why());
        }
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1]
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Prints the line for this load; returns whether the target was missed.
    fn report(&self, label: &str, unit: &str, target: f64) -> bool {
        let rate = self.rate();
        println!(
            "{label}: {} {unit} in {:.2} s = {} {unit}/s (target ≥ {}: {}); \
             {} requests, latency p50 {:.1} ms, p99 {:.1} ms",
            self.ok,
            self.elapsed.as_secs_f64(),
            thousands(rate),
            thousands(target),
            if rate >= target { "met" } else { "MISSED" },
            self.requests,
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
        );
        if self.failed > 0 {
            println!(
                "  {} failed; first: {}",
                self.failed,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        rate < target
    }
}

/// Issue requests `from..from + count` of this run: different people
/// ([`divoc_certificates::synthetic`]), so that what is stored and
/// compressed is not one credential repeated.
fn requests(run_id: &str, from: usize, count: usize) -> anyhow::Result<Vec<Value>> {
    let seed = u64::from_str_radix(run_id, 16).unwrap_or(0);
    let prefix = format!("BENCH-{run_id}-");
    Ok((from..from + count)
        .map(|i| divoc_certificates::synthetic::issue_request(seed, i as u64, &prefix))
        .collect())
}

fn batch_jobs(items: &[Value], batch_size: usize) -> anyhow::Result<Vec<Job>> {
    items
        .chunks(batch_size)
        .map(|chunk| {
            Ok(Job {
                method: "POST",
                path: "/v1/certificates/batch".into(),
                body: Some(serde_json::to_vec(chunk)?),
            })
        })
        .collect()
}

/// Checks batch answers; returns the outcome and the ids in item order
/// (`None` for failed items).
fn check_batches(
    answers: &[Option<Answer>],
    batch_size: usize,
    items: usize,
    elapsed: Duration,
) -> (Outcome, Vec<Option<String>>) {
    let mut out = Outcome::new(answers, elapsed);
    let mut ids = vec![None; items];
    for (j, answer) in answers.iter().enumerate() {
        let expected = batch_size.min(items - j * batch_size);
        let reply = match answer {
            Some((Ok(r), _)) if r.status == 200 => r,
            Some((Ok(r), _)) => {
                out.fail(expected, || {
                    format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body))
                });
                continue;
            }
            Some((Err(e), _)) => {
                out.fail(expected, || e.clone());
                continue;
            }
            None => {
                out.fail(expected, || "not sent".into());
                continue;
            }
        };
        let results = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("results").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        if results.len() != expected {
            out.fail(expected, || {
                format!("{} results for {expected} items", results.len())
            });
            continue;
        }
        for (k, r) in results.iter().enumerate() {
            match r.get("id").and_then(Value::as_str) {
                Some(id) => {
                    out.ok += 1;
                    if let Some(slot) = ids.get_mut(j * batch_size + k) {
                        *slot = Some(id.to_string());
                    }
                }
                None => out.fail(1, || r.to_string()),
            }
        }
    }
    (out, ids)
}

async fn issue_batches(
    e: &Arc<Endpoint>,
    run_id: &str,
    count: usize,
    batch_size: usize,
    concurrency: usize,
) -> anyhow::Result<Outcome> {
    let items = requests(run_id, 0, count)?;
    let jobs = Arc::new(batch_jobs(&items, batch_size)?);
    let (answers, elapsed) = drive(e, concurrency, Arc::clone(&jobs)).await?;
    Ok(check_batches(&answers, batch_size, count, elapsed).0)
}

async fn issue_single(
    e: &Arc<Endpoint>,
    run_id: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Outcome> {
    // Codes after the batch run's, so `--mode both` issues new certificates.
    let items = requests(run_id, count, count)?;
    let jobs = items
        .iter()
        .map(|item| {
            Ok(Job {
                method: "POST",
                path: "/v1/certificates".into(),
                body: Some(serde_json::to_vec(item)?),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (answers, elapsed) = drive(e, concurrency, Arc::new(jobs)).await?;
    let mut out = Outcome::new(&answers, elapsed);
    for answer in &answers {
        match answer {
            Some((Ok(r), _)) if r.status == 201 => out.ok += 1,
            Some((Ok(r), _)) => out.fail(1, || {
                format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body))
            }),
            Some((Err(e), _)) => out.fail(1, || e.clone()),
            None => out.fail(1, || "not sent".into()),
        }
    }
    Ok(out)
}

/// Set-up for a read load: issues `certs` certificates in batches; their ids.
async fn issue_for_reading(e: &Arc<Endpoint>, certs: usize) -> anyhow::Result<Vec<String>> {
    let items = requests(&run_id(), 0, certs)?;
    let batch = 500;
    let jobs = Arc::new(batch_jobs(&items, batch)?);
    let (answers, elapsed) = drive(e, 4, Arc::clone(&jobs)).await?;
    let (issued, ids) = check_batches(&answers, batch, certs, elapsed);
    ensure!(
        issued.failed == 0,
        "set-up: issuing failed: {}",
        issued.first_error.unwrap_or_default()
    );
    let ids: Vec<String> = ids.into_iter().flatten().collect();
    ensure!(!ids.is_empty(), "set-up: no certificate was issued");
    println!("set-up: issued {} certificates", ids.len());
    Ok(ids)
}

/// Set-up for a verification load: issues `certs` certificates and
/// fetches each one's QR text or credential, as a `/v1/verify` item.
async fn verify_setup(
    e: &Arc<Endpoint>,
    certs: usize,
    input: VerifyInput,
) -> anyhow::Result<Vec<Value>> {
    let ids = issue_for_reading(e, certs).await?;
    let file = match input {
        VerifyInput::Qr => "/qr.txt",
        VerifyInput::Credential => "",
    };
    let fetch: Vec<Job> = ids
        .iter()
        .map(|id| Job {
            method: "GET",
            path: format!("/v1/certificates/{id}{file}"),
            body: None,
        })
        .collect();
    let (fetched, _) = drive(e, 16, Arc::new(fetch)).await?;
    let mut items = Vec::with_capacity(certs);
    for f in fetched {
        let body = match f {
            Some((Ok(r), _)) if r.status == 200 => r.body,
            Some((Ok(r), _)) => bail!("set-up: fetching a certificate: HTTP {}", r.status),
            Some((Err(e), _)) => bail!("set-up: fetching a certificate: {e}"),
            None => bail!("set-up: a certificate was not fetched"),
        };
        items.push(match input {
            VerifyInput::Qr => serde_json::json!({ "qr": String::from_utf8(body)? }),
            VerifyInput::Credential => {
                serde_json::json!({ "credential": serde_json::from_slice::<Value>(&body)? })
            }
        });
    }
    println!("set-up: fetched {} certificates to verify", items.len());
    Ok(items)
}

/// `count` verifications of `items` (cycling through them), one per
/// request or `batch` per request; the outcome with CPU snapshots around
/// it. A verification counts as done when its verdict is `valid`.
async fn verify_load(
    e: &Arc<Endpoint>,
    server_pids: &[u32],
    items: &[Value],
    count: usize,
    concurrency: usize,
    batch: Option<usize>,
) -> anyhow::Result<(Outcome, Option<Cpu>, Option<Cpu>)> {
    let item = |i: usize| &items[i % items.len()];
    let per_request = batch.unwrap_or(1);
    let jobs: Vec<Job> = (0..count.div_ceil(per_request))
        .map(|j| {
            let range = j * per_request..((j + 1) * per_request).min(count);
            let (path, body) = match batch {
                Some(_) => (
                    "/v1/verify/batch",
                    serde_json::to_vec(&range.map(item).collect::<Vec<_>>()),
                ),
                None => ("/v1/verify", serde_json::to_vec(item(range.start))),
            };
            Ok(Job {
                method: "POST",
                path: path.into(),
                body: Some(body?),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let expected = |j: usize| per_request.min(count - j * per_request);
    let before = cpu_now(server_pids);
    let (answers, elapsed) = drive(e, concurrency, Arc::new(jobs)).await?;
    let after = cpu_now(server_pids);
    let mut out = Outcome::new(&answers, elapsed);
    for (j, answer) in answers.iter().enumerate() {
        let n = expected(j);
        let reply = match answer {
            Some((Ok(r), _)) if r.status == 200 => r,
            Some((Ok(r), _)) => {
                out.fail(n, || {
                    format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body))
                });
                continue;
            }
            Some((Err(e), _)) => {
                out.fail(n, || e.clone());
                continue;
            }
            None => {
                out.fail(n, || "not sent".into());
                continue;
            }
        };
        if batch.is_none() {
            // `valid` is the verdict's first field.
            if reply.body.starts_with(b"{\"valid\":true") {
                out.ok += 1;
            } else {
                out.fail(1, || String::from_utf8_lossy(&reply.body).into_owned());
            }
            continue;
        }
        let results = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("results").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        if results.len() != n {
            out.fail(n, || format!("{} results for {n} items", results.len()));
            continue;
        }
        for r in &results {
            if r.get("valid") == Some(&Value::Bool(true)) {
                out.ok += 1;
            } else {
                out.fail(1, || r.to_string());
            }
        }
    }
    Ok((out, before, after))
}

/// Clients of the live event stream, each on its own thread and
/// connection, counting the certificate events they receive.
struct StreamClients {
    received: Vec<Arc<AtomicUsize>>,
    started: Instant,
}

impl StreamClients {
    fn start(endpoint: &Endpoint, n: usize) -> anyhow::Result<Option<StreamClients>> {
        if n == 0 {
            return Ok(None);
        }
        let mut received = Vec::new();
        for _ in 0..n {
            let count = Arc::new(AtomicUsize::new(0));
            let url = format!(
                "http://{}/v1/events/stream?kinds=certificate.issued",
                endpoint.addr()
            );
            let response = ureq::get(&url)
                .set("Authorization", &format!("Bearer {}", endpoint.token))
                .call()
                .context("cannot open the event stream")?;
            let c = count.clone();
            std::thread::spawn(move || {
                use std::io::BufRead as _;
                let lines = std::io::BufReader::new(response.into_reader()).lines();
                for line in lines.map_while(Result::ok) {
                    if line.starts_with("id:") {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            received.push(count);
        }
        Ok(Some(StreamClients {
            received,
            started: Instant::now(),
        }))
    }

    /// Waits (up to 30 s) for every client to have `expected` events;
    /// prints how long after the load the slowest had them all. Whether
    /// they all did.
    fn report(&self, expected: usize) -> bool {
        let load_done = Instant::now();
        let deadline = load_done + Duration::from_secs(30);
        let slowest = || {
            self.received
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .min()
                .unwrap_or(0)
        };
        while slowest() < expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let behind = load_done.elapsed();
        let got = slowest();
        let rate = got as f64 / self.started.elapsed().as_secs_f64();
        println!(
            "event stream: {} clients; the slowest received {got} of {expected} certificate events \
             ({rate:.0}/s over the run), all of them {:.0?} after the load ended",
            self.received.len(),
            behind
        );
        got >= expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(20_000.0), "20,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    /// Two answers on one keep-alive connection: one with a length, one
    /// chunked (split across writes); the request bytes are as sent.
    #[test]
    fn client_reads_length_and_chunked_bodies() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.ends_with(b"{}") {
                    let n = s.read(&mut buf).await.expect("read");
                    got.extend_from_slice(&buf[..n]);
                }
                s.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello")
                    .await
                    .expect("write");
                let n = s.read(&mut buf).await.expect("read");
                got.extend_from_slice(&buf[..n]);
                s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
                    .await
                    .expect("write");
                s.write_all(b"c\r\n2;x=y\r\nde\r\n0\r\n\r\n")
                    .await
                    .expect("write");
                got
            });
            let e = Endpoint::new(vec![addr], addr.to_string(), "t0k".into());
            let mut c = Conn::open(&e).await.expect("connect");
            let r = c.call("POST", "/x", Some(b"{}")).await.expect("call");
            assert_eq!((r.status, r.body.as_slice()), (201, &b"hello"[..]));
            let r = c.call("GET", "/y", None).await.expect("call");
            assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
            let sent = String::from_utf8(server.await.expect("server")).expect("utf8");
            assert!(
                sent.starts_with("POST /x HTTP/1.1\r\nHost: 127.0.0.1:"),
                "{sent}"
            );
            assert!(sent.contains("Authorization: Bearer t0k\r\n"), "{sent}");
            assert!(
                sent.contains("Content-Length: 2\r\n\r\n{}GET /y HTTP/1.1"),
                "{sent}"
            );
        });
    }

    #[test]
    fn parses_urls() {
        let (addr, host) = parse_url("http://127.0.0.1:8080/").expect("url");
        assert_eq!((addr.port(), host.as_str()), (8080, "127.0.0.1:8080"));
        assert!(parse_url("https://127.0.0.1:8080").is_err());
    }

    #[test]
    fn template_is_a_valid_request() {
        let items = requests("T", 0, 2).expect("requests");
        for item in items {
            let req = divoc_certificates::IssueRequest::from_json(item).expect("parses");
            let now = divoc_time::Clock::now_ms(&divoc_time::SystemClock);
            assert!(req.validate_at(now, &divoc_time::Zone::utc()).is_ok());
        }
    }
}
