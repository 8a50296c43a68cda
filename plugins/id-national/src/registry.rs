//! The optional registry lookup: asks the operator's national ID registry
//! whether a validated number exists, and what it knows about its holder.
//!
//! Request (POST, the default): `{"id": "<normalized>", "id_type": "<type>"}`
//! with `content-type: application/json`, plus `"name"` and `"dob"` when
//! `registry_send_claim` is on and the claim carries them. With
//! `registry_method = "get"`: `GET <registry_url>?id=<normalized>` (the
//! number then appears in the registry's access logs; prefer POST).
//!
//! Answers:
//! - 200 with `{"found": true, "name": ..., "dob": ..., ...}` (`found` may be
//!   left out): verified, with the configured `registry_attributes`;
//!   `"match": false` rejects (for registries that compare the name and date
//!   of birth themselves);
//! - 200 with `{"found": false}`, or 404: rejected (no such number);
//! - 408, 429, 5xx, a network failure or a time-out: `unavailable`
//!   (retryable);
//! - any other status, or a 2xx whose body is not such a JSON object: an
//!   `internal` error for the operator (wrong URL, credentials or protocol).

use std::collections::BTreeMap;
use std::fmt;

use divoc_sdk::http::{Method, Request, Response};
use divoc_sdk::Error;
use serde::Deserialize;
use serde_json::{json, Value};

/// How the registry is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryMethod {
    #[default]
    Post,
    Get,
}

/// A configured value that must not reach a log: `{:?}` prints
/// `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The lookup part of the configuration, validated.
#[derive(Debug, Clone)]
pub struct Registry {
    pub url: String,
    pub method: RegistryMethod,
    pub timeout_ms: u32,
    /// Header values may be credentials too.
    pub headers: BTreeMap<String, Secret>,
    pub authorization: Option<Secret>,
    pub send_claim: bool,
    pub match_name: bool,
    pub match_dob: bool,
    pub attributes: Vec<String>,
}

/// The claim facts the registry's answer is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub name: Option<&'a str>,
    pub dob: Option<&'a str>,
}

/// What the registry said about a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Known; the attributes the registry vouches for.
    Found(Vec<(String, String)>),
    /// Not known to the registry.
    NotFound,
    /// Known, but the claim's name differs from the record.
    NameMismatch,
    /// Known, but the claim's date of birth differs from the record.
    DobMismatch,
    /// Known, but the registry itself says the claim's details do not match.
    DetailsMismatch,
}

/// Why the lookup gave no answer. Messages name statuses, never the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// 408, 429 or 5xx: the registry is busy or down (retryable).
    Status(u16),
    /// The request did not get through (network, time-out).
    Unreachable,
    /// The host refused the request: the origin is not granted.
    NotGranted(String),
    /// An answer the protocol does not allow (3xx, 4xx other than 404/408/429).
    Unexpected(u16),
    /// A 2xx whose body is not the documented JSON object.
    Malformed(&'static str),
}

