//! The QR text form of a SMART Health Card (SMART Health Cards Framework,
//! "Health Cards as QR Codes" and "Encoding QRs").
//!
//! The JWS is written after the `shc:/` prefix in numeric mode: each
//! character `c` becomes the two decimal digits of `ord(c) - 45` (45 is `-`,
//! the lowest character of a compact JWS; `z` gives 77).
//!
//! A JWS longer than [`MAX_SINGLE`] characters is split into balanced chunks of
//! at most [`MAX_CHUNK`] characters, each written `shc:/C/N/<digits>`, one per
//! line. The spec deprecates chunking (VCI 1.3.0, December 2022) and
//! recommends that new issuers keep cards small enough for one QR; a DIVOC
//! vaccination card is ~700 characters, so chunks appear only for unusually
//! long names or configuration values.

use divoc_sdk::Error;

/// The scheme prefix (IANA-registered `shc` URI scheme).
pub const PREFIX: &str = "shc:/";
/// "Any JWS longer than 1195 characters SHALL be split into chunks".
pub const MAX_SINGLE: usize = 1195;
/// "... chunks of length 1191 or smaller".
pub const MAX_CHUNK: usize = 1191;
/// Most chunks accepted on decode (the 64 KiB text bound allows ~27).
const MAX_CHUNKS: usize = 32;

/// The QR text of a compact JWS: one `shc:/…` line, or `shc:/C/N/…` lines
/// joined by `\n` when chunking is needed.
pub fn encode(jws: &str) -> Result<String, Error> {
    let len = jws.len();
    if len <= MAX_SINGLE {
        return Ok(format!("{PREFIX}{}", numeric(jws)?));
    }
    // Balanced chunks: "if a JWS is 1200 characters long, producers should
    // create two ~600 character chunks rather than a 1191 and a 9".
    let n = len.div_ceil(MAX_CHUNK);
    let size = len.div_ceil(n);
    let lines = jws
        .as_bytes()
        .chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            // A compact JWS is ASCII, so every byte chunk is valid UTF-8.
            let chunk =
                std::str::from_utf8(chunk).map_err(|_| Error::internal("the JWS is not ASCII"))?;
            Ok(format!("{PREFIX}{}/{n}/{}", i + 1, numeric(chunk)?))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(lines.join("\n"))
}

/// Numeric-mode digits of JWS characters (`ord(c) - 45`, two digits each).
pub fn numeric(text: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len() * 2);
    for b in text.bytes() {
        let v = b
            .checked_sub(45)
            .filter(|v| *v <= 99)
            .ok_or_else(|| Error::internal("a character outside the JWS alphabet"))?;
        out.push(char::from(b'0' + v / 10));
        out.push(char::from(b'0' + v % 10));
    }
    Ok(out)
}

