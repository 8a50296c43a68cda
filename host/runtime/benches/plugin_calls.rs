//! Plugin call benchmarks against the real components in `target/plugins`
//! and `target/fixtures` (build them first; see conformance/fixtures/README.md).
//!
//! - `warm_call`: a call through the typed handle on a pooled warm instance
//!   (target ≤ 5 µs);
//! - `fresh_instance_call`: `warm_instances = 0`, so every call instantiates
//!   the component afresh (target ≤ 50 µs);
//! - swap latency: from renaming a new version into the watched directory to
//!   that version answering (target ≤ 1 s). This is a one-shot measurement,
//!   not a criterion loop, and prints min/median/max.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use divoc_runtime::types::identity::{Claim, Verification};
use divoc_runtime::types::{Identity, Recipient};
use divoc_runtime::{HostServices, LimitSettings, Runtime, RuntimeSettings, Watcher};

fn built(kind: &str, krate: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(kind)
        .join(krate);
    assert!(
        dir.join("plugin.toml").is_file(),
        "{} is missing: build the plugins and fixtures first",
        dir.display()
    );
    dir
}

fn read(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let manifest = std::fs::read(dir.join("plugin.toml")).unwrap();
    let wasm = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wasm"))
        .unwrap();
    (manifest, std::fs::read(wasm).unwrap())
}

fn runtime(limits: LimitSettings) -> Runtime {
    let mut settings = RuntimeSettings {
        limits,
        ..RuntimeSettings::default()
    };
    settings.engine.pool_instances = 64;
    let runtime = Runtime::new(settings, HostServices::isolated()).unwrap();
    for (kind, krate) in [("plugins", "policy-age-interval"), ("fixtures", "swap-v1")] {
        let dir = built(kind, krate);
        let (m, c) = read(&dir);
        runtime.load_component(&dir, &m, &c).unwrap();
    }
    runtime
}

fn query() -> divoc_runtime::types::eligibility::Query {
    divoc_runtime::types::eligibility::Query {
        recipient: Recipient {
            name: "A".into(),
            dob: Some("1990-05-01".into()),
            age: None,
            gender: None,
            nationality: None,
            identity: Identity {
                id_type: "national-id".into(),
                value: "1".into(),
            },
            contacts: Vec::new(),
            address: None,
        },
        program: "covid-19".into(),
        vaccine: None,
        dose: 1,
        date: "2024-03-01".into(),
        previous_doses: Vec::new(),
    }
}

fn claim(value: &str) -> Claim {
    Claim {
        id_type: "national-id".into(),
        value: value.into(),
        name: None,
        dob: None,
        challenge_id: None,
        challenge_response: None,
    }
}

fn calls(c: &mut Criterion, group_name: &str, warm_instances: usize) {
    let rt = runtime(LimitSettings {
        warm_instances,
        ..LimitSettings::default()
    });
    println!("pooling allocator: {}", rt.pooling());
    let mut group = c.benchmark_group(group_name);
    let q = query();
    group.bench_function("policy-age-interval/evaluate", |b| {
        b.iter(|| {
            let policy = rt.rollout_policy("policy-age-interval").unwrap();
            policy.evaluate(&q).unwrap()
        })
    });
    let cl = claim("bench");
    group.bench_function("swap/verify", |b| {
        b.iter(|| {
            let p = rt.identity_provider("swap").unwrap();
            p.verify(&cl).unwrap()
        })
    });
    group.finish();
}

fn warm_call(c: &mut Criterion) {
    calls(c, "warm_call", 16);
}

fn fresh_instance_call(c: &mut Criterion) {
    calls(c, "fresh_instance_call", 0);
}

/// Renames swap v1/v2 alternately into a watched directory and times until
/// a fresh handle answers from the new version.
fn swap_latency() {
    let v1 = read(&built("fixtures", "swap-v1"));
    let v2 = read(&built("fixtures", "swap-v2"));
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    let dir = plugins.join("swap");
    std::fs::create_dir_all(&dir).unwrap();
    let install = |(manifest, component): &(Vec<u8>, Vec<u8>)| {
        std::fs::write(dir.join(".swap.wasm.tmp"), component).unwrap();
        std::fs::rename(dir.join(".swap.wasm.tmp"), dir.join("swap.wasm")).unwrap();
        std::fs::write(dir.join(".plugin.toml.tmp"), manifest).unwrap();
        std::fs::rename(dir.join(".plugin.toml.tmp"), dir.join("plugin.toml")).unwrap();
    };
    install(&v1);
    let mut settings = RuntimeSettings::default();
    settings.engine.pool_instances = 64;
    let rt = Runtime::new(settings, HostServices::isolated()).unwrap();
    rt.reload_dir(&plugins);
    let _watcher = Watcher::start(rt.clone(), &plugins).unwrap();

    let rounds = 20;
    let mut latencies = Vec::new();
    let mut reload_only = Vec::new();
    for round in 0..rounds {
        let (next, prefix) = if round % 2 == 0 {
            (&v2, "v2:")
        } else {
            (&v1, "v1:")
        };
        // Let the watcher settle so each round starts from a quiet directory.
        std::thread::sleep(Duration::from_millis(300));
        let landed = Instant::now();
        install(next);
        loop {
            let answer = rt
                .identity_provider("swap")
                .unwrap()
                .verify(&claim("p"))
                .unwrap();
            if matches!(&answer, Verification::Verified(v) if v.normalized_id.starts_with(prefix)) {
                break;
            }
            assert!(
                landed.elapsed() < Duration::from_secs(10),
                "swap did not happen"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        latencies.push(landed.elapsed());
    }
    // The reload alone (compile + checks + smoke test), without the watcher's
    // debounce, to show what bounds the latency.
    drop(_watcher);
    for round in 0..6 {
        install(if round % 2 == 0 { &v2 } else { &v1 });
        let t = Instant::now();
        let report = rt.reload_dir(&plugins);
        assert_eq!(report.loaded.len(), 1, "{report:?}");
        reload_only.push(t.elapsed());
    }
    let stats = |v: &mut Vec<Duration>| {
        v.sort();
        format!(
            "min {:.1} ms, median {:.1} ms, max {:.1} ms (n = {})",
            v[0].as_secs_f64() * 1e3,
            v[v.len() / 2].as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3,
            v.len()
        )
    };
    println!(
        "swap_latency/watcher (file renamed -> new version answers): {}",
        stats(&mut latencies)
    );
    println!(
        "swap_latency/reload_dir only (no debounce): {}",
        stats(&mut reload_only)
    );
}

criterion_group!(benches, warm_call, fresh_instance_call);

fn main() {
    benches();
    // `cargo bench -- <filter>` passes the filter; run the one-shot swap
    // measurement unless a filter excludes it.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.as_deref().is_none_or(|f| "swap_latency".contains(f)) {
        swap_latency();
    }
    Criterion::default().configure_from_args().final_summary();
}
