//! The plugin's configuration section (`divoc:plugin/config`).

use serde::de::DeserializeOwned;

use crate::bindings::divoc::plugin::config as raw;
use crate::Error;

/// Deserializes the whole configuration section into `T`.
///
/// Use `#[serde(default)]` on fields the operator may omit. A section that
/// does not match `T` yields [`Error::Internal`] naming the problem (the
/// operator's configuration is wrong, not the caller's input).
pub fn load<T: DeserializeOwned>() -> Result<T, Error> {
    let json = raw::get_json();
    parse(&json)
}

/// Parses a configuration JSON object into `T` (what [`load`] does after
/// asking the host), usable in host-side unit tests.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, Error> {
    serde_json::from_str(json)
        .map_err(|e| Error::internal(format!("invalid plugin configuration: {e}")))
}

/// A single top-level value rendered as a string (strings unquoted, other
/// values as JSON), or `None`.
pub fn get(key: &str) -> Option<String> {
    raw::get(key)
}

/// A single top-level value parsed with [`str::parse`], or `default` when it
/// is absent. A value that does not parse is an error.
pub fn get_or<T: core::str::FromStr>(key: &str, default: T) -> Result<T, Error> {
    match raw::get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| Error::internal(format!("invalid plugin configuration: `{key}` = {v:?}"))),
    }
}

/// The whole section as a JSON object string (`{}` when there is none).
pub fn json() -> String {
    raw::get_json()
}
