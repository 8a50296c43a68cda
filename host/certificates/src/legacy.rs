//! DIVOC's `certify` payload (`POST /divoc/api/v1/certify`, one array item)
//! and its mapping to [`IssueRequest`], so an existing integrator only
//! changes the base URL.
//!
//! The shape follows DIVOC's `vaccination-api.yaml` (`CertificationRequest`).
//! DIVOC sent some numbers as strings and vice versa (`age: "27"`,
//! `pincode: 560033`), so those fields accept either.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CertError, FieldError};
use crate::request::{
    Address, Facility, Identity, IssueRequest, Recipient, Vaccination, Vaccinator,
};

/// One item of DIVOC's `certify` request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CertifyRequest {
    /// The recipient's pre-enrolment code.
    pub pre_enrollment_code: String,
    /// The recipient.
    pub recipient: LegacyRecipient,
    /// The vaccination.
    pub vaccination: LegacyVaccination,
    /// The vaccinator.
    pub vaccinator: LegacyVaccinator,
    /// The facility.
    pub facility: LegacyFacility,
    /// The program; absent in early DIVOC deployments (one program each).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program_id: Option<String>,
    /// Integrator data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// DIVOC `recipient`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LegacyRecipient {
    /// Name.
    pub name: String,
    /// Date of birth; DIVOC's schema lets it be null when `age` is given.
    pub dob: Option<String>,
    /// Age; DIVOC sent it as a string.
    pub age: Loose,
    /// Gender.
    pub gender: String,
    /// Nationality.
    pub nationality: String,
    /// Identity as `did:<scheme>:<number>` (DIVOC's convention) or bare.
    pub identity: String,
    /// Contacts, `tel:…` / `mailto:…`.
    pub contact: Vec<String>,
    /// Address.
    pub address: LegacyAddress,
}

/// DIVOC address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LegacyAddress {
    /// Line 1.
    pub address_line1: String,
    /// Line 2.
    pub address_line2: String,
    /// District.
    pub district: String,
    /// State.
    pub state: String,
    /// Postal code; a number in DIVOC's examples.
    pub pincode: Loose,
}

/// DIVOC `vaccination`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LegacyVaccination {
    /// Vaccine name.
    pub name: String,
    /// Batch.
    pub batch: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Date-time of vaccination.
    pub date: String,
    /// Start of protection.
    pub effective_start: String,
    /// End of protection.
    pub effective_until: String,
    /// Dose number.
    pub dose: Loose,
    /// Doses in the series.
    pub total_doses: Loose,
}

/// DIVOC `vaccinator`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyVaccinator {
    /// Name.
    pub name: String,
}

/// DIVOC `facility`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyFacility {
    /// Name.
    pub name: String,
    /// Address.
    pub address: LegacyAddress,
}

/// A scalar DIVOC sent as either a string or a number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Loose {
    /// Absent or null.
    #[default]
    None,
    /// A number.
    Number(serde_json::Number),
    /// A string.
    Text(String),
}

impl Loose {
    fn text(&self) -> String {
        match self {
            Loose::None => String::new(),
            Loose::Number(n) => n.to_string(),
            Loose::Text(s) => s.trim().to_owned(),
        }
    }

    /// `Ok(None)` when absent, `Err` when present but not a whole number
    /// in range.
    fn number(&self) -> Result<Option<u32>, ()> {
        match self {
            Loose::None => Ok(None),
            Loose::Text(s) if s.trim().is_empty() => Ok(None),
            other => other.text().parse().map(Some).map_err(|_| ()),
        }
    }
}

/// Native field path → the DIVOC field a legacy integrator sent, so that
/// errors on the DIVOC route name fields in the caller's vocabulary.
pub fn legacy_field(native: &str) -> String {
    const MAP: &[(&str, &str)] = &[
        ("pre_enrollment_code", "preEnrollmentCode"),
        ("recipient.identity.type", "recipient.identity"),
        ("recipient.identity.value", "recipient.identity"),
        ("recipient.contacts", "recipient.contact"),
        ("vaccination.program", "programId"),
        ("vaccination.vaccine", "vaccination.name"),
        ("vaccination.total_doses", "vaccination.totalDoses"),
        ("vaccination.effective_start", "vaccination.effectiveStart"),
        ("vaccination.effective_until", "vaccination.effectiveUntil"),
        (".line1", ".addressLine1"),
        (".line2", ".addressLine2"),
    ];
    let mut out = native.to_owned();
    for (from, to) in MAP {
        if out.contains(from) {
            out = out.replacen(from, to, 1);
        }
    }
    out
}

