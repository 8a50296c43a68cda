//! Operator-defined credential types: a schema for the request and a field
//! mapping into the credential, from configuration, without code.
//!
//! Vaccination is the built-in type ([`crate::request`],
//! [`crate::credential`]). Another type — a test result, a recovery
//! statement — is declared in config:
//!
//! ```toml
//! [certificates.types.covid-test]
//! vc-type = "TestResultCredential"
//! name = "COVID-19 test result"
//! reference-field = "sampleId"
//! valid-for-days = 3
//! contact-field = "mobile"
//! dob-field = "dob"
//!
//! [certificates.types.covid-test.fields]
//! sampleId = { type = "string", required = true, to = "credentialSubject.sample.id" }
//! name     = { type = "string", required = true, to = "credentialSubject.name" }
//! dob      = { type = "date", required = true, to = "credentialSubject.birthDate" }
//! result   = { type = "string", required = true, enum = ["positive", "negative"], to = "credentialSubject.test.result" }
//! ```
//!
//! A request is a flat JSON object of those fields. Every field is checked
//! against its declared type (all errors reported, by field name); unknown
//! fields are refused. Values land only under `credentialSubject` — the
//! envelope (`id`, `issuer`, validity, status, proof) is the host's, so a
//! mapping cannot forge it. The `reference-field` identifies the credential
//! for idempotency (re-sending the same reference and payload returns the
//! same credential) as the pre-enrolment code does for vaccinations.
//!
//! The credential follows VC Data Model 2.0. Its `@context` is the base
//! context and one generated from the type's definition
//! ([`crate::contexts::type_context`], served at `/v1/contexts/{name}`),
//! which gives the VC type and every field path an IRI: the final base
//! context has no `@vocab`, so without it a JSON-LD processor would drop
//! them. A definition whose paths would clash with JSON-LD keywords or the
//! base context's terms is refused at startup.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::credential::{CredentialConfig, CREDENTIALS_V2};
use crate::error::FieldError;

/// The value type of a declared field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldType {
    /// Text, at most `max-length` characters (256 by default).
    String,
    /// A whole number within `min`/`max`.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339 UTC date-time (normalised to seconds).
    DateTime,
}

/// One declared field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FieldSpec {
    /// Value type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Must be present and non-empty.
    #[serde(default)]
    pub required: bool,
    /// Where the value goes: a dotted path starting `credentialSubject.`.
    pub to: String,
    /// Allowed values (strings).
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// Longest string, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Smallest integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// Largest integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
}

/// A credential type from config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CredentialType {
    /// The VC `type` after `VerifiableCredential`, e.g.
    /// `TestResultCredential`.
    pub vc_type: String,
    /// The credential's `name` (VC 2.0 §4.6), shown by wallets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The field that identifies one credential of this type (e.g. the
    /// sample id); must be a declared, required string field.
    pub reference_field: String,
    /// `validUntil` = issuance + this many days, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_for_days: Option<u32>,
    /// A field holding the holder's contact (`tel:`/`mailto:`), for
    /// lookups by contact + date of birth and for distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_field: Option<String>,
    /// A `date` field holding the holder's date of birth (lookups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dob_field: Option<String>,
    /// The request's fields.
    pub fields: BTreeMap<String, FieldSpec>,
}

/// A credential type definition that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credential type `{type_name}`: {message}")]
pub struct TypeError {
    /// The type's config name.
    pub type_name: String,
    /// What is wrong.
    pub message: String,
}

