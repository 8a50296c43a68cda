//! Group commit throughput: acknowledged one-event writes per second, issued
//! one at a time from a single thread (every write pays its own fsync)
//! versus one write per call from 64 threads (the writer groups them).
//!
//! Run: `cargo bench -p divoc-storage --bench group_commit`
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use divoc_storage::{events, Database, DbOptions};
use serde_json::json;

/// Writes per benchmark iteration; a multiple of THREADS.
const WRITES: usize = 256;
const THREADS: usize = 64;

fn write_one(db: &Database, i: usize) {
    db.write(move |tx| events::append_event(tx, "bench", &i.to_string(), &json!({ "i": i })))
        .wait()
        .unwrap();
}

fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("group_commit");
    // fsync-bound: few, long samples are enough and keep the run short.
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(WRITES as u64));

    let seq_db = Database::open(&dir.path().join("seq.db"), DbOptions::default()).unwrap();
    g.bench_function("sequential_1_thread", |b| {
        b.iter(|| {
            for i in 0..WRITES {
                write_one(&seq_db, i);
            }
        })
    });

    let par_db = Database::open(&dir.path().join("par.db"), DbOptions::default()).unwrap();
    g.bench_function("concurrent_64_threads", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let db = &par_db;
                    s.spawn(move || {
                        for i in 0..WRITES / THREADS {
                            write_one(db, t * 1000 + i);
                        }
                    });
                }
            })
        })
    });
    g.finish();

    for (name, db) in [("sequential", &seq_db), ("concurrent_64", &par_db)] {
        let s = db.stats();
        eprintln!(
            "{name}: {} writes in {} commits ({:.1} writes/commit, largest group {})",
            s.writes,
            s.commits,
            s.writes as f64 / s.commits.max(1) as f64,
            s.largest_group
        );
    }
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
