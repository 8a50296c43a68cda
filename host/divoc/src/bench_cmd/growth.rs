//! `--preload N` and `divoc bench growth`: whether issuing, verifying and
//! reading certificates cost the same with millions of them stored.
//!
//! Preloading goes through the batch path (`POST /v1/certificates/batch`,
//! 1000 per request), the fastest way in that is still the real one:
//! every certificate is signed and stored with its audit record, event,
//! lookups and outbox row. Requests are [`synthetic`] people, so stored
//! credentials are as varied as real ones. What a data dir already holds is
//! remembered in `<data-dir>/bench-preload.json` (the count, and every
//! thousandth id as a sample to verify and read), so 0 → 1 M → 10 M is one
//! growing database.
//!
//! [`synthetic`]: divoc_certificates::synthetic

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context};
use clap::Args;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::{
    batch_jobs, check_batches, drive, issue_batches, issue_single, run_id, thousands, verify_load,
    Endpoint, Job, Outcome, Server, Target,
};

/// The preload marker in a data dir.
const MARK: &str = "bench-preload.json";
/// Items per preload request, and requests in flight.
const BATCH: usize = 1000;
const IN_FLIGHT: usize = 4;
/// Preload requests generated and sent per round (bounded client memory).
const ROUND: usize = 100;
/// One id in this many is kept as a sample.
const SAMPLE_EVERY: usize = 1000;

#[derive(Args)]
pub struct GrowthArgs {
    #[command(flatten)]
    target: Target,
    /// Stored certificates to measure at, ascending, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1000000,10000000")]
    sizes: Vec<usize>,
    /// Operations of each kind measured at each size.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Mark {
    /// Certificates preloaded so far.
    count: usize,
    /// Every [`SAMPLE_EVERY`]th preloaded id.
    sample: Vec<String>,
}

