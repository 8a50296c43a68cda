//! Logging into the host's log (`divoc:plugin/log`).
//!
//! Messages must not contain personal data. Use the functions, or the
//! `format!`-style macros [`trace!`](crate::trace), [`debug!`](crate::debug),
//! [`info!`](crate::info), [`warn!`](crate::warn) and [`error!`](crate::error).

pub use crate::bindings::divoc::plugin::log::{log, Level};

/// Log at `trace` level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Log at `debug` level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Log at `info` level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Log at `warn` level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Log at `error` level.
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// `format!`-style logging at `trace` level.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Trace, &::std::format!($($arg)*)) };
}

/// `format!`-style logging at `debug` level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)*)) };
}

/// `format!`-style logging at `info` level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)*)) };
}

/// `format!`-style logging at `warn` level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)*)) };
}

/// `format!`-style logging at `error` level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)*)) };
}
