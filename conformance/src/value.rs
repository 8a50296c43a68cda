//! The JSON shape of contract values, both ways.
//!
//! Cases are data (`cases/README.md`), so arguments are written as JSON and
//! results are rendered as JSON for matching. The shape follows the WIT names,
//! not the Rust bindings, so a case reads like the contract:
//! - records are objects with kebab-case field names; a missing field takes
//!   its default (`""`, `0`, `none`, empty list) so cases stay short, while an
//!   unknown field is an error so a typo cannot silently test nothing;
//! - enums are kebab-case strings (`"qr-text"`);
//! - variants are objects with one key, the case name (`{"rejected": "..."}`,
//!   `{"allow": null}`);
//! - options are `null` or the value; `list<u8>` is an array of numbers or,
//!   for convenience, a string taken as its UTF-8 bytes.

use divoc_runtime::types::{
    distribution, eligibility, events, format, identity, payment, Address, Contact, ContactKind,
    Identity, Money, Recipient,
};
use serde_json::{json, Map, Value};

/// A case file that does not describe a valid call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, ShapeError> {
    Err(ShapeError(message.into()))
}

/// An object being read, which remembers which keys were used so that
/// unknown keys can be reported.
pub(crate) struct Obj<'a> {
    what: &'a str,
    map: &'a Map<String, Value>,
    used: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    pub fn new(what: &'a str, value: &'a Value) -> Result<Obj<'a>, ShapeError> {
        match value {
            Value::Object(map) => Ok(Obj {
                what,
                map,
                used: Vec::new(),
            }),
            other => err(format!("{what}: expected an object, found {other}")),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn string(&mut self, key: &'static str) -> Result<String, ShapeError> {
        Ok(self.opt_string(key)?.unwrap_or_default())
    }

    pub fn opt_string(&mut self, key: &'static str) -> Result<Option<String>, ShapeError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => err(format!(
                "{}.{key}: expected a string, found {other}",
                self.what
            )),
        }
    }

    fn number<T: TryFrom<i128>>(&mut self, key: &'static str) -> Result<Option<T>, ShapeError> {
        let what = self.what;
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let n: Option<i128> = v
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| v.as_u64().map(i128::from));
                match n.and_then(|n| T::try_from(n).ok()) {
                    Some(n) => Ok(Some(n)),
                    None => err(format!("{what}.{key}: {v} is not an integer in range")),
                }
            }
        }
    }

    pub fn u32(&mut self, key: &'static str) -> Result<u32, ShapeError> {
        Ok(self.number(key)?.unwrap_or_default())
    }

    pub fn opt_u32(&mut self, key: &'static str) -> Result<Option<u32>, ShapeError> {
        self.number(key)
    }

    pub fn u64(&mut self, key: &'static str) -> Result<u64, ShapeError> {
        Ok(self.number(key)?.unwrap_or_default())
    }

    pub fn s64(&mut self, key: &'static str) -> Result<i64, ShapeError> {
        Ok(self.number(key)?.unwrap_or_default())
    }

    pub fn list<T>(
        &mut self,
        key: &'static str,
        item: impl Fn(&Value) -> Result<T, ShapeError>,
    ) -> Result<Vec<T>, ShapeError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(item).collect(),
            Some(other) => err(format!(
                "{}.{key}: expected a list, found {other}",
                self.what
            )),
        }
    }

    pub fn opt<T>(
        &mut self,
        key: &'static str,
        item: impl Fn(&Value) -> Result<T, ShapeError>,
    ) -> Result<Option<T>, ShapeError> {
        self.get(key).map(item).transpose()
    }

    pub fn required(&mut self, key: &'static str) -> Result<&'a Value, ShapeError> {
        let what = self.what;
        self.get(key)
            .ok_or_else(|| ShapeError(format!("{what}: `{key}` is required")))
    }

    pub fn bytes(&mut self, key: &'static str) -> Result<Vec<u8>, ShapeError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(v) => bytes(v),
        }
    }

    /// Fails on any key that was not read.
    pub fn finish(self) -> Result<(), ShapeError> {
        match self.map.keys().find(|k| !self.used.contains(&k.as_str())) {
            Some(k) => err(format!("{}: unknown field `{k}`", self.what)),
            None => Ok(()),
        }
    }
}

