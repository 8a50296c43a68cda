//! Hot swap under load: versions of `swap` replaced while threads call it.
//! Every call must succeed and be answered by exactly one version, and the
//! answer must come from the version the caller's handle reports.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use divoc_runtime::types::identity::Verification;
use divoc_runtime::{Runtime, Watcher};

use crate::faults::install;
use crate::support;

struct Versions {
    v1: (Vec<u8>, Vec<u8>),
    v2: (Vec<u8>, Vec<u8>),
}

impl Versions {
    fn read() -> Versions {
        Versions {
            v1: support::read_plugin(&support::fixture_dir("swap-v1")),
            v2: support::read_plugin(&support::fixture_dir("swap-v2")),
        }
    }

    /// Installs version 1 or 2 into `dir`.
    fn install(&self, dir: &Path, version: u8) {
        let (manifest, component) = if version == 1 { &self.v1 } else { &self.v2 };
        install(dir, component, manifest, "swap.wasm");
    }
}

/// What the caller threads saw.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    v1: AtomicU64,
    v2: AtomicU64,
    failures: parking_lot::Mutex<Vec<String>>,
}

/// One call through a fresh handle; checks the answer against the version
/// the handle pinned.
fn call_once(runtime: &Runtime, value: &str, tally: &Tally) {
    tally.calls.fetch_add(1, Ordering::Relaxed);
    let fail = |m: String| tally.failures.lock().push(m);
    let handle = match runtime.identity_provider("swap") {
        Ok(h) => h,
        Err(e) => return fail(format!("no handle: {e}")),
    };
    let version = handle.info().version.clone();
    let answer = match handle.verify(&support::claim("national-id", value)) {
        Ok(Verification::Verified(v)) => v.normalized_id,
        Ok(other) => return fail(format!("{value}: unexpected {other:?}")),
        Err(e) => return fail(format!("{value}: {e}")),
    };
    match (answer.strip_prefix("v1:"), answer.strip_prefix("v2:")) {
        (Some(rest), None) if rest == value && version == "1.0.0" => {
            tally.v1.fetch_add(1, Ordering::Relaxed);
        }
        (None, Some(rest)) if rest == value && version == "2.0.0" => {
            tally.v2.fetch_add(1, Ordering::Relaxed);
        }
        _ => fail(format!("{value}: `{answer}` from version {version}")),
    }
}

fn start_callers(
    runtime: &Runtime,
    threads: usize,
    min_calls_each: u64,
    stop: &Arc<AtomicBool>,
    tally: &Arc<Tally>,
) -> Vec<JoinHandle<()>> {
    (0..threads)
        .map(|t| {
            let (runtime, stop, tally) = (runtime.clone(), stop.clone(), tally.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while i < min_calls_each || !stop.load(Ordering::Relaxed) {
                    call_once(&runtime, &format!("t{t}-{i}"), &tally);
                    i += 1;
                }
            })
        })
        .collect()
}

fn swap_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    let dir = plugins.join("swap");
    support::copy_plugin(&support::fixture_dir("swap-v1"), &dir, |m| m);
    (tmp, plugins, dir)
}

#[test]
fn hot_swap_under_load_with_explicit_reloads() {
    let _load = support::exclusive();
    const THREADS: usize = 8;
    const SWAPS: usize = 24;
    let versions = Versions::read();
    let (_tmp, plugins, dir) = swap_dir();
    let runtime = support::runtime(support::settings());
    assert_eq!(runtime.reload_dir(&plugins).loaded, vec!["swap@1.0.0"]);

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let callers = start_callers(&runtime, THREADS, 300, &stop, &tally);
    let started = Instant::now();
    let mut last = 1;
    for swap in 0..SWAPS {
        let next = if swap % 2 == 0 { 2 } else { 1 };
        versions.install(&dir, next);
        let report = runtime.reload_dir(&plugins);
        assert_eq!(
            report.loaded,
            vec![format!("swap@{next}.0.0")],
            "{report:?}"
        );
        assert!(report.rejected.is_empty(), "{report:?}");
        last = next;
        // Let the callers run on this version for a moment.
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().unwrap();
    }
    let calls = tally.calls.load(Ordering::Relaxed);
    let (v1, v2) = (
        tally.v1.load(Ordering::Relaxed),
        tally.v2.load(Ordering::Relaxed),
    );
    println!(
        "{SWAPS} swaps, {calls} calls from {THREADS} threads in {:?}: v1 {v1}, v2 {v2}",
        started.elapsed()
    );
    let failures = tally.failures.lock();
    assert!(
        failures.is_empty(),
        "{} failed calls, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(calls >= 2000, "only {calls} calls");
    assert_eq!(v1 + v2, calls);
    assert!(v1 > 0 && v2 > 0, "v1 {v1}, v2 {v2}");
    let status = runtime.status();
    assert_eq!(status.len(), 1);
    let info = status[0].info.as_ref().unwrap();
    assert_eq!(info.version, format!("{last}.0.0"));
    assert!(status[0].last_rejection.is_none());
}

#[test]
fn hot_swap_through_the_directory_watcher() {
    let _load = support::exclusive();
    const SWAPS: usize = 6;
    let versions = Versions::read();
    let (_tmp, plugins, dir) = swap_dir();
    let runtime = support::runtime(support::settings());
    assert_eq!(runtime.reload_dir(&plugins).loaded, vec!["swap@1.0.0"]);
    let _watcher = Watcher::start(runtime.clone(), &plugins).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let callers = start_callers(&runtime, 2, 0, &stop, &tally);
    let mut latencies = Vec::new();
    for swap in 0..SWAPS {
        let next = if swap % 2 == 0 { 2 } else { 1 };
        let prefix = format!("v{next}:");
        let landed = Instant::now();
        versions.install(&dir, next);
        // Poll until a fresh handle answers from the new version.
        loop {
            let answer = runtime
                .identity_provider("swap")
                .unwrap()
                .verify(&support::claim("national-id", "probe"))
                .unwrap();
            if matches!(&answer, Verification::Verified(v) if v.normalized_id.starts_with(&prefix))
            {
                break;
            }
            assert!(
                landed.elapsed() < Duration::from_secs(5),
                "version {next} not serving 5 s after it landed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(landed.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().unwrap();
    }
    latencies.sort();
    println!(
        "watcher swap latency (debug build): min {:?}, median {:?}, max {:?}",
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    let failures = tally.failures.lock();
    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(tally.v1.load(Ordering::Relaxed) > 0 && tally.v2.load(Ordering::Relaxed) > 0);
    assert_eq!(runtime.info("swap").unwrap().version, "1.0.0");
}