impl CertifyRequest {
    /// Parses one DIVOC item; a wrongly typed value names its (DIVOC) field.
    pub fn from_json(value: Value) -> Result<CertifyRequest, CertError> {
        serde_path_to_error::deserialize(value)
            .map_err(|e| CertError::field(e.path().to_string(), "wrong type"))
    }

    /// Maps to the native request. `default_program` applies when the item
    /// has no `programId`. Values that cannot be mapped (a non-numeric
    /// dose) are field errors named in DIVOC's vocabulary; everything else
    /// is left to [`IssueRequest::validate`].
    pub fn into_issue_request(self, default_program: &str) -> Result<IssueRequest, CertError> {
        let mut errors = Vec::new();
        let mut number = |field: &str, v: &Loose| match v.number() {
            Ok(n) => n,
            Err(()) => {
                errors.push(FieldError::new(field, "must be a whole number"));
                None
            }
        };
        let age = number("recipient.age", &self.recipient.age);
        let dose = number("vaccination.dose", &self.vaccination.dose);
        let total_doses = number("vaccination.totalDoses", &self.vaccination.total_doses);
        if !errors.is_empty() {
            return Err(CertError::Validation(errors));
        }
        let r = self.recipient;
        let v = self.vaccination;
        let optional = |s: String| Some(s).filter(|s| !s.trim().is_empty());
        Ok(IssueRequest {
            recipient: Recipient {
                name: r.name,
                // DIVOC's schema allows a null dob beside an age.
                dob: r.dob.and_then(optional),
                age,
                gender: r.gender,
                nationality: r.nationality,
                identity: split_identity(&r.identity),
                contacts: r.contact,
                address: address(r.address),
            },
            vaccination: Vaccination {
                program: self
                    .program_id
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| default_program.to_owned()),
                vaccine: v.name,
                manufacturer: v.manufacturer,
                batch: v.batch,
                date: v.date,
                dose: dose.unwrap_or(0),
                total_doses: total_doses.unwrap_or(0),
                effective_start: optional(v.effective_start),
                effective_until: optional(v.effective_until),
            },
            facility: Facility {
                id: None,
                name: self.facility.name,
                address: address(self.facility.address),
            },
            vaccinator: Vaccinator {
                name: self.vaccinator.name,
            },
            pre_enrollment_code: self.pre_enrollment_code,
            meta: self.meta,
            // DIVOC's certify payload has no payment.
            payment: None,
        })
    }
}

/// DIVOC wrote identities as `did:<scheme>:<number>`
/// (e.g. `did:in.gov.uidai.aadhaar:2342343334`).
fn split_identity(identity: &str) -> Identity {
    let identity = identity.trim();
    match identity
        .strip_prefix("did:")
        .and_then(|rest| rest.rsplit_once(':'))
    {
        Some((scheme, number)) if !scheme.is_empty() && !number.is_empty() => Identity {
            kind: scheme.to_owned(),
            value: number.to_owned(),
        },
        _ if identity.is_empty() => Identity::default(),
        _ => Identity {
            kind: "id".to_owned(),
            value: identity.to_owned(),
        },
    }
}

fn address(a: LegacyAddress) -> Address {
    Address {
        line1: a.address_line1,
        line2: a.address_line2,
        district: a.district,
        state: a.state,
        pincode: a.pincode.text(),
        country: String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identity_did_form_is_split() {
        let id = split_identity("did:in.gov.uidai.aadhaar:2342343334");
        assert_eq!(id.kind, "in.gov.uidai.aadhaar");
        assert_eq!(id.value, "2342343334");
        assert_eq!(split_identity("P1234567").kind, "id");
        assert_eq!(split_identity(""), Identity::default());
    }

    #[test]
    fn legacy_field_names() {
        assert_eq!(legacy_field("vaccination.vaccine"), "vaccination.name");
        assert_eq!(legacy_field("pre_enrollment_code"), "preEnrollmentCode");
        assert_eq!(
            legacy_field("facility.address.line1"),
            "facility.address.addressLine1"
        );
        assert_eq!(
            legacy_field("recipient.contacts[2]"),
            "recipient.contact[2]"
        );
    }
}
