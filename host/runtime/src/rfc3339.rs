//! Times in `GET /v1/plugins` as RFC 3339 strings (`2026-12-02T16:30:00.123Z`),
//! not serde's `{secs_since_epoch, nanos_since_epoch}`.

use std::time::SystemTime;

use serde::Serializer;

/// Serializes a `SystemTime` as an RFC 3339 UTC date-time, to the millisecond.
pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[derive(serde::Serialize)]
    struct At {
        #[serde(serialize_with = "super::serialize")]
        at: SystemTime,
    }

    #[test]
    fn times_are_rfc3339() {
        let at = At {
            at: UNIX_EPOCH + Duration::from_millis(1_796_083_200_123),
        };
        assert_eq!(
            serde_json::to_string(&at).unwrap(),
            r#"{"at":"2026-12-01T00:00:00.123Z"}"#
        );
    }
}
