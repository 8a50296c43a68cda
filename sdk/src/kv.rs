//! The plugin-private key/value store (`divoc:plugin/kv`).

use serde::{de::DeserializeOwned, Serialize};

pub use crate::bindings::divoc::plugin::kv::{delete, get, list_keys, set};
use crate::Error;

/// Reads a UTF-8 string value.
pub fn get_string(key: &str) -> Result<Option<String>, Error> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::internal(format!("kv value for {key:?} is not UTF-8"))),
    }
}

/// Writes a string value.
pub fn set_string(key: &str, value: &str) -> Result<(), Error> {
    set(key, value.as_bytes())
}

/// Reads a JSON value and deserializes it.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::internal(format!("kv value for {key:?} is not valid JSON: {e}"))),
    }
}

/// Serializes a value as JSON and writes it.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| Error::internal(format!("cannot serialize kv value: {e}")))?;
    set(key, &bytes)
}

/// Reads a little-endian `u64` counter (0 when absent).
pub fn get_u64(key: &str) -> Result<u64, Error> {
    match get(key)? {
        None => Ok(0),
        Some(bytes) => {
            let arr: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| Error::internal(format!("kv value for {key:?} is not a u64")))?;
            Ok(u64::from_le_bytes(arr))
        }
    }
}

/// Writes a little-endian `u64` counter.
pub fn set_u64(key: &str, value: u64) -> Result<(), Error> {
    set(key, &value.to_le_bytes())
}

/// Adds `delta` to a `u64` counter and returns the new value.
pub fn increment(key: &str, delta: u64) -> Result<u64, Error> {
    let value = get_u64(key)?.saturating_add(delta);
    set_u64(key, value)?;
    Ok(value)
}
