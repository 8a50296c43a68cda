//! Cryptographically secure randomness from the host (`divoc:plugin/random`).

pub use crate::bindings::divoc::plugin::random::get_random_bytes;

/// `len` random bytes (at most 65536 per host call; longer requests are split).
pub fn bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let chunk = (len - out.len()).min(65536);
        // `chunk` is at most 65536, so it fits in u32.
        out.extend(get_random_bytes(chunk as u32));
    }
    out
}

/// A random `u64`.
pub fn u64() -> u64 {
    let mut buf = [0u8; 8];
    for (dst, src) in buf.iter_mut().zip(get_random_bytes(8)) {
        *dst = src;
    }
    u64::from_le_bytes(buf)
}

/// A uniformly random decimal string of `digits` digits (e.g. an OTP).
pub fn digits(digits: usize) -> String {
    let mut s = String::with_capacity(digits);
    while s.len() < digits {
        for b in get_random_bytes(32) {
            // Rejection sampling: 250 = 25 * 10, so bytes below it are unbiased.
            if b < 250 && s.len() < digits {
                s.push(char::from(b'0' + b % 10));
            }
        }
    }
    s
}

/// `len` random bytes, lower-case hex encoded.
pub fn hex(len: usize) -> String {
    bytes(len).iter().map(|b| format!("{b:02x}")).collect()
}