fn read_mark(data: Option<&Path>) -> Mark {
    data.and_then(|d| std::fs::read(d.join(MARK)).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Brings the server's preloaded certificates up to `n`; the sample of
/// preloaded ids.
pub(super) async fn preload(
    e: &Arc<Endpoint>,
    data: Option<&Path>,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut mark = read_mark(data);
    if mark.count >= n {
        return Ok(mark.sample);
    }
    let started = Instant::now();
    let from = mark.count;
    println!("preload: {from} stored by earlier runs, issuing up to {n}");
    let mut next_report = from + 1_000_000;
    let mut i = from;
    while i < n {
        let end = (i + ROUND * BATCH).min(n);
        let items: Vec<_> = (i..end)
            .map(|k| divoc_certificates::synthetic::issue_request(1, k as u64, "PRELOAD-"))
            .collect();
        let jobs = Arc::new(batch_jobs(&items, BATCH)?);
        drop(items);
        let (answers, elapsed) = drive(e, IN_FLIGHT, jobs).await?;
        let (out, ids) = check_batches(&answers, BATCH, end - i, elapsed);
        ensure!(
            out.failed == 0,
            "preload: {} failed; first: {}",
            out.failed,
            out.first_error.unwrap_or_default()
        );
        for (k, id) in ids.into_iter().enumerate() {
            if (i + k).is_multiple_of(SAMPLE_EVERY) {
                mark.sample.extend(id);
            }
        }
        i = end;
        mark.count = i;
        if let Some(d) = data {
            std::fs::write(d.join(MARK), serde_json::to_vec(&mark)?)
                .with_context(|| format!("cannot write {}", d.join(MARK).display()))?;
        }
        if i >= next_report || i == n {
            let rate = (i - from) as f64 / started.elapsed().as_secs_f64();
            println!("preload: {i} stored ({} certificates/s)", thousands(rate));
            next_report += 1_000_000;
        }
    }
    Ok(mark.sample)
}

/// Resident and peak resident memory of a process, in MiB.
pub(super) fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The database's size on disk (main file and WAL), in bytes.
fn database_bytes(data: &Path) -> u64 {
    ["divoc.sqlite", "divoc.sqlite-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Reads certificates by id (`GET /v1/certificates/{id}`), cycling
/// through `ids` in random order.
async fn lookup_load(e: &Arc<Endpoint>, ids: &[String], count: usize) -> anyhow::Result<Outcome> {
    let mut order: Vec<&String> = ids.iter().collect();
    order.shuffle(&mut rand::thread_rng());
    let jobs: Vec<Job> = (0..count)
        .map(|i| Job {
            method: "GET",
            path: format!("/v1/certificates/{}", order[i % order.len()]),
            body: None,
        })
        .collect();
    let (answers, elapsed) = drive(e, 32, Arc::new(jobs)).await?;
    let mut out = Outcome::new(&answers, elapsed);
    for answer in &answers {
        match answer {
            Some((Ok(r), _)) if r.status == 200 => out.ok += 1,
            Some((Ok(r), _)) => out.fail(1, || format!("HTTP {}", r.status)),
            Some((Err(e), _)) => out.fail(1, || e.clone()),
            None => out.fail(1, || "not sent".into()),
        }
    }
    Ok(out)
}

/// The QR texts of (up to) 1000 of `ids`, as `/v1/verify` items.
async fn qr_items(e: &Arc<Endpoint>, ids: &[String]) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut chosen: Vec<&String> = ids.iter().collect();
    chosen.shuffle(&mut rand::thread_rng());
    chosen.truncate(1000);
    let jobs: Vec<Job> = chosen
        .iter()
        .map(|id| Job {
            method: "GET",
            path: format!("/v1/certificates/{id}/qr.txt"),
            body: None,
        })
        .collect();
    let (answers, _) = drive(e, 16, Arc::new(jobs)).await?;
    let mut items = Vec::new();
    for a in answers {
        match a {
            Some((Ok(r), _)) if r.status == 200 => {
                items.push(serde_json::json!({ "qr": String::from_utf8(r.body)? }))
            }
            Some((Ok(r), _)) => anyhow::bail!("set-up: fetching a QR: HTTP {}", r.status),
            Some((Err(e), _)) => anyhow::bail!("set-up: fetching a QR: {e}"),
            None => anyhow::bail!("set-up: a QR was not fetched"),
        }
    }
    Ok(items)
}

fn cell(o: &Outcome) -> String {
    let mut s = format!(
        "{} ({:.1} ms)",
        thousands(o.rate()),
        o.percentile(0.99).as_secs_f64() * 1e3
    );
    if o.failed > 0 {
        s.push_str(&format!(" {} FAILED", o.failed));
    }
    s
}

pub fn run(args: GrowthArgs, config_file: Option<&Path>) -> anyhow::Result<std::process::ExitCode> {
    ensure!(args.count > 0, "--count must be at least 1");
    ensure!(
        args.sizes.windows(2).all(|w| w[0] <= w[1]),
        "--sizes must be ascending"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let server = Server::connect(&args.target, config_file, &rt)?;
    let data: Option<PathBuf> = server.data.clone();
    let e = &server.endpoint;
    let mut rows = Vec::new();
    let mut failed = false;
    let mut extra = 0usize;
    for &size in &args.sizes {
        let sample = rt.block_on(preload(e, data.as_deref(), size))?;
        let run = run_id();
        let batch = rt.block_on(issue_batches(e, &run, args.count, 500, 4))?;
        let single = rt.block_on(issue_single(e, &run, args.count, 64))?;
        extra += batch.ok + single.ok;
        // Verify and read preloaded certificates when there are any (old
        // rows, cold pages), else ones issued now.
        let ids = if sample.is_empty() {
            let ids = rt.block_on(super::issue_for_reading(e, 1000))?;
            extra += ids.len();
            ids
        } else {
            sample
        };
        let items = rt.block_on(qr_items(e, &ids))?;
        let (verify, _, _) = rt.block_on(verify_load(e, &[], &items, args.count, 32, None))?;
        let (verify_batch, _, _) =
            rt.block_on(verify_load(e, &[], &items, args.count, 4, Some(100)))?;
        let lookup = rt.block_on(lookup_load(e, &ids, args.count))?;
        for o in [&batch, &single, &verify, &verify_batch, &lookup] {
            failed |= o.failed > 0;
        }
        let memory = server
            .pids()
            .first()
            .and_then(|pid| memory_mib(*pid))
            .map(|(rss, peak)| format!("{rss:.0} / {peak:.0}"))
            .unwrap_or_else(|| "?".into());
        let stored = read_mark(data.as_deref()).count.max(size) + extra;
        let per_cert = data
            .as_deref()
            .map(|d| format!("{:.0}", database_bytes(d) as f64 / stored.max(1) as f64))
            .unwrap_or_else(|| "?".into());
        let row = format!(
            "| {size} | {} | {} | {} | {} | {} | {memory} | {per_cert} |",
            cell(&batch),
            cell(&single),
            cell(&verify),
            cell(&verify_batch),
            cell(&lookup)
        );
        println!("{row}");
        rows.push(row);
    }
    println!();
    println!(
        "| preloaded | batch issue/s (p99) | single issue/s (p99) | verify/s (p99) | \
         verify batch/s (p99) | read by id/s (p99) | server RSS / peak MiB | DB bytes/cert |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    super::raw_rates().print();
    server.stop();
    Ok(if failed {
        std::process::ExitCode::from(2)
    } else {
        std::process::ExitCode::SUCCESS
    })
}
