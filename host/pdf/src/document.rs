//! What a printed certificate shows, independent of language and layout, and
//! how to read it from the stored credentials.

use serde_json::Value;

use crate::error::PdfError;

/// The content of one printed certificate: a recipient, every dose they
/// received, the QR of the certificate asked for and, optionally, a second
/// QR of the same certificate in another format.
///
/// Strings are printed as given (after replacing control characters and
/// cutting very long values); values equal to a key of the template's
/// `[values]` table are replaced by its translation (e.g. `Male`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CertificateDocument {
    /// The certificate id printed on the page (the id asked for).
    pub certificate_id: String,
    /// The issuer, as printed (a DID or an organisation's name).
    pub issuer: String,
    /// Who was vaccinated.
    pub recipient: Recipient,
    /// Every dose, in the order printed (by dose number).
    pub doses: Vec<Dose>,
    /// The QR content, e.g. `DIVOC1:…` (see `divoc_certificates::qr`).
    pub qr_text: String,
    /// A second QR, printed under the first (see [`SecondQr`]).
    pub second_qr: Option<SecondQr>,
}

/// A second QR code on the first page: the same certificate in another
/// format (e.g. its EU DCC, `HC1:…`), for verifiers that read only that
/// format. The template's `[second_qr]` says which format and its label
/// (`PdfRenderer::second_qr`); the caller makes the artifact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecondQr {
    /// Printed under the code, e.g. `EU Digital COVID Certificate`.
    pub label: String,
    /// The QR content, e.g. `HC1:…`.
    pub text: String,
}

/// The vaccinated person.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recipient {
    /// Full name.
    pub name: String,
    /// Date of birth (`YYYY-MM-DD`), when known.
    pub birth_date: Option<String>,
    /// Age in years, when the date of birth is not known.
    pub age: Option<u32>,
    /// Gender as recorded (`Male`, `Female`, `Other`…).
    pub gender: String,
    /// Nationality as recorded (e.g. `IN`).
    pub nationality: String,
    /// Identity document scheme (e.g. `in.gov.uidai.aadhaar`); may be empty.
    pub identity_scheme: String,
    /// Identity document number; may be empty.
    pub identity_value: String,
    /// Postal address on one line; may be empty.
    pub address: String,
}

/// One vaccination event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dose {
    /// Dose number (1-based).
    pub dose: u32,
    /// Doses in the primary schedule.
    pub total_doses: u32,
    /// A booster (dose beyond the primary schedule).
    pub booster: bool,
    /// Vaccine name.
    pub vaccine: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Batch (lot) number.
    pub batch: String,
    /// Date of vaccination; ISO timestamps are printed as their date.
    pub date: String,
    /// Facility name.
    pub facility_name: String,
    /// Facility address on one line; may be empty.
    pub facility_address: String,
    /// Vaccinator's name.
    pub vaccinator: String,
    /// Protection starts (date), when known.
    pub valid_from: Option<String>,
    /// Protection ends (date), when known.
    pub valid_until: Option<String>,
}

impl CertificateDocument {
    /// Builds the document from the signed credentials of one recipient
    /// (one W3C VC per dose, as `divoc_certificates::credential` builds
    /// them), in any order, and the QR text of the certificate asked for.
    ///
    /// Doses are ordered by dose number, then date. The recipient, the
    /// issuer and the certificate id come from the latest dose; the caller
    /// may overwrite `certificate_id` with the id requested.
    pub fn from_credentials(
        credentials: &[Value],
        qr_text: impl Into<String>,
    ) -> Result<CertificateDocument, PdfError> {
        if credentials.is_empty() {
            return Err(PdfError::Credential("no credentials".into()));
        }
        let mut doses = Vec::with_capacity(credentials.len());
        for (i, vc) in credentials.iter().enumerate() {
            let subject = subject_of(vc).ok_or_else(|| {
                PdfError::Credential(format!("credentials[{i}]: no credentialSubject object"))
            })?;
            let x = subject
                .get("vaccination")
                .filter(|v| v.is_object())
                .ok_or_else(|| {
                    PdfError::Credential(format!(
                        "credentials[{i}]: credentialSubject has no vaccination object"
                    ))
                })?;
            doses.push((i, dose_of(vc, x)));
        }
        doses.sort_by(|(_, a), (_, b)| (a.dose, a.date.as_str()).cmp(&(b.dose, b.date.as_str())));
        // The latest dose carries the most recent recipient details.
        let vc = doses
            .last()
            .and_then(|(i, _)| credentials.get(*i))
            .unwrap_or(&Value::Null);
        let subject = subject_of(vc).unwrap_or(&Value::Null);
        Ok(CertificateDocument {
            certificate_id: certificate_id_of(vc),
            issuer: issuer_of(vc),
            recipient: recipient_of(subject),
            doses: doses.into_iter().map(|(_, d)| d).collect(),
            qr_text: qr_text.into(),
            second_qr: None,
        })
    }
}