fn string(v: &Value) -> Result<String, ShapeError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => err(format!("expected a string, found {other}")),
    }
}

fn bytes(v: &Value) -> Result<Vec<u8>, ShapeError> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Array(items) => items
            .iter()
            .map(|b| {
                b.as_u64()
                    .and_then(|b| u8::try_from(b).ok())
                    .ok_or_else(|| ShapeError(format!("{b} is not a byte")))
            })
            .collect(),
        other => err(format!(
            "expected bytes (a list of numbers or a string), found {other}"
        )),
    }
}

fn pair(v: &Value) -> Result<(String, String), ShapeError> {
    match v.as_array().map(Vec::as_slice) {
        Some([a, b]) => Ok((string(a)?, string(b)?)),
        _ => err(format!("expected a [key, value] pair, found {v}")),
    }
}

/// The single `case: payload` entry of a variant object, or a bare case name.
fn variant(v: &Value) -> Result<(&str, &Value), ShapeError> {
    static NULL: Value = Value::Null;
    match v {
        Value::String(s) => Ok((s.as_str(), &NULL)),
        Value::Object(map) if map.len() == 1 => match map.iter().next() {
            Some((k, payload)) => Ok((k.as_str(), payload)),
            None => err("empty variant"),
        },
        other => err(format!(
            "expected a variant {{\"case\": payload}}, found {other}"
        )),
    }
}

fn contact_kind(v: &Value) -> Result<ContactKind, ShapeError> {
    match v.as_str() {
        Some("phone") => Ok(ContactKind::Phone),
        Some("email") => Ok(ContactKind::Email),
        Some("other") => Ok(ContactKind::Other),
        _ => err(format!(
            "contact-kind: expected phone, email or other, found {v}"
        )),
    }
}

fn contact_kind_name(k: &ContactKind) -> &'static str {
    match k {
        ContactKind::Phone => "phone",
        ContactKind::Email => "email",
        ContactKind::Other => "other",
    }
}

pub fn contact(v: &Value) -> Result<Contact, ShapeError> {
    let mut o = Obj::new("contact", v)?;
    let c = Contact {
        kind: match o.get("kind") {
            Some(k) => contact_kind(k)?,
            None => ContactKind::Other,
        },
        value: o.string("value")?,
    };
    o.finish()?;
    Ok(c)
}

pub fn money(v: &Value) -> Result<Money, ShapeError> {
    let mut o = Obj::new("money", v)?;
    let m = Money {
        currency: o.string("currency")?,
        minor_units: o.s64("minor-units")?,
    };
    o.finish()?;
    Ok(m)
}

fn address(v: &Value) -> Result<Address, ShapeError> {
    let mut o = Obj::new("address", v)?;
    let a = Address {
        line1: o.string("line1")?,
        line2: o.opt_string("line2")?,
        district: o.opt_string("district")?,
        state: o.opt_string("state")?,
        postal_code: o.opt_string("postal-code")?,
        country: o.opt_string("country")?,
    };
    o.finish()?;
    Ok(a)
}

fn identity_doc(v: &Value) -> Result<Identity, ShapeError> {
    let mut o = Obj::new("identity", v)?;
    let i = Identity {
        id_type: o.string("id-type")?,
        value: o.string("value")?,
    };
    o.finish()?;
    Ok(i)
}

pub fn recipient(v: &Value) -> Result<Recipient, ShapeError> {
    let mut o = Obj::new("recipient", v)?;
    let r = Recipient {
        name: o.string("name")?,
        dob: o.opt_string("dob")?,
        age: o.opt_u32("age")?,
        gender: o.opt_string("gender")?,
        nationality: o.opt_string("nationality")?,
        identity: match o.get("identity") {
            Some(i) => identity_doc(i)?,
            None => Identity {
                id_type: String::new(),
                value: String::new(),
            },
        },
        contacts: o.list("contacts", contact)?,
        address: o.opt("address", address)?,
    };
    o.finish()?;
    Ok(r)
}

