//! DHIS2 Web API details: identifiers, authentication encoding, request
//! bodies and what an answer means for the host's retry logic.
//!
//! References are to the DHIS2 developer documentation ("Web API"):
//! "Identifier schemes" (UIDs), "Data values" → "Sending data values" and
//! "Import summaries" (`/api/dataValueSets`), "Tracker" → "Tracker Import"
//! and "Import Summary" (`/api/tracker`).

use divoc_sdk::Error;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Whether `s` is a DHIS2 UID: 11 alphanumeric characters, the first a
/// letter ("Identifier schemes").
pub fn is_uid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11 && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
}

const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A UID for a tracker event, the same every time it is derived, so a
/// replayed batch updates the events it created instead of duplicating
/// them (the tracker importer creates an object whose client-supplied UID
/// is new and updates one it knows, under `CREATE_AND_UPDATE`). Derived
/// from the event's sequence only: no identifier of a person or
/// certificate goes into it.
pub fn event_uid(namespace: &str, kind: &str, sequence: u64) -> String {
    let mut h = Sha256::new();
    h.update(b"divoc-dhis2-event\0");
    h.update(namespace.as_bytes());
    h.update(b"\0");
    h.update(kind.as_bytes());
    h.update(b"\0");
    h.update(sequence.to_be_bytes());
    let digest = h.finalize();
    let mut uid = String::with_capacity(11);
    uid.push(char::from(LETTERS[usize::from(digest[0]) % LETTERS.len()]));
    for b in &digest[1..11] {
        uid.push(char::from(ALNUM[usize::from(*b) % ALNUM.len()]));
    }
    uid
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4), for Basic authentication.
pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What an aggregate import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCount {
    pub imported: u64,
    pub updated: u64,
    pub ignored: u64,
    pub deleted: u64,
}

/// Cuts DHIS2's text for an error message; its messages name metadata
/// UIDs, periods and values (counts here), never people.
fn clip(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// The HTTP outcomes that are not an import summary at all.
fn http_error(status: u16, body: &[u8], what: &str) -> Error {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(clip))
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    match status {
        // Busy, overloaded or down: the host retries with back-off.
        408 | 429 | 500..=599 => {
            Error::unavailable(format!("DHIS2 {what}: HTTP {status}{message}"))
        }
        // The runtime follows no redirects; DHIS2 redirects unauthenticated
        // browser-style requests to its login page.
        300..=399 => Error::rejected(format!(
            "DHIS2 {what}: HTTP {status} redirect (check url and the credentials)"
        )),
        401 | 403 => Error::rejected(format!(
            "DHIS2 {what}: HTTP {status}, the credentials were refused or lack authority{message}"
        )),
        _ => Error::rejected(format!("DHIS2 {what}: HTTP {status}{message}")),
    }
}

fn severity(status: &str) -> u8 {
    match status.to_ascii_uppercase().as_str() {
        "ERROR" => 2,
        "WARNING" => 1,
        _ => 0,
    }
}

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Reads the answer to `POST /api/dataValueSets`.
///
/// DHIS2 answers an `ImportSummary`, bare (older versions, and the test
/// double) or wrapped in a web message under `response` (2.36+), with 200
/// when it was taken and 409 when it had conflicts ("Import summaries").
/// A status of `ERROR`, or any ignored value, means that the totals sent
/// did not all land: [`Error::Rejected`], so the events are not
/// acknowledged as handled.
pub fn data_value_summary(status: u16, body: &[u8]) -> Result<ImportCount, Error> {
    if !(200..300).contains(&status) && status != 409 {
        return Err(http_error(status, body, "data value import"));
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Err(Error::rejected(format!(
            "DHIS2 data value import: HTTP {status} without an import summary (check url)"
        )));
    };
    let summary = v.get("response").filter(|r| r.is_object()).unwrap_or(&v);
    let statuses: Vec<&str> = [v.get("status"), summary.get("status")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if statuses.is_empty() {
        return Err(Error::rejected(format!(
            "DHIS2 data value import: HTTP {status} without an import summary (check url)"
        )));
    }
    let counts = summary
        .get("importCount")
        .or_else(|| v.get("importCount"))
        .map(|c| ImportCount {
            imported: count(c, "imported"),
            updated: count(c, "updated"),
            ignored: count(c, "ignored"),
            deleted: count(c, "deleted"),
        })
        .unwrap_or_default();
    let worst = statuses.iter().map(|s| severity(s)).max().unwrap_or(0);
    if worst == 2 || counts.ignored > 0 || status == 409 {
        let conflicts: Vec<String> = summary
            .get("conflicts")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .take(3)
                    .filter_map(|c| c.get("value").and_then(Value::as_str))
                    .map(clip)
                    .collect()
            })
            .unwrap_or_default();
        let detail = if conflicts.is_empty() {
            summary
                .get("description")
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
                .map(clip)
                .unwrap_or_default()
        } else {
            conflicts.join("; ")
        };
        return Err(Error::rejected(format!(
            "DHIS2 data value import {}: {} imported, {} updated, {} ignored{}",
            statuses.join("/"),
            counts.imported,
            counts.updated,
            counts.ignored,
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            }
        )));
    }
    Ok(counts)
}

/// What a tracker import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    pub created: u64,
    pub updated: u64,
    pub ignored: u64,
}

