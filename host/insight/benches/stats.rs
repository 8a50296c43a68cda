//! `/v1/stats` with a national rollout's worth of counters: what 10
//! million certificates leave behind (365 days, 30,000 facilities, 5,000
//! batches, 700 districts, …: about 42,000 counters), then the statistics
//! document built 300 times; prints p50 and p99 of building it and of
//! serializing it to JSON, as the route does.
//!
//! Run: `cargo bench -p divoc-insight --bench stats`
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use divoc_insight::stats::{snapshot, StatsCache, StatsConfig};
use divoc_storage::{stats, Database, DbOptions};

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("stats.db"), DbOptions::default()).unwrap();
    let total: i64 = 10_000_000;
    let dims: [(&str, usize); 10] = [
        ("day", 365),
        ("programme", 3),
        ("vaccine", 10),
        ("dose", 3),
        ("batch", 5_000),
        ("facility", 30_000),
        ("district", 700),
        ("state", 36),
        ("gender", 3),
        ("age", 9),
    ];
    let started = Instant::now();
    for metric in [
        "certificates.issued",
        "certificates.revoked",
        "feedback.reports",
    ] {
        let scale = if metric == "certificates.issued" {
            1
        } else {
            500
        };
        for (dim, n) in dims {
            let chunk: Vec<(String, i64)> = (0..n)
                .map(|i| (format!("{dim}-{i:05}"), total / scale / n as i64))
                .collect();
            db.write(move |tx| {
                for (key, v) in &chunk {
                    stats::add(tx, metric, dim, key, *v);
                }
                stats::add(tx, metric, "total", "all", total / scale);
                Ok(())
            })
            .wait()
            .unwrap();
        }
    }
    let counters = db.read(|r| stats::counts(r, "")).unwrap().len();
    eprintln!("{counters} counters written in {:?}", started.elapsed());

    let config = StatsConfig::default();
    let cache = StatsCache::new(db.clone(), config.clone());
    let mut refresh = Vec::new();
    for i in 0..30 {
        // A counted change, so that each refresh rebuilds.
        db.append_event("bench", &i.to_string(), serde_json::json!({}))
            .wait()
            .unwrap();
        let t = Instant::now();
        assert!(cache.refresh().unwrap());
        refresh.push(t.elapsed());
    }
    let mut request = Vec::new();
    let mut size = 0;
    for i in 0..20_000 {
        let t = Instant::now();
        let doc = cache.get(i % 2 == 0).unwrap();
        size = size.max(doc.len());
        request.push(t.elapsed());
    }
    refresh.sort();
    request.sort();
    let q =
        |v: &Vec<std::time::Duration>, q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    println!(
        "GET /v1/stats (from the cache): p50 {:.2?} p99 {:.2?} ({} KB)",
        q(&request, 0.50),
        q(&request, 0.99),
        size / 1024
    );
    println!(
        "background refresh (both documents): p50 {:.2?} p99 {:.2?}",
        q(&refresh, 0.50),
        q(&refresh, 0.99)
    );
    for public in [false, true] {
        let mut build = Vec::new();
        let mut json = Vec::new();
        let mut bytes = 0;
        for _ in 0..300 {
            let t = Instant::now();
            let doc = snapshot(&db, &config, public).unwrap();
            build.push(t.elapsed());
            let t = Instant::now();
            bytes = serde_json::to_vec(&doc).unwrap().len();
            json.push(t.elapsed());
        }
        build.sort();
        json.sort();
        let p = |v: &Vec<std::time::Duration>, q: f64| {
            v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
        };
        println!(
            "stats {}: build p50 {:.2?} p99 {:.2?}; + JSON p50 {:.2?} p99 {:.2?}; {} KB",
            if public { "public" } else { "full" },
            p(&build, 0.50),
            p(&build, 0.99),
            p(&json, 0.50),
            p(&json, 0.99),
            bytes / 1024
        );
    }
}