/// Type names share the program-id alphabet (they are stored as programs,
/// prefixed `type:` so they can never collide with a vaccination program).
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl CredentialType {
    /// Checks the definition itself (done once, at startup).
    pub fn check(&self, type_name: &str) -> Result<(), TypeError> {
        let err = |m: String| TypeError {
            type_name: type_name.to_owned(),
            message: m,
        };
        if !valid_name(type_name) {
            return Err(err("names are 1-64 characters of A-Z a-z 0-9 - _ .".into()));
        }
        if type_name == crate::contexts::VACCINATION_CONTEXT_NAME {
            // Its context would be served at the vaccination context's name.
            return Err(err(format!(
                "the name `{type_name}` is the vaccination context's; choose another"
            )));
        }
        if !valid_name(&self.vc_type)
            || self.vc_type.contains('.')
            || crate::contexts::is_base_term(&self.vc_type)
        {
            return Err(err(format!(
                "`vc-type` `{}` must be a plain type name that the VC 2.0 base context \
                 does not define",
                self.vc_type
            )));
        }
        if self.fields.is_empty() {
            return Err(err("declares no fields".into()));
        }
        let mut targets = std::collections::HashSet::new();
        for (name, f) in &self.fields {
            let path =
                f.to.strip_prefix("credentialSubject.")
                    .filter(|p| !p.is_empty() && p.split('.').all(|seg| !seg.is_empty()))
                    .ok_or_else(|| {
                        err(format!(
                            "field `{name}`: `to` must be a path under `credentialSubject.`"
                        ))
                    })?;
            // Each segment becomes a JSON-LD term (crate::contexts): `id`
            // and `type` are the base context's aliases of `@id` and
            // `@type`, `@…` are keywords, and `:` or `/` would make the term
            // read as an IRI. A base-context term (e.g. `name`) may end a
            // path, keeping its meaning, but cannot hold nested fields.
            let segments: Vec<&str> = path.split('.').collect();
            for (i, seg) in segments.iter().enumerate() {
                let keyword = matches!(*seg, "id" | "type")
                    || seg.starts_with('@')
                    || seg.contains([':', '/']);
                if keyword {
                    return Err(err(format!(
                        "field `{name}`: `to` segment `{seg}` collides with a JSON-LD keyword \
                         (`id`, `type`, `@…`) or reads as an IRI; choose another name"
                    )));
                }
                let parent = i + 1 < segments.len();
                if parent && crate::contexts::is_base_term(seg) {
                    return Err(err(format!(
                        "field `{name}`: `{seg}` is a VC 2.0 base context term and cannot \
                         hold nested fields"
                    )));
                }
            }
            // A path may not be both a value and a parent of another value.
            for other in &targets {
                let (a, b): (&String, &str) = (other, path);
                if a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}.")) {
                    return Err(err(format!("field `{name}`: `to` overlaps another field")));
                }
            }
            targets.insert(path.to_owned());
            if f.allowed.is_some() && f.kind != FieldType::String {
                return Err(err(format!("field `{name}`: `enum` is for strings")));
            }
        }
        let reference = self.fields.get(&self.reference_field).ok_or_else(|| {
            err(format!(
                "`reference-field` `{}` is not a declared field",
                self.reference_field
            ))
        })?;
        if reference.kind != FieldType::String || !reference.required {
            return Err(err("the reference field must be a required string".into()));
        }
        if let Some(c) = &self.contact_field {
            match self.fields.get(c) {
                Some(f) if f.kind == FieldType::String => {}
                _ => return Err(err(format!("`contact-field` `{c}` is not a string field"))),
            }
        }
        if let Some(d) = &self.dob_field {
            match self.fields.get(d) {
                Some(f) if f.kind == FieldType::Date => {}
                _ => return Err(err(format!("`dob-field` `{d}` is not a date field"))),
            }
        }
        Ok(())
    }

    /// Validates a request against the schema: every problem, by field
    /// name; values are never echoed. Returns the normalised values
    /// (date-times in UTC; a local date-time is read in `zone`).
    pub fn validate(
        &self,
        request: &Value,
        zone: &divoc_time::Zone,
    ) -> Result<TypedRequest, Vec<FieldError>> {
        let Some(obj) = request.as_object() else {
            return Err(vec![FieldError::new("", "the body must be a JSON object")]);
        };
        let mut errors = Vec::new();
        for k in obj.keys() {
            if !self.fields.contains_key(k) {
                errors.push(FieldError::new(k.clone(), "unknown field"));
            }
        }
        let mut values = BTreeMap::new();
        for (name, spec) in &self.fields {
            let v = obj.get(name).filter(|v| !v.is_null());
            let empty = v.is_none()
                || v.and_then(Value::as_str)
                    .is_some_and(|s| s.trim().is_empty());
            if empty {
                if spec.required {
                    errors.push(FieldError::new(name.clone(), "required"));
                }
                continue;
            }
            let Some(v) = v else { continue };
            match check_value(spec, v, zone) {
                Ok(norm) => {
                    values.insert(name.clone(), norm);
                }
                Err(m) => errors.push(FieldError::new(name.clone(), m)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let text = |f: &Option<String>| {
            f.as_ref()
                .and_then(|f| values.get(f))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(TypedRequest {
            reference: text(&Some(self.reference_field.clone())).unwrap_or_default(),
            contact: text(&self.contact_field),
            dob: text(&self.dob_field),
            values,
        })
    }

    /// The unsigned credential for a validated request of the type
    /// configured as `type_name`.
    #[allow(clippy::too_many_arguments)]
    pub fn build_credential(
        &self,
        type_name: &str,
        req: &TypedRequest,
        certificate_id: &str,
        issuer: &str,
        issued_at_ms: i64,
        credential_status: Value,
        cfg: &CredentialConfig,
    ) -> Value {
        let mut subject = Map::new();
        for (name, value) in &req.values {
            if let Some(spec) = self.fields.get(name) {
                let path = spec.to.trim_start_matches("credentialSubject.");
                insert_path(&mut subject, path, value.clone());
            }
        }
        let mut vc = Map::new();
        vc.insert(
            "@context".into(),
            Value::Array(vec![
                CREDENTIALS_V2.into(),
                crate::contexts::type_context_url(cfg, type_name).into(),
            ]),
        );
        vc.insert("id".into(), cfg.credential_url(certificate_id).into());
        vc.insert(
            "type".into(),
            Value::Array(vec![
                "VerifiableCredential".into(),
                self.vc_type.clone().into(),
            ]),
        );
        if let Some(n) = &self.name {
            vc.insert("name".into(), n.clone().into());
        }
        vc.insert("issuer".into(), issuer.into());
        vc.insert(
            "validFrom".into(),
            divoc_time::format_seconds(issued_at_ms).into(),
        );
        if let Some(days) = self.valid_for_days {
            let until = issued_at_ms + i64::from(days) * 86_400_000;
            vc.insert(
                "validUntil".into(),
                divoc_time::format_seconds(until).into(),
            );
        }
        vc.insert("credentialSubject".into(), Value::Object(subject));
        vc.insert("credentialStatus".into(), credential_status);
        Value::Object(vc)
    }
}

/// A request that passed [`CredentialType::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct TypedRequest {
    /// The reference field's value.
    pub reference: String,
    /// The holder's contact, when the type declares one.
    pub contact: Option<String>,
    /// The holder's date of birth, when the type declares one.
    pub dob: Option<String>,
    /// Normalised values by field name.
    pub values: BTreeMap<String, Value>,
}

fn check_value(spec: &FieldSpec, v: &Value, zone: &divoc_time::Zone) -> Result<Value, String> {
    match spec.kind {
        FieldType::String => {
            let s = v.as_str().ok_or("must be a string")?.trim();
            let max = spec.max_length.unwrap_or(256);
            if s.chars().count() > max {
                return Err(format!("longer than {max} characters"));
            }
            if s.chars().any(char::is_control) {
                return Err("contains control characters".into());
            }
            if let Some(allowed) = &spec.allowed {
                if !allowed.iter().any(|a| a == s) {
                    return Err(format!("must be one of: {}", allowed.join(", ")));
                }
            }
            Ok(s.into())
        }
        FieldType::Integer => {
            let n = v.as_i64().ok_or("must be a whole number")?;
            if spec.min.is_some_and(|m| n < m) || spec.max.is_some_and(|m| n > m) {
                return Err(format!(
                    "must be between {} and {}",
                    spec.min.map_or("-".into(), |m| m.to_string()),
                    spec.max.map_or("-".into(), |m| m.to_string())
                ));
            }
            Ok(n.into())
        }
        FieldType::Boolean => v
            .as_bool()
            .map(Value::from)
            .ok_or_else(|| "must be true or false".into()),
        FieldType::Date => {
            let s = v.as_str().ok_or("must be a date YYYY-MM-DD")?;
            divoc_time::parse_date(s.trim())
                .map(|d| Value::from(format!("{d}")))
                .ok_or_else(|| "must be a date YYYY-MM-DD".into())
        }
        FieldType::DateTime => {
            const MUST: &str = "must be an RFC 3339 date-time (any offset, or local time \
                                in the deployment's time zone)";
            let s = v.as_str().ok_or(MUST)?;
            divoc_time::parse_instant(s.trim(), zone)
                .map(|t| Value::from(divoc_time::format_millis(t)))
                .ok_or_else(|| MUST.into())
        }
    }
}

/// Sets `a.b.c` in `m`, creating objects on the way (paths were checked
/// not to overlap, so an intermediate is never a value).
fn insert_path(m: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            m.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = m
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(child) = child {
                insert_path(child, rest, value);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The module example's type (as JSON: the same keys as the TOML).
    fn test_type() -> CredentialType {
        serde_json::from_value(json!({
            "vc-type": "TestResultCredential",
            "name": "COVID-19 test result",
            "reference-field": "sampleId",
            "valid-for-days": 3,
            "contact-field": "mobile",
            "dob-field": "dob",
            "fields": {
                "sampleId": {"type": "string", "required": true, "to": "credentialSubject.sample.id_"},
                "name": {"type": "string", "required": true, "to": "credentialSubject.name"},
                "dob": {"type": "date", "required": true, "to": "credentialSubject.birthDate"},
                "mobile": {"type": "string", "to": "credentialSubject.contact"},
                "result": {"type": "string", "required": true, "enum": ["positive", "negative"],
                           "to": "credentialSubject.test.result"},
                "sampled": {"type": "date-time", "required": true, "to": "credentialSubject.test.sampledAt"},
                "ct": {"type": "integer", "min": 0, "max": 45, "to": "credentialSubject.test.ct"}
            }
        }))
        .unwrap()
    }

    #[test]
    fn definitions_are_checked() {
        let t = test_type();
        t.check("covid-test").unwrap();
        assert!(t.check("bad name").is_err());
        // Its context would be served where the vaccination context is.
        assert!(t
            .check("vaccination-v1")
            .unwrap_err()
            .message
            .contains("vaccination context"));
        let mut bad = t.clone();
        bad.fields.get_mut("name").unwrap().to = "issuer".into();
        assert!(bad
            .check("x")
            .unwrap_err()
            .message
            .contains("credentialSubject"));
        let mut bad = t.clone();
        bad.fields.get_mut("name").unwrap().to = "credentialSubject.id".into();
        assert!(bad.check("x").is_err());
        let mut bad = t.clone();
        bad.fields.get_mut("name").unwrap().to = "credentialSubject.test".into();
        assert!(bad.check("x").unwrap_err().message.contains("overlaps"));
        // Keyword collisions: `type` would alias `@type`, `@…` is a
        // keyword, `a:b` reads as an IRI; a base term cannot nest.
        for to in [
            "credentialSubject.test.type",
            "credentialSubject.type",
            "credentialSubject.test.@value",
            "credentialSubject.test.x:y",
            "credentialSubject.name.first",
            "credentialSubject.exp.x",
        ] {
            let mut bad = t.clone();
            bad.fields.get_mut("result").unwrap().to = to.into();
            let e = bad.check("x").unwrap_err().message;
            assert!(e.contains("JSON-LD") || e.contains("VC 2.0"), "{to}: {e}");
        }
        for vc_type in ["VerifiableCredential", "BitstringStatusListCredential"] {
            let mut bad = t.clone();
            bad.vc_type = vc_type.into();
            assert!(bad.check("x").is_err(), "{vc_type}");
        }
        let mut bad = t.clone();
        bad.reference_field = "ct".into();
        assert!(bad.check("x").is_err());
        let mut bad = t;
        bad.dob_field = Some("name".into());
        assert!(bad.check("x").is_err());
    }

    #[test]
    fn requests_are_validated_field_by_field() {
        let t = test_type();
        let errs = t
            .validate(
                &json!({"sampleId": "S-1", "dob": "1990-02-30", "result": "maybe",
                              "sampled": "yesterday", "ct": 99, "extra": 1}),
                &divoc_time::Zone::utc(),
            )
            .unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["extra", "ct", "dob", "name", "result", "sampled"]
        );
        assert!(t.validate(&json!([1]), &divoc_time::Zone::utc()).is_err());
    }

    #[test]
    fn credentials_follow_the_mapping() {
        let t = test_type();
        let req = t
            .validate(
                &json!({"sampleId": " S-1 ", "name": "Asha", "dob": "1990-02-28",
                              "mobile": "tel:999", "result": "negative",
                              "sampled": "2026-11-20T15:30:00+05:30", "ct": 30}),
                &divoc_time::Zone::utc(),
            )
            .unwrap();
        assert_eq!(req.reference, "S-1");
        // An offset is normalised to UTC.
        assert_eq!(req.values["sampled"], "2026-11-20T10:00:00Z");
        assert_eq!(req.contact.as_deref(), Some("tel:999"));
        assert_eq!(req.dob.as_deref(), Some("1990-02-28"));
        let cfg = CredentialConfig::new("https://h.example");
        let vc = t.build_credential(
            "covid-test",
            &req,
            "ABC",
            "did:web:h.example",
            0,
            json!([]),
            &cfg,
        );
        assert_eq!(
            vc["@context"],
            json!([CREDENTIALS_V2, "https://h.example/v1/contexts/covid-test"])
        );
        assert_eq!(
            vc["type"],
            json!(["VerifiableCredential", "TestResultCredential"])
        );
        assert_eq!(vc["id"], "https://h.example/v1/certificates/ABC");
        assert_eq!(vc["credentialSubject"]["sample"]["id_"], "S-1");
        assert_eq!(vc["credentialSubject"]["test"]["result"], "negative");
        assert_eq!(vc["credentialSubject"]["test"]["ct"], 30);
        assert_eq!(vc["validUntil"], "1970-01-04T00:00:00Z");
    }
}
