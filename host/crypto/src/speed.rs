//! The raw signature rates of this machine: what signing and verifying alone
//! cost, so that certificate throughput can be read against them (`divoc
//! bench` prints both from the same run).
//!
//! Ed25519: the message is 64 bytes, the size of the `eddsa-jcs-2022` hash
//! data ([`crate::data_integrity::hash_data`]), and verification uses
//! `verify_strict`, as [`crate::data_integrity::verify_proof`] does.
//!
//! ES256 (ECDSA P-256 with SHA-256): the message is 256 bytes, the size of
//! a COSE `Sig_structure` or a SMART Health Card JWS signing input (SHA-256
//! of it is under a microsecond either way). Signing and one verification
//! rate use the `p256` crate directly (RFC 6979 nonces, a parsed verifying
//! key; the [`crate::keys::es256`] keyring signs with it); a second
//! verification rate is the host's own [`crate::keys::es256::verify_es256`]
//! (`ring`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer as _, SigningKey};
use p256::ecdsa::signature::Verifier as _;
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

/// ES256 operations per second, summed over the threads that ran them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct P256Rates {
    /// Threads that ran at the same time.
    pub threads: usize,
    /// ECDSA P-256 (SHA-256) signatures per second.
    pub sign_per_s: f64,
    /// `p256` crate verifications per second.
    pub verify_per_s: f64,
    /// Verifications per second through
    /// [`crate::keys::es256::verify_es256`] (`ring`, the key parsed on each
    /// call), which the ES256 keyring and the offline verifier use.
    pub host_verify_per_s: f64,
}

/// [`ed25519_rates`]' counterpart for ES256: signs, then verifies (with the
/// `p256` crate, then with the host's [`crate::keys::es256::verify_es256`]),
/// a 256-byte message on `threads` threads at once for about `duration`
/// each.
pub fn p256_rates(threads: usize, duration: Duration) -> P256Rates {
    let threads = threads.max(1);
    let key = p256::ecdsa::SigningKey::random(&mut OsRng);
    let public = *key.verifying_key();
    let msg = [0x5au8; 256];
    let signature: p256::ecdsa::Signature = key.sign(&msg);
    let sign_per_s = run(threads, duration, || {
        let s: p256::ecdsa::Signature = key.sign(std::hint::black_box(&msg));
        std::hint::black_box(s);
        true
    });
    let verify_per_s = run(threads, duration, || {
        public
            .verify(std::hint::black_box(&msg), &signature)
            .is_ok()
    });
    let sec1 = public.to_encoded_point(false);
    let signature = signature.to_bytes();
    let host_verify_per_s = run(threads, duration, || {
        crate::keys::es256::verify_es256(sec1.as_bytes(), std::hint::black_box(&msg), &signature)
    });
    P256Rates {
        threads,
        sign_per_s,
        verify_per_s,
        host_verify_per_s,
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

    #[test]
    fn p256_rates_are_positive() {
        let r = p256_rates(1, Duration::from_millis(20));
        assert_eq!(r.threads, 1);
        assert!(
            r.sign_per_s > 0.0 && r.verify_per_s > 0.0 && r.host_verify_per_s > 0.0,
            "{r:?}"
        );
    }
}