pub fn claim(v: &Value) -> Result<identity::Claim, ShapeError> {
    let mut o = Obj::new("claim", v)?;
    let c = identity::Claim {
        id_type: o.string("id-type")?,
        value: o.string("value")?,
        name: o.opt_string("name")?,
        dob: o.opt_string("dob")?,
        challenge_id: o.opt_string("challenge-id")?,
        challenge_response: o.opt_string("challenge-response")?,
    };
    o.finish()?;
    Ok(c)
}

pub fn charge(v: &Value) -> Result<payment::Charge, ShapeError> {
    let mut o = Obj::new("charge", v)?;
    let c = payment::Charge {
        reference: o.string("reference")?,
        mode: o.string("mode")?,
        amount: money(o.required("amount")?)?,
        program: o.string("program")?,
        description: o.string("description")?,
    };
    o.finish()?;
    Ok(c)
}

pub fn credential(v: &Value) -> Result<format::Credential, ShapeError> {
    let mut o = Obj::new("credential", v)?;
    let c = format::Credential {
        id: o.string("id")?,
        json: o.string("json")?,
        signing_purpose: o.string("signing-purpose")?,
    };
    o.finish()?;
    Ok(c)
}

pub fn artifact(v: &Value) -> Result<format::ArtifactData, ShapeError> {
    match variant(v)? {
        ("text", payload) => Ok(format::ArtifactData::Text(string(payload)?)),
        ("bytes", payload) => Ok(format::ArtifactData::Bytes(bytes(payload)?)),
        (other, _) => err(format!(
            "artifact-data: unknown case `{other}` (text, bytes)"
        )),
    }
}

fn attachment(v: &Value) -> Result<distribution::Attachment, ShapeError> {
    let mut o = Obj::new("attachment", v)?;
    let a = distribution::Attachment {
        name: o.string("name")?,
        media_type: o.string("media-type")?,
        data: o.bytes("data")?,
    };
    o.finish()?;
    Ok(a)
}

pub fn message(v: &Value) -> Result<distribution::Message, ShapeError> {
    let mut o = Obj::new("message", v)?;
    let m = distribution::Message {
        id: o.string("id")?,
        template: o.string("template")?,
        recipient_name: o.string("recipient-name")?,
        contacts: o.list("contacts", contact)?,
        certificate_ids: o.list("certificate-ids", string)?,
        attachments: o.list("attachments", attachment)?,
        variables: o.list("variables", pair)?,
    };
    o.finish()?;
    Ok(m)
}

fn previous_dose(v: &Value) -> Result<eligibility::PreviousDose, ShapeError> {
    let mut o = Obj::new("previous-dose", v)?;
    let d = eligibility::PreviousDose {
        vaccine: o.string("vaccine")?,
        dose: o.u32("dose")?,
        date: o.string("date")?,
    };
    o.finish()?;
    Ok(d)
}

pub fn query(v: &Value) -> Result<eligibility::Query, ShapeError> {
    let mut o = Obj::new("query", v)?;
    let q = eligibility::Query {
        recipient: match o.get("recipient") {
            Some(r) => recipient(r)?,
            None => recipient(&json!({}))?,
        },
        program: o.string("program")?,
        vaccine: o.opt_string("vaccine")?,
        dose: o.u32("dose")?,
        date: o.string("date")?,
        previous_doses: o.list("previous-doses", previous_dose)?,
    };
    o.finish()?;
    Ok(q)
}

pub fn event(v: &Value) -> Result<events::Event, ShapeError> {
    let mut o = Obj::new("event", v)?;
    let e = events::Event {
        sequence: o.u64("sequence")?,
        kind: o.string("kind")?,
        occurred_at: o.u64("occurred-at")?,
        payload: o.string("payload")?,
    };
    o.finish()?;
    Ok(e)
}