impl From<LookupError> for Error {
    fn from(e: LookupError) -> Error {
        match e {
            LookupError::Status(s) => Error::unavailable(format!(
                "the ID registry is unavailable (HTTP {s}); try again later"
            )),
            LookupError::Unreachable => Error::unavailable(
                "the ID registry could not be reached (network error or time-out); try again later",
            ),
            LookupError::NotGranted(why) => Error::internal(format!(
                "the ID registry lookup was refused by the host ({why}); list the origin of \
                 `registry_url` under `[capabilities] http` in id-national's plugin.toml and in \
                 `[plugins.grants.id-national] http-origins`"
            )),
            LookupError::Unexpected(s) => Error::internal(format!(
                "the ID registry answered HTTP {s}; check `registry_url`, `authorization` and `registry_headers`"
            )),
            LookupError::Malformed(why) => {
                Error::internal(format!("the ID registry's answer is not understood: {why}"))
            }
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Registry {
    /// The request for one validated number.
    pub fn request(
        &self,
        id_type: &str,
        normalized: &str,
        facts: Facts<'_>,
    ) -> Result<Request, Error> {
        let mut req = match self.method {
            RegistryMethod::Post => {
                let mut body = json!({ "id": normalized, "id_type": id_type });
                if self.send_claim {
                    if let Some(name) = facts.name {
                        body["name"] = Value::String(name.to_string());
                    }
                    if let Some(dob) = facts.dob {
                        body["dob"] = Value::String(dob.to_string());
                    }
                }
                Request::new(Method::Post, self.url.clone()).json(&body)?
            }
            RegistryMethod::Get => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                let url = format!("{}{sep}id={}", self.url, percent_encode(normalized));
                Request::new(Method::Get, url)
            }
        };
        req = req.header("accept", "application/json");
        for (name, value) in &self.headers {
            req = req.header(name.clone(), value.0.clone());
        }
        if let Some(auth) = &self.authorization {
            req = req.header("authorization", auth.0.clone());
        }
        Ok(req.timeout_ms(self.timeout_ms))
    }

    /// Reads the registry's answer and matches it against the claim.
    pub fn interpret(&self, response: &Response, facts: Facts<'_>) -> Result<Outcome, LookupError> {
        match response.status {
            200..=299 => {}
            404 => return Ok(Outcome::NotFound),
            408 | 429 | 500..=599 => return Err(LookupError::Status(response.status)),
            other => return Err(LookupError::Unexpected(other)),
        }
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|_| LookupError::Malformed("the body is not JSON"))?;
        let Value::Object(record) = body else {
            return Err(LookupError::Malformed("the body is not a JSON object"));
        };
        match record.get("found") {
            None | Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Ok(Outcome::NotFound),
            Some(_) => return Err(LookupError::Malformed("`found` is not a boolean")),
        }
        match record.get("match") {
            None | Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Ok(Outcome::DetailsMismatch),
            Some(_) => return Err(LookupError::Malformed("`match` is not a boolean")),
        }
        let text = |key: &str| record.get(key).and_then(Value::as_str).map(str::trim);
        if self.match_name {
            if let (Some(claimed), Some(recorded)) = (facts.name, text("name")) {
                if !names_match(claimed, recorded) {
                    return Ok(Outcome::NameMismatch);
                }
            }
        }
        if self.match_dob {
            if let (Some(claimed), Some(recorded)) = (facts.dob, text("dob")) {
                if claimed.trim() != recorded {
                    return Ok(Outcome::DobMismatch);
                }
            }
        }
        let attributes = self
            .attributes
            .iter()
            .filter_map(|key| {
                let value = match record.get(key)? {
                    Value::String(s) => s.trim().to_string(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return None,
                };
                (!value.is_empty()).then(|| (key.clone(), value))
            })
            .collect();
        Ok(Outcome::Found(attributes))
    }

    /// Sends the request and reads the answer. Logs statuses, never the
    /// number or the registry's record.
    pub fn lookup(
        &self,
        id_type: &str,
        normalized: &str,
        facts: Facts<'_>,
    ) -> Result<Outcome, Error> {
        let request = self.request(id_type, normalized, facts)?;
        let outcome = match request.send() {
            Ok(response) => {
                divoc_sdk::debug!("ID registry answered HTTP {}", response.status);
                self.interpret(&response, facts)
            }
            // The host's own message may quote the URL (with the number, for
            // GET), so it is replaced rather than passed on.
            Err(Error::Rejected(why)) => Err(LookupError::NotGranted(why)),
            Err(_) => Err(LookupError::Unreachable),
        };
        outcome.map_err(|e| {
            let e = Error::from(e);
            divoc_sdk::warn!("ID registry lookup failed: {}", e.message());
            e
        })
    }
}

/// Names compare equal ignoring case and runs of whitespace.
pub fn names_match(a: &str, b: &str) -> bool {
    let canon = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    canon(a) == canon(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry {
            url: "https://registry.example.org/v1/lookup".into(),
            method: RegistryMethod::Post,
            timeout_ms: 3000,
            headers: BTreeMap::from([("x-client".into(), Secret("divoc".into()))]),
            authorization: Some(Secret("Bearer t".into())),
            send_claim: false,
            match_name: true,
            match_dob: true,
            attributes: vec!["name".into(), "dob".into()],
        }
    }

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    const NO_FACTS: Facts<'static> = Facts {
        name: None,
        dob: None,
    };

    fn body_json(req: &Request) -> Value {
        serde_json::from_slice(req.body.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn post_request_shape() {
        let facts = Facts {
            name: Some("Asha Rao"),
            dob: Some("1980-01-15"),
        };
        let req = registry()
            .request("national-id", "234123412346", facts)
            .unwrap();
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.url, "https://registry.example.org/v1/lookup");
        assert_eq!(req.timeout_ms, Some(3000));
        assert!(req
            .headers
            .contains(&("content-type".into(), "application/json".into())));
        assert!(req
            .headers
            .contains(&("authorization".into(), "Bearer t".into())));
        assert!(req.headers.contains(&("x-client".into(), "divoc".into())));
        // Data minimisation: the claim's name and dob stay home by default.
        assert_eq!(
            body_json(&req),
            json!({ "id": "234123412346", "id_type": "national-id" })
        );
        let r = Registry {
            send_claim: true,
            ..registry()
        };
        assert_eq!(
            body_json(&r.request("national-id", "234123412346", facts).unwrap()),
            json!({ "id": "234123412346", "id_type": "national-id", "name": "Asha Rao", "dob": "1980-01-15" })
        );
    }

    #[test]
    fn get_request_shape() {
        let r = Registry {
            method: RegistryMethod::Get,
            ..registry()
        };
        let req = r.request("national-id", "AB/12", NO_FACTS).unwrap();
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.url, "https://registry.example.org/v1/lookup?id=AB%2F12");
        assert!(req.body.is_none());
        let r = Registry {
            url: "https://registry.example.org/q?v=1".into(),
            ..r
        };
        assert_eq!(
            r.request("t", "12", NO_FACTS).unwrap().url,
            "https://registry.example.org/q?v=1&id=12"
        );
    }

    #[test]
    fn found_gives_the_configured_attributes() {
        let r = registry();
        let out = r
            .interpret(
                &resp(
                    200,
                    r#"{"found":true,"name":" Asha Rao ","dob":"1980-01-15","phone":"+91"}"#,
                ),
                NO_FACTS,
            )
            .unwrap();
        assert_eq!(
            out,
            Outcome::Found(vec![
                ("name".into(), "Asha Rao".into()),
                ("dob".into(), "1980-01-15".into())
            ])
        );
        // `found` may be left out of a 200.
        assert_eq!(
            r.interpret(&resp(200, "{}"), NO_FACTS).unwrap(),
            Outcome::Found(vec![])
        );
    }

    #[test]
    fn not_found_and_mismatches() {
        let r = registry();
        assert_eq!(
            r.interpret(&resp(404, ""), NO_FACTS).unwrap(),
            Outcome::NotFound
        );
        assert_eq!(
            r.interpret(&resp(200, r#"{"found":false}"#), NO_FACTS)
                .unwrap(),
            Outcome::NotFound
        );
        assert_eq!(
            r.interpret(&resp(200, r#"{"found":true,"match":false}"#), NO_FACTS)
                .unwrap(),
            Outcome::DetailsMismatch
        );
        let record = r#"{"found":true,"name":"Asha  RAO","dob":"1980-01-15"}"#;
        let facts = |name, dob| Facts {
            name: Some(name),
            dob: Some(dob),
        };
        assert!(matches!(
            r.interpret(&resp(200, record), facts(" asha rao", "1980-01-15"))
                .unwrap(),
            Outcome::Found(_)
        ));
        assert_eq!(
            r.interpret(&resp(200, record), facts("Asha Roy", "1980-01-15"))
                .unwrap(),
            Outcome::NameMismatch
        );
        assert_eq!(
            r.interpret(&resp(200, record), facts("Asha Rao", "1980-01-16"))
                .unwrap(),
            Outcome::DobMismatch
        );
        let lax = Registry {
            match_name: false,
            match_dob: false,
            ..registry()
        };
        assert!(matches!(
            lax.interpret(&resp(200, record), facts("Someone Else", "2000-01-01"))
                .unwrap(),
            Outcome::Found(_)
        ));
    }

    #[test]
    fn failures_map_to_typed_errors() {
        let r = registry();
        for s in [408, 429, 500, 502, 503] {
            assert_eq!(
                r.interpret(&resp(s, ""), NO_FACTS),
                Err(LookupError::Status(s))
            );
            assert!(matches!(
                Error::from(LookupError::Status(s)),
                Error::Unavailable(_)
            ));
        }
        for s in [301, 400, 401, 403] {
            assert_eq!(
                r.interpret(&resp(s, ""), NO_FACTS),
                Err(LookupError::Unexpected(s))
            );
            assert!(matches!(
                Error::from(LookupError::Unexpected(s)),
                Error::Internal(_)
            ));
        }
        for body in ["", "[]", "not json", r#"{"found":"yes"}"#, r#"{"match":1}"#] {
            assert!(
                matches!(
                    r.interpret(&resp(200, body), NO_FACTS),
                    Err(LookupError::Malformed(_))
                ),
                "{body}"
            );
        }
        assert!(matches!(
            Error::from(LookupError::Unreachable),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            Error::from(LookupError::NotGranted("x".into())),
            Error::Internal(_)
        ));
    }

    #[test]
    fn credentials_do_not_reach_debug_output() {
        let text = format!("{:?}", registry());
        assert!(
            !text.contains("Bearer t") && !text.contains("divoc\""),
            "{text}"
        );
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn name_comparison() {
        assert!(names_match(
            "Anna  Maria\tEriksson",
            " anna maria ERIKSSON "
        ));
        assert!(!names_match("Anna Maria", "Anna-Maria"));
    }
}
