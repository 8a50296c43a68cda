//! How a signed credential is stored: its JSON text compressed with
//! [zstd] and a dictionary trained on credentials, shipped in this crate.
//!
//! A credential is ~2 KB of JSON of which most is the same in every
//! credential (contexts, types, key names, status list URLs, the issuer).
//! Alone, 2 KB is too little for a compressor to learn from; with a
//! dictionary that already holds those strings, zstd keeps only what
//! differs (names, dates, ids, the 64-byte signature). See
//! docs/PERFORMANCE.md, § Storage footprint, for the sizes.
//!
//! # Stored form
//!
//! `codec byte ‖ body`:
//!
//! | codec | body                                                              |
//! |-------|-------------------------------------------------------------------|
//! | `0`   | the JSON text itself (UTF-8), for texts the dictionary cannot shrink |
//! | `1`   | a zstd frame (RFC 8878) compressed with dictionary v1, no dictionary id in the frame |
//!
//! The text is stored exactly as it was serialized when issued, so it comes
//! back byte for byte and its proof still verifies. A new dictionary gets a
//! new codec number and leaves the old one here: rows written with it must
//! still read.
//!
//! [zstd]: https://www.rfc-editor.org/rfc/rfc8878

use std::sync::OnceLock;

use parking_lot::Mutex;
use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::zstd_safe::CParameter;

use crate::error::{Result, StorageError};

/// Dictionary v1, trained by `cargo run -p divoc-certificates --example
/// train_credential_dictionary` (see that file for the samples).
const DICTIONARY_V1: &[u8] = include_bytes!("../dictionaries/credential-v1.zdict");

/// Stored as the text itself.
const PLAIN: u8 = 0;
/// zstd with [`DICTIONARY_V1`].
const ZSTD_V1: u8 = 1;

/// zstd level: measured in docs/PERFORMANCE.md (§ Storage footprint);
/// higher levels shrink credentials by a few bytes for several times the
/// CPU, and compression runs once per issuance on the request's thread.
const LEVEL: i32 = 6;

/// Largest text a stored credential may decompress to. Ours are ~2 KB; the
/// bound keeps a damaged row from allocating without limit.
const MAX_TEXT: usize = 1 << 20;

fn encoder_dictionary() -> &'static EncoderDictionary<'static> {
    static D: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    D.get_or_init(|| EncoderDictionary::copy(DICTIONARY_V1, LEVEL))
}

fn decoder_dictionary() -> &'static DecoderDictionary<'static> {
    static D: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    D.get_or_init(|| DecoderDictionary::copy(DICTIONARY_V1))
}

/// Contexts kept for reuse. A compression context is hundreds of KB of
/// tables; one per thread would grow with the blocking pool, so a few are
/// pooled and any extra made under a burst is dropped after use.
const POOLED: usize = 8;

static COMPRESSORS: Mutex<Vec<zstd::bulk::Compressor<'static>>> =
    parking_lot::const_mutex(Vec::new());
static DECOMPRESSORS: Mutex<Vec<zstd::bulk::Decompressor<'static>>> =
    parking_lot::const_mutex(Vec::new());

fn give_back<T>(pool: &Mutex<Vec<T>>, item: T) {
    let mut pool = pool.lock();
    if pool.len() < POOLED {
        pool.push(item);
    }
}

fn codec_error(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::InvalidArgument(format!("stored credential: {what}: {e}"))
}

/// The stored form of a credential's JSON text.
pub fn encode(text: &str) -> Result<Vec<u8>> {
    let pooled = COMPRESSORS.lock().pop();
    let mut c = match pooled {
        Some(c) => c,
        None => {
            let mut c = zstd::bulk::Compressor::with_prepared_dictionary(encoder_dictionary())
                .map_err(|e| codec_error("compressor", e))?;
            // The codec byte names the dictionary; 4 bytes per row saved.
            c.set_parameter(CParameter::DictIdFlag(false))
                .map_err(|e| codec_error("compressor", e))?;
            c
        }
    };
    let body = c.compress(text.as_bytes());
    give_back(&COMPRESSORS, c);
    let body = body.map_err(|e| codec_error("compression", e))?;
    let mut out = Vec::with_capacity(body.len().min(text.len()) + 1);
    if body.len() < text.len() {
        out.push(ZSTD_V1);
        out.extend_from_slice(&body);
    } else {
        out.push(PLAIN);
        out.extend_from_slice(text.as_bytes());
    }
    Ok(out)
}

/// The JSON text of a stored credential, exactly as it was issued.
pub fn decode(stored: &[u8]) -> Result<String> {
    let (&codec, body) = stored
        .split_first()
        .ok_or_else(|| codec_error("empty", "no codec byte"))?;
    let bytes = match codec {
        PLAIN => body.to_vec(),
        ZSTD_V1 => {
            let size = zstd::zstd_safe::get_frame_content_size(body)
                .map_err(|e| codec_error("frame", format!("{e:?}")))?
                .ok_or_else(|| codec_error("frame", "no content size"))?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s <= MAX_TEXT)
                .ok_or_else(|| codec_error("frame", format!("{size} bytes is too large")))?;
            let pooled = DECOMPRESSORS.lock().pop();
            let mut d = match pooled {
                Some(d) => d,
                None => zstd::bulk::Decompressor::with_prepared_dictionary(decoder_dictionary())
                    .map_err(|e| codec_error("decompressor", e))?,
            };
            let text = d.decompress(body, size);
            give_back(&DECOMPRESSORS, d);
            text.map_err(|e| codec_error("decompression", e))?
        }
        other => return Err(codec_error("codec", format!("unknown codec {other}"))),
    };
    String::from_utf8(bytes).map_err(|e| codec_error("text", e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../tests/cases/credential-sample.json");

    #[test]
    fn a_credential_comes_back_byte_for_byte_and_much_smaller() {
        let text = SAMPLE.trim_end();
        let stored = encode(text).unwrap();
        assert_eq!(stored[0], ZSTD_V1);
        assert!(
            stored.len() * 3 < text.len(),
            "{} bytes stored for {}",
            stored.len(),
            text.len()
        );
        assert_eq!(decode(&stored).unwrap(), text);
    }

    #[test]
    fn text_the_dictionary_cannot_shrink_is_stored_plain() {
        for text in ["", "{}", "x"] {
            let stored = encode(text).unwrap();
            assert_eq!(stored[0], PLAIN, "{text:?}");
            assert_eq!(decode(&stored).unwrap(), text);
        }
    }

    #[test]
    fn any_text_round_trips() {
        // Unicode, escapes, long repeats, random bytes as text.
        let mut s = String::new();
        for i in 0..2000u32 {
            s.push(char::from_u32(0x20 + (i * 7919) % 0x2000).unwrap_or('?'));
            let text = s.clone();
            assert_eq!(decode(&encode(&text).unwrap()).unwrap(), text);
            if i % 97 == 0 {
                s.push_str(&"ab\"\\\u{0}é".repeat(i as usize % 13));
            }
        }
    }

    #[test]
    fn damaged_rows_are_errors_not_panics() {
        let stored = encode(SAMPLE.trim_end()).unwrap();
        assert!(decode(&[]).is_err());
        assert!(decode(&[9, 1, 2]).is_err());
        assert!(decode(&stored[..stored.len() / 2]).is_err());
        let mut flipped = stored.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        // Either an error or (the frame has no checksum) different text:
        // never the original, never a panic.
        assert_ne!(decode(&flipped).ok().as_deref(), Some(SAMPLE.trim_end()));
        assert!(decode(&[ZSTD_V1, 0x28, 0xb5]).is_err());
    }
}