/// Inverse of [`numeric`]; every pair must name a character a compact JWS
/// can hold (`-` .. `z`).
pub fn from_numeric(digits: &str) -> Result<String, Error> {
    let bytes = digits.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(2) {
        return Err(Error::invalid_input(
            "the shc:/ digits must be a non-empty, even-length sequence",
        ));
    }
    let mut out = String::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks(2) {
        let (hi, lo) = match pair {
            [hi @ b'0'..=b'9', lo @ b'0'..=b'9'] => (hi - b'0', lo - b'0'),
            _ => return Err(Error::invalid_input("the shc:/ payload is not all digits")),
        };
        let v = hi * 10 + lo;
        if v > b'z' - 45 {
            return Err(Error::invalid_input(
                "the shc:/ digits encode a character outside the JWS alphabet",
            ));
        }
        out.push(char::from(v + 45));
    }
    Ok(out)
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Whether the text looks like QR text (the `shc:/` scheme, any case).
pub fn is_qr_text(text: &str) -> bool {
    strip_prefix_ci(text, PREFIX).is_some()
}

/// The compact JWS carried by one `shc:/…` text, or by a set of
/// `shc:/C/N/…` chunks separated by whitespace, in any order.
pub fn decode(text: &str) -> Result<String, Error> {
    let lines: Vec<&str> = text.split_whitespace().collect();
    let mut bodies = Vec::with_capacity(lines.len());
    for line in &lines {
        let body = strip_prefix_ci(line, PREFIX)
            .ok_or_else(|| Error::invalid_input("every line must start with shc:/"))?;
        bodies.push(body);
    }
    match bodies.as_slice() {
        [] => Err(Error::invalid_input("no shc:/ text")),
        [single] if !single.contains('/') => from_numeric(single),
        _ => decode_chunks(&bodies),
    }
}

fn decode_chunks(bodies: &[&str]) -> Result<String, Error> {
    let bad = || Error::invalid_input("a chunk must read shc:/C/N/<digits> with 1 <= C <= N");
    let mut total = None;
    let mut parts: Vec<Option<String>> = Vec::new();
    for body in bodies {
        let mut it = body.splitn(3, '/');
        let (Some(c), Some(n), Some(digits)) = (it.next(), it.next(), it.next()) else {
            return Err(bad());
        };
        let parse = |s: &str| {
            (!s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<usize>().ok())
                .flatten()
        };
        let (c, n) = (parse(c).ok_or_else(bad)?, parse(n).ok_or_else(bad)?);
        if c == 0 || c > n || n > MAX_CHUNKS {
            return Err(bad());
        }
        match total {
            None => {
                total = Some(n);
                parts = vec![None; n];
            }
            Some(t) if t != n => {
                return Err(Error::invalid_input("the chunks disagree on their count"))
            }
            Some(_) => {}
        }
        let slot = parts.get_mut(c - 1).ok_or_else(bad)?;
        if slot.is_some() {
            return Err(Error::invalid_input("a chunk appears twice"));
        }
        *slot = Some(from_numeric(digits)?);
    }
    let mut jws = String::new();
    for part in parts {
        jws.push_str(&part.ok_or_else(|| Error::invalid_input("a chunk is missing"))?);
    }
    Ok(jws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_matches_the_spec_example() {
        // "'X' is encoded as 43, since Ord('X') is 88, and 88-45 is 43."
        assert_eq!(numeric("X").unwrap(), "43");
        assert_eq!(numeric("-.z").unwrap(), "000177");
        // The spec's sample starts `shc:/5676290952…`: `eyJ6a`, the start of
        // base64url(`{"zip"…`).
        assert_eq!(numeric("eyJ6a").unwrap(), "5676290952");
        assert_eq!(from_numeric("5676290952").unwrap(), "eyJ6a");
    }

    #[test]
    fn rejects_malformed_digits() {
        assert!(from_numeric("").is_err());
        assert!(from_numeric("123").is_err());
        assert!(from_numeric("78").is_err());
        assert!(from_numeric("1a").is_err());
        assert!(decode("shc:/56x6").is_err());
        assert!(decode("nope").is_err());
    }

    #[test]
    fn single_qr_round_trips() {
        let jws = "eyJhbGciOiJFUzI1NiJ9.abc-_.xyz";
        let text = encode(jws).unwrap();
        assert!(text.starts_with("shc:/56"));
        assert!(!text.contains('\n'));
        assert_eq!(decode(&text).unwrap(), jws);
        assert_eq!(decode(&text.to_uppercase()).unwrap(), jws);
    }

    #[test]
    fn long_jws_is_chunked_in_balanced_parts() {
        let jws = "a".repeat(1200);
        let text = encode(&jws).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("shc:/1/2/"));
        assert!(lines[1].starts_with("shc:/2/2/"));
        assert_eq!(lines[0].len(), "shc:/1/2/".len() + 1200);
        // Any order, any whitespace.
        let swapped = format!("{}\r\n{}", lines[1], lines[0]);
        assert_eq!(decode(&swapped).unwrap(), jws);
        assert_eq!(decode(&text).unwrap(), jws);
        // Exactly at the limit: one QR.
        assert_eq!(encode(&"a".repeat(MAX_SINGLE)).unwrap().lines().count(), 1);
        let three = encode(&"b".repeat(3000)).unwrap();
        assert_eq!(three.lines().count(), 3);
        assert!(three
            .lines()
            .all(|l| l.len() - "shc:/1/3/".len() <= 2 * MAX_CHUNK));
    }

    #[test]
    fn bad_chunk_sets_are_refused() {
        let c1 = format!("shc:/1/2/{}", numeric("ab").unwrap());
        let c2 = format!("shc:/2/2/{}", numeric("cd").unwrap());
        assert!(decode(&c1).is_err()); // missing chunk 2
        assert!(decode(&format!("{c1}\n{c1}")).is_err()); // duplicate
        assert!(decode(&format!("{c1}\nshc:/2/3/{}", numeric("cd").unwrap())).is_err());
        assert!(decode("shc:/0/1/5656").is_err());
        assert!(decode("shc:/3/2/5656").is_err());
        assert!(decode("shc:/1/99/5656").is_err());
        assert!(decode(&format!("{c1}\n{c2}\nfoo")).is_err());
        assert_eq!(decode(&format!("{c2} {c1}")).unwrap(), "abcd");
    }
}