/// Reads the answer to `POST /api/tracker?async=false` ("Tracker Import" →
/// "Import Summary"): `status` is `OK`, `WARNING` or `ERROR`, errors are in
/// `validationReport.errorReports`. With the default `atomicMode=ALL`, an
/// `ERROR` means nothing was stored.
pub fn tracker_summary(status: u16, body: &[u8]) -> Result<TrackerStats, Error> {
    if !(200..300).contains(&status) && status != 409 {
        return Err(http_error(status, body, "tracker import"));
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Err(Error::rejected(format!(
            "DHIS2 tracker import: HTTP {status} without an import report (check url)"
        )));
    };
    let Some(report_status) = v.get("status").and_then(Value::as_str) else {
        return Err(Error::rejected(format!(
            "DHIS2 tracker import: HTTP {status} without an import report (check url)"
        )));
    };
    let stats = v
        .get("stats")
        .map(|s| TrackerStats {
            created: count(s, "created"),
            updated: count(s, "updated"),
            ignored: count(s, "ignored"),
        })
        .unwrap_or_default();
    if severity(report_status) == 2 || status == 409 {
        let errors: Vec<String> = v
            .pointer("/validationReport/errorReports")
            .and_then(Value::as_array)
            .map(|es| {
                es.iter()
                    .take(3)
                    .map(|e| {
                        let code = e.get("errorCode").and_then(Value::as_str).unwrap_or("");
                        let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
                        clip(format!("{code} {msg}").trim())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let detail = if errors.is_empty() {
            v.get("message")
                .and_then(Value::as_str)
                .map(clip)
                .unwrap_or_default()
        } else {
            errors.join("; ")
        };
        return Err(Error::rejected(format!(
            "DHIS2 tracker import {report_status}{}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        )));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn uids() {
        assert!(is_uid("DiszpKrYNg8"));
        for bad in [
            "1iszpKrYNg8",
            "DiszpKrYNg",
            "DiszpKrYNg8x",
            "Disz-KrYNg8",
            "",
        ] {
            assert!(!is_uid(bad), "{bad}");
        }
        let a = event_uid("", "certificate.issued", 1);
        assert!(is_uid(&a), "{a}");
        assert_eq!(a, event_uid("", "certificate.issued", 1));
        assert_ne!(a, event_uid("", "certificate.issued", 2));
        assert_ne!(a, event_uid("other", "certificate.issued", 1));
        for s in 0..1000 {
            assert!(is_uid(&event_uid("n", "k", s)));
        }
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, out) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), out);
        }
    }

    #[test]
    fn data_value_summaries() {
        // Bare (older DHIS2) and wrapped (2.36+) successes.
        let ok = data_value_summary(
            200,
            &body(json!({"status": "OK", "importCount": {"imported": 2, "updated": 1, "ignored": 0, "deleted": 0}})),
        )
        .unwrap();
        assert_eq!((ok.imported, ok.updated), (2, 1));
        let ok = data_value_summary(
            200,
            &body(json!({"httpStatus": "OK", "status": "OK", "response": {
                "responseType": "ImportSummary", "status": "SUCCESS",
                "importCount": {"imported": 0, "updated": 3, "ignored": 0, "deleted": 0}}})),
        )
        .unwrap();
        assert_eq!(ok.updated, 3);
        // A warning without ignored values is taken.
        data_value_summary(
            200,
            &body(json!({"status": "WARNING", "importCount": {"imported": 1, "ignored": 0}})),
        )
        .unwrap();
        // ERROR, ignored values and 409 conflicts are refusals.
        let e = data_value_summary(
            409,
            &body(json!({"httpStatus": "Conflict", "status": "WARNING", "response": {
                "status": "WARNING", "importCount": {"imported": 0, "updated": 0, "ignored": 1, "deleted": 0},
                "conflicts": [{"object": "202604", "value": "Period: `202604` is after latest open future period"}]}})),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Rejected(m) if m.contains("latest open future period")),
            "{e:?}"
        );
        let e = data_value_summary(
            200,
            &body(json!({"status": "ERROR", "description": "Data set not found"})),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Rejected(m) if m.contains("Data set not found")),
            "{e:?}"
        );
        // Not a summary at all (a login page, a proxy).
        assert!(matches!(
            data_value_summary(200, b"<html>"),
            Err(Error::Rejected(_))
        ));
        assert!(matches!(
            data_value_summary(200, b"{}"),
            Err(Error::Rejected(_))
        ));
        // HTTP failures: retryable or not.
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(
                matches!(data_value_summary(s, b""), Err(Error::Unavailable(_))),
                "{s}"
            );
        }
        for s in [302, 400, 401, 403, 404] {
            assert!(
                matches!(data_value_summary(s, b""), Err(Error::Rejected(_))),
                "{s}"
            );
        }
        let e = data_value_summary(401, &body(json!({"message": "Unauthorized"}))).unwrap_err();
        assert!(e.message().contains("credentials"), "{e:?}");
    }

    #[test]
    fn tracker_summaries() {
        let ok = tracker_summary(
            200,
            &body(json!({"status": "OK", "validationReport": {"errorReports": []},
                         "stats": {"created": 2, "updated": 1, "deleted": 0, "ignored": 0, "total": 3}})),
        )
        .unwrap();
        assert_eq!((ok.created, ok.updated), (2, 1));
        let e = tracker_summary(
            409,
            &body(json!({"status": "ERROR", "validationReport": {"errorReports": [
                {"message": "Could not find OrganisationUnit: `abc`, linked to Event.", "errorCode": "E1011",
                 "trackerType": "EVENT", "uid": "x"}]}, "stats": {"ignored": 1}})),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Rejected(m) if m.contains("E1011")),
            "{e:?}"
        );
        assert!(matches!(
            tracker_summary(503, b""),
            Err(Error::Unavailable(_))
        ));
        assert!(matches!(
            tracker_summary(200, b"[]"),
            Err(Error::Rejected(_))
        ));
    }
}
