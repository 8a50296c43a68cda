//! `divoc bench audit-chains`: audited writes per second from several hosts
//! on one PostgreSQL database, two ways (docs/SCALE.md, § The audit chain).
//!
//! - **One chain** (what the hosts do): every host appends to the one
//!   hash chain, each writer group under the shared advisory lock, so the
//!   groups of all hosts take turns.
//! - **A chain per host**: each host appends to a chain of its own (here a
//!   schema of its own: no shared head, no shared lock). That is the most
//!   that chains per partition could give on the same server, since the
//!   partitions would then share nothing at all.
//!
//! Each host is a [`Database`] handle of this process, with its own writer
//! thread and connection, fed by `--writers` threads that each wait for
//! their write before sending the next (as request handlers do). A write
//! is one audit record; PostgreSQL's CPU per record is reported beside.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{ensure, Context};
use clap::Args;
use divoc_storage::{Database, DbOptions};
use serde_json::json;

use super::{postgres_cpu, thousands};

#[derive(Args)]
pub struct ChainsArgs {
    /// Hosts (database handles, each with its writer).
    #[arg(long, default_value_t = 3)]
    hosts: usize,
    /// Audit records per host and way.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Threads per host waiting for one write at a time.
    #[arg(long, default_value_t = 32)]
    writers: usize,
}

/// Appends `count` records from each of `dbs` at once; records per second.
fn append_all(dbs: &[Database], count: usize, writers: usize) -> anyhow::Result<f64> {
    let failed = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for (h, db) in dbs.iter().enumerate() {
            let next = std::sync::Arc::new(AtomicUsize::new(0));
            for _ in 0..writers {
                let (next, failed) = (next.clone(), &failed);
                s.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let subject = format!("host{h}-{i}");
                    let appended = db
                        .write(move |tx| {
                            divoc_storage::audit::append_audit(
                                tx,
                                "bench",
                                "bench.append",
                                &subject,
                                &json!({}),
                            )
                        })
                        .wait();
                    if appended.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    ensure!(
        failed.load(Ordering::Relaxed) == 0,
        "{} appends failed",
        failed.load(Ordering::Relaxed)
    );
    Ok((dbs.len() * count) as f64 / elapsed)
}

pub fn run(args: ChainsArgs) -> anyhow::Result<std::process::ExitCode> {
    ensure!(
        args.hosts > 0 && args.count > 0 && args.writers > 0,
        "--hosts, --count and --writers must be at least 1"
    );
    let base = std::env::var("DIVOC_STORAGE__URL")
        .context("set DIVOC_STORAGE__URL to a PostgreSQL database (scripts/pg.sh starts one)")?;
    let open = |url: &str| {
        Database::open_postgres(url, DbOptions::default())
            .with_context(|| format!("cannot open {}", divoc_storage::pg::redact(url)))
    };
    println!(
        "{} hosts, {} audit records each, {} writers per host",
        args.hosts,
        thousands(args.count as f64),
        args.writers
    );
    let mut schemas = Vec::new();
    let report = |label: &str, dbs: Vec<Database>| -> anyhow::Result<()> {
        let pg_before = postgres_cpu();
        let rate = append_all(&dbs, args.count, args.writers)?;
        let pg = (postgres_cpu().saturating_sub(pg_before)).as_secs_f64() * 1e6
            / (dbs.len() * args.count) as f64;
        for db in &dbs {
            ensure!(
                db.verify_audit_chain()?.is_intact(),
                "{label}: a chain does not verify"
            );
        }
        println!(
            "  {label}: {} records/s, PostgreSQL CPU {pg:.0} µs per record",
            thousands(rate)
        );
        Ok(())
    };

    // One chain: every host on one schema.
    let name = "bench_chain_one".to_owned();
    let url = divoc_storage::pg::fresh_schema_url(&base, &name)?;
    schemas.push(name);
    let one: Vec<Database> = (0..args.hosts)
        .map(|_| open(&url))
        .collect::<anyhow::Result<_>>()?;
    report("one chain, groups take turns", one)?;

    // A chain per host: a schema each.
    let mut own = Vec::new();
    for h in 0..args.hosts {
        let name = format!("bench_chain_{h}");
        let url = divoc_storage::pg::fresh_schema_url(&base, &name)?;
        schemas.push(name);
        own.push(open(&url)?);
    }
    report("a chain per host, nothing shared", own)?;

    for name in &schemas {
        divoc_storage::pg::drop_schema(&base, name)?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}
