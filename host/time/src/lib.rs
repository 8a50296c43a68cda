//! Time for DIVOC-rs: an injectable [`Clock`], calendar [`Date`]s and
//! instants.
//!
//! Certificates and rollout carry two kinds of time: calendar dates (date of
//! birth, effective start/until, appointment days; ISO 8601 `YYYY-MM-DD`)
//! and instants (vaccination time, `validFrom`). Instants are accepted as
//! RFC 3339 date-times with any offset (`Z`, `+05:30`, `-05:00`), with or
//! without fractional seconds, and — as DIVOC's own clients send them — as
//! local date-times without a zone, read in the deployment's time zone
//! ([`Zone`]). Every instant is kept and written in UTC, which is what VC
//! 2.0 asks of `validFrom`/`validUntil` (an XML Schema `dateTimeStamp`,
//! <https://www.w3.org/TR/vc-data-model-2.0/#validity-period>).
//!
//! Parsing and calendar arithmetic are `jiff`'s; this crate only fixes which
//! forms are accepted and how instants are written.

#![deny(missing_docs)]

mod clock;
mod date;
mod instant;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use date::{parse_date, Date};
pub use instant::{format_millis, format_seconds, parse_instant, Zone, ZoneError};

/// Milliseconds per day.
pub const DAY_MS: i64 = 86_400_000;