pub fn events_list(v: &Value) -> Result<Vec<events::Event>, ShapeError> {
    match v {
        Value::Array(items) => items.iter().map(event).collect(),
        other => err(format!("events: expected a list, found {other}")),
    }
}

pub fn string_arg(v: &Value) -> Result<String, ShapeError> {
    string(v)
}

// ---- results, rendered in the same shape ----

pub fn strings_json(list: &[String]) -> Value {
    json!(list)
}

pub fn verification_json(v: &identity::Verification) -> Value {
    match v {
        identity::Verification::Verified(id) => json!({ "verified": {
            "id-type": id.id_type,
            "normalized-id": id.normalized_id,
            "attributes": id.attributes.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        }}),
        identity::Verification::Challenge(c) => json!({ "challenge": {
            "challenge-id": c.challenge_id,
            "prompt": c.prompt,
        }}),
        identity::Verification::Rejected(reason) => json!({ "rejected": reason }),
    }
}

fn money_json(m: &Money) -> Value {
    json!({ "currency": m.currency, "minor-units": m.minor_units })
}

pub fn receipt_json(r: &payment::Receipt) -> Value {
    let status = match r.status {
        payment::PaymentStatus::Authorized => "authorized",
        payment::PaymentStatus::Captured => "captured",
        payment::PaymentStatus::Refunded => "refunded",
    };
    json!({
        "provider-reference": r.provider_reference,
        "status": status,
        "amount": money_json(&r.amount),
        "mode": r.mode,
    })
}

pub fn format_info_json(i: &format::FormatInfo) -> Value {
    let kind = match i.kind {
        format::ArtifactKind::QrText => "qr-text",
        format::ArtifactKind::Json => "json",
        format::ArtifactKind::Binary => "binary",
    };
    json!({ "id": i.id, "media-type": i.media_type, "kind": kind })
}

pub fn artifact_json(a: &format::ArtifactData) -> Value {
    match a {
        format::ArtifactData::Text(t) => json!({ "text": t }),
        format::ArtifactData::Bytes(b) => json!({ "bytes": b }),
    }
}

pub fn decoded_json(d: &format::Decoded) -> Value {
    json!({
        "claims-json": d.claims_json,
        "key-id": d.key_id,
        "signature-valid": d.signature_valid,
    })
}

pub fn channel_info_json(i: &distribution::ChannelInfo) -> Value {
    json!({
        "id": i.id,
        "contact-kinds": i.contact_kinds.iter().map(contact_kind_name).collect::<Vec<_>>(),
    })
}

pub fn delivery_receipt_json(r: &distribution::DeliveryReceipt) -> Value {
    json!({ "channel-reference": r.channel_reference, "delivered-to": r.delivered_to })
}

pub fn decision_json(d: &eligibility::Decision) -> Value {
    match d {
        eligibility::Decision::Allow => json!({ "allow": null }),
        eligibility::Decision::Deny(reasons) => json!({ "deny": reasons }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_default_missing_fields_and_refuse_unknown_ones() {
        let c = claim(&json!({"id-type": "national-id", "value": "1"})).unwrap();
        assert_eq!(c.id_type, "national-id");
        assert_eq!(c.name, None);
        let e = claim(&json!({"id-type": "x", "vaule": "1"})).unwrap_err();
        assert!(e.0.contains("vaule"), "{e}");
    }

    #[test]
    fn variants_and_bytes() {
        match artifact(&json!({"bytes": "ab"})).unwrap() {
            format::ArtifactData::Bytes(b) => assert_eq!(b, b"ab"),
            other => panic!("{other:?}"),
        }
        assert!(artifact(&json!({"text": "a", "bytes": []})).is_err());
        let m = money(&json!({"currency": "INR", "minor-units": -5})).unwrap();
        assert_eq!(m.minor_units, -5);
        assert!(money(&json!({"minor-units": 1.5})).is_err());
    }
}