fn subject_of(vc: &Value) -> Option<&Value> {
    let s = vc.get("credentialSubject")?;
    // VC 2.0 allows an array of subjects; ours has one.
    let s = match s {
        Value::Array(a) => a.first()?,
        other => other,
    };
    s.is_object().then_some(s)
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn opt_text(v: &Value, key: &str) -> Option<String> {
    Some(text(v, key)).filter(|s| !s.is_empty())
}

fn number(v: &Value, key: &str) -> u32 {
    match v.get(key) {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// The certificate id: the last path segment of the credential's `id` URL
/// (`{base}/v1/certificates/{id}`), else the whole `id`.
fn certificate_id_of(vc: &Value) -> String {
    let id = text(vc, "id");
    match id.rsplit_once("/v1/certificates/") {
        Some((_, tail)) if !tail.is_empty() => tail.to_string(),
        _ => id,
    }
}

/// VC 2.0 §4.7: the issuer is a URL or an object with an `id` (and perhaps
/// a `name`, which reads better on paper).
fn issuer_of(vc: &Value) -> String {
    match vc.get("issuer") {
        Some(Value::String(s)) => s.clone(),
        Some(o @ Value::Object(_)) => opt_text(o, "name").unwrap_or_else(|| text(o, "id")),
        _ => String::new(),
    }
}

fn address_line(v: Option<&Value>) -> String {
    let Some(a) = v else {
        return String::new();
    };
    if let Value::String(s) = a {
        return s.clone();
    }
    [
        "addressLine1",
        "addressLine2",
        "district",
        "state",
        "postalCode",
        "country",
    ]
    .iter()
    .map(|k| text(a, k))
    .filter(|s| !s.trim().is_empty())
    .collect::<Vec<_>>()
    .join(", ")
}

fn recipient_of(s: &Value) -> Recipient {
    let identity = s.get("identity").unwrap_or(&Value::Null);
    Recipient {
        name: text(s, "name"),
        birth_date: opt_text(s, "birthDate"),
        age: s
            .get("age")
            .and_then(Value::as_u64)
            .and_then(|a| u32::try_from(a).ok()),
        gender: text(s, "gender"),
        nationality: text(s, "nationality"),
        identity_scheme: text(identity, "scheme"),
        identity_value: text(identity, "value"),
        address: address_line(s.get("address")),
    }
}

fn dose_of(vc: &Value, x: &Value) -> Dose {
    let facility = x.get("facility").unwrap_or(&Value::Null);
    let vaccinator = match x.get("vaccinator") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => text(v, "name"),
        None => String::new(),
    };
    let dose = number(x, "dose");
    let total_doses = number(x, "totalDoses");
    Dose {
        dose,
        total_doses,
        booster: x
            .get("booster")
            .and_then(Value::as_bool)
            .unwrap_or(total_doses > 0 && dose > total_doses),
        vaccine: text(x, "vaccine"),
        manufacturer: text(x, "manufacturer"),
        batch: text(x, "batch"),
        date: text(x, "date"),
        facility_name: text(facility, "name"),
        facility_address: address_line(facility.get("address")),
        vaccinator,
        // The vaccine's protection window, else the credential's validity.
        valid_from: opt_text(x, "effectiveStart").or_else(|| opt_text(vc, "validFrom")),
        valid_until: opt_text(x, "effectiveUntil").or_else(|| opt_text(vc, "validUntil")),
    }
}
