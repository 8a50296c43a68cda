//! The native issue request and its validation.
//!
//! Every field is `#[serde(default)]`, so a missing field does not abort
//! parsing at the first gap: [`IssueRequest::validate`] then reports *all*
//! problems at once, each naming its dotted field path. Only a value of the
//! wrong JSON type stops parsing; [`IssueRequest::from_json`] still names
//! that field (via `serde_path_to_error`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CertError, FieldError};
use divoc_time::{parse_date, parse_instant, Date, Zone};

/// Longest accepted free-text field, in characters.
const MAX_TEXT: usize = 256;
/// Highest dose number accepted; anything larger is a data-entry error.
const MAX_DOSE: u32 = 20;
/// Oldest accepted recipient, in years.
const MAX_AGE: u32 = 150;
/// Vaccination times may be this far in the future (clock skew between the
/// facility's device and the host).
const FUTURE_SKEW_MS: i64 = 86_400_000;

/// A request to issue one vaccination certificate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IssueRequest {
    /// Who was vaccinated.
    pub recipient: Recipient,
    /// What was administered.
    pub vaccination: Vaccination,
    /// Where.
    pub facility: Facility,
    /// By whom.
    pub vaccinator: Vaccinator,
    /// The recipient's reference in the program (DIVOC's pre-enrolment
    /// code); with program and dose it identifies the certificate.
    pub pre_enrollment_code: String,
    /// Opaque integrator data; stored in the credential's hash but not in
    /// the credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// How the vaccination is paid for, for programs configured to charge
    /// (see [`crate::hooks`]); ignored by programs that do not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<Payment>,
}

/// A payment: the mode a payment plugin handles and the mode's own
/// reference (a voucher code, a card token...). Never put into the
/// credential, the audit log or the events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Payment {
    /// Payment mode, e.g. `voucher`.
    pub mode: String,
    /// The mode's reference, e.g. the voucher code.
    pub reference: String,
}

/// The vaccinated person.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Recipient {
    /// Full name as on the identity document.
    pub name: String,
    /// Date of birth, `YYYY-MM-DD`; required unless `age` is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dob: Option<String>,
    /// Age in years, for programs that record no date of birth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
    /// Gender as recorded by the program.
    pub gender: String,
    /// Nationality (ISO 3166 code or name).
    pub nationality: String,
    /// The identity document used.
    pub identity: Identity,
    /// Contacts (`tel:…`, `mailto:…`), used for distribution and lookups.
    pub contacts: Vec<String>,
    /// Postal address.
    pub address: Address,
}

/// An identity document: scheme and number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Identity {
    /// Scheme, e.g. `passport`, `in.gov.uidai.aadhaar`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Document number.
    pub value: String,
}

/// A postal address; every part optional, as programs record different parts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Address {
    /// First address line.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub line1: String,
    /// Second address line.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub line2: String,
    /// District.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub district: String,
    /// State or province.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// Postal code.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pincode: String,
    /// Country.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub country: String,
}

impl Address {
    fn is_empty(&self) -> bool {
        *self == Address::default()
    }
}

/// The vaccination event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Vaccination {
    /// Program id (slug), e.g. `covid-19`.
    pub program: String,
    /// Vaccine (product) name.
    pub vaccine: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Batch / lot number; optional (DIVOC's schema and WHO DDCC's core
    /// data set do not require it), but pharmacovigilance by batch needs it.
    pub batch: String,
    /// When it was administered: `YYYY-MM-DD`, an RFC 3339 date-time with
    /// any offset, or a local date-time in the deployment's time zone.
    /// Issuance normalises it to UTC ([`IssueRequest::normalize`]).
    pub date: String,
    /// Dose number, from 1. Greater than `total_doses` means a booster.
    pub dose: u32,
    /// Doses in the primary series.
    pub total_doses: u32,
    /// First day of protection, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_start: Option<String>,
    /// Last day of protection, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_until: Option<String>,
}

impl Vaccination {
    /// A dose beyond the primary series (VC claim `booster: true`).
    pub fn is_booster(&self) -> bool {
        self.dose > self.total_doses
    }
}

/// The vaccination facility.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Facility {
    /// The facility's id in the registry, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Facility name.
    pub name: String,
    /// Facility address.
    pub address: Address,
}

/// The vaccinator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Vaccinator {
    /// Vaccinator's name.
    pub name: String,
}

