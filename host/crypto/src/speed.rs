//! The raw Ed25519 rate of this machine: what signing and verifying alone
//! cost, so that certificate throughput can be read against it (`divoc
//! bench` prints both from the same run).
//!
//! The message is 64 bytes, the size of the `eddsa-jcs-2022` hash data
//! ([`crate::data_integrity::hash_data`]), and verification uses
//! `verify_strict`, as [`crate::data_integrity::verify_proof`] does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer as _, SigningKey};
use rand::rngs::OsRng;

/// Operations per second, summed over the threads that ran them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ed25519Rates {
    /// Threads that ran at the same time.
    pub threads: usize,
    /// Signatures per second.
    pub sign_per_s: f64,
    /// Strict verifications per second.
    pub verify_per_s: f64,
}

/// Signs, then verifies, on `threads` threads at once for about `duration`
/// each, and returns the summed rates.
pub fn ed25519_rates(threads: usize, duration: Duration) -> Ed25519Rates {
    let threads = threads.max(1);
    let key = SigningKey::generate(&mut OsRng);
    let public = key.verifying_key();
    let msg = [0x5au8; 64];
    let signature = key.sign(&msg);
    let sign_per_s = run(threads, duration, || {
        std::hint::black_box(key.sign(std::hint::black_box(&msg)));
        true
    });
    let verify_per_s = run(threads, duration, || {
        public
            .verify_strict(std::hint::black_box(&msg), &signature)
            .is_ok()
    });
    Ed25519Rates {
        threads,
        sign_per_s,
        verify_per_s,
    }
}

/// Runs `op` on `threads` threads until `duration` has passed; operations
/// per second in total. An `op` returning `false` (a failed verification)
/// is not counted.
fn run(threads: usize, duration: Duration, op: impl Fn() -> bool + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..16 {
                            n += u64::from(op());
                        }
                    }
                    n
                })
            })
            .collect();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_positive() {
        let r = ed25519_rates(1, Duration::from_millis(20));
        assert_eq!(r.threads, 1);
        assert!(r.sign_per_s > 0.0 && r.verify_per_s > 0.0, "{r:?}");
    }
}
