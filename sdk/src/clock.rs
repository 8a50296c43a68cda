//! Wall-clock time from the host (`divoc:plugin/clock`).

pub use crate::bindings::divoc::plugin::clock::{now, Datetime};

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    now().seconds
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    let t = now();
    t.seconds
        .saturating_mul(1000)
        .saturating_add(u64::from(t.nanoseconds / 1_000_000))
}