impl IssueRequest {
    /// Parses a request from JSON. A value of the wrong type is reported as
    /// a validation error naming its field; missing fields are left for
    /// [`validate`](Self::validate).
    pub fn from_json(value: Value) -> Result<IssueRequest, CertError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            // serde's message may quote the offending value; keep only the
            // type mismatch part so personal data is not echoed.
            let message = e
                .inner()
                .to_string()
                .split(", expected")
                .nth(1)
                .map(|expected| format!("expected{expected}"))
                .unwrap_or_else(|| "unknown field or wrong type".to_owned());
            CertError::field(if field == "." { String::new() } else { field }, message)
        })
    }

    /// Checks every field and returns all problems, each naming its path.
    /// `now_ms` is the reference time for "not in the future" checks;
    /// `zone` is the deployment's time zone, in which a local date-time is
    /// read.
    pub fn validate_at(&self, now_ms: i64, zone: &Zone) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::default();
        let r = &self.recipient;
        v.text("recipient.name", &r.name, true);
        match (&r.dob, r.age) {
            (None, None) => v.err("recipient.dob", "required (or recipient.age)"),
            (Some(dob), _) => match parse_date(dob) {
                None => v.err("recipient.dob", "must be a date YYYY-MM-DD"),
                Some(d) if d.start_ms() > now_ms => v.err("recipient.dob", "is in the future"),
                Some(d) if d.age_on(Date::from_ms(now_ms)) > i64::from(MAX_AGE) => {
                    v.err("recipient.dob", "is more than 150 years ago")
                }
                Some(_) => {}
            },
            (None, Some(_)) => {}
        }
        if r.age.is_some_and(|a| a > MAX_AGE) {
            v.err("recipient.age", "must be between 0 and 150");
        }
        v.text("recipient.gender", &r.gender, true);
        v.text("recipient.nationality", &r.nationality, true);
        v.text("recipient.identity.type", &r.identity.kind, true);
        v.text("recipient.identity.value", &r.identity.value, true);
        for (i, c) in r.contacts.iter().enumerate() {
            v.text(&format!("recipient.contacts[{i}]"), c, true);
        }
        v.address("recipient.address", &r.address);

        let x = &self.vaccination;
        if x.program.is_empty() {
            v.err("vaccination.program", "required");
        } else if x.program.len() > 64
            || !x
                .program
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            v.err(
                "vaccination.program",
                "must be 1-64 characters of A-Z a-z 0-9 - _ .",
            );
        }
        v.text("vaccination.vaccine", &x.vaccine, true);
        v.text("vaccination.manufacturer", &x.manufacturer, true);
        v.text("vaccination.batch", &x.batch, false);
        match parse_instant(&x.date, zone) {
            _ if x.date.is_empty() => v.err("vaccination.date", "required"),
            None => v.err(
                "vaccination.date",
                "must be YYYY-MM-DD or an RFC 3339 date-time (any offset, or local time \
                 in the deployment's time zone); an impossible date or time is refused",
            ),
            Some(t) if t > now_ms + FUTURE_SKEW_MS => v.err("vaccination.date", "is in the future"),
            Some(_) => {}
        }
        if !(1..=MAX_DOSE).contains(&x.dose) {
            v.err("vaccination.dose", "must be between 1 and 20");
        }
        if !(1..=MAX_DOSE).contains(&x.total_doses) {
            v.err("vaccination.total_doses", "must be between 1 and 20");
        }
        let start = v.date("vaccination.effective_start", x.effective_start.as_deref());
        let until = v.date("vaccination.effective_until", x.effective_until.as_deref());
        if let (Some(s), Some(u)) = (start, until) {
            if u < s {
                v.err(
                    "vaccination.effective_until",
                    "is before vaccination.effective_start",
                );
            }
        }

        if let Some(id) = &self.facility.id {
            v.text("facility.id", id, true);
        }
        v.text("facility.name", &self.facility.name, true);
        v.address("facility.address", &self.facility.address);
        v.text("vaccinator.name", &self.vaccinator.name, true);

        let code = &self.pre_enrollment_code;
        if code.is_empty() {
            v.err("pre_enrollment_code", "required");
        } else if code.chars().count() > 64
            || code.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            v.err(
                "pre_enrollment_code",
                "must be 1-64 characters without spaces",
            );
        }
        if self.meta.as_ref().is_some_and(|m| !m.is_object()) {
            v.err("meta", "must be an object");
        }
        if let Some(p) = &self.payment {
            v.text("payment.mode", &p.mode, true);
            v.text("payment.reference", &p.reference, true);
        }
        v.finish()
    }

    /// The request with its vaccination time in UTC: an offset or a local
    /// time (read in `zone`) becomes the same instant written with `Z`, so
    /// the credential, the stored payload and its re-send hash carry one
    /// form. A bare date stays a date. Call after validation.
    pub fn normalize(&mut self, zone: &Zone) {
        let date = &mut self.vaccination.date;
        if parse_date(date).is_some() {
            return;
        }
        if let Some(t) = parse_instant(date, zone) {
            *date = divoc_time::format_millis(t);
        }
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn err(&mut self, field: &str, message: &str) {
        self.errors.push(FieldError::new(field, message));
    }

    fn text(&mut self, field: &str, value: &str, required: bool) {
        if value.trim().is_empty() {
            if required {
                self.err(field, "required");
            }
        } else if value.chars().count() > MAX_TEXT {
            self.err(field, "longer than 256 characters");
        } else if value.chars().any(char::is_control) {
            self.err(field, "contains control characters");
        }
    }

    fn address(&mut self, field: &str, a: &Address) {
        if a.is_empty() {
            return;
        }
        for (part, value) in [
            ("line1", &a.line1),
            ("line2", &a.line2),
            ("district", &a.district),
            ("state", &a.state),
            ("pincode", &a.pincode),
            ("country", &a.country),
        ] {
            self.text(&format!("{field}.{part}"), value, false);
        }
    }

    fn date(&mut self, field: &str, value: Option<&str>) -> Option<Date> {
        let value = value?;
        let d = parse_date(value);
        if d.is_none() {
            self.err(field, "must be a date YYYY-MM-DD");
        }
        d
    }

    fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}
