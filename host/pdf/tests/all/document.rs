//! `CertificateDocument::from_credentials`: the stored credentials (one per
//! dose, the shape `divoc_certificates::credential::build_credential`
//! makes) to what the page shows.

use divoc_pdf::{CertificateDocument, PdfError};
use serde_json::json;

use crate::common::*;

#[test]
fn reads_recipient_and_doses_in_dose_order() {
    let doc = two_doses();
    assert_eq!(doc.certificate_id, "1-2HZ0RSJ9WQ5", "from the latest dose");
    assert_eq!(doc.issuer, "did:web:divoc.example.org");
    assert_eq!(doc.qr_text, qr_text("two-doses"));
    let r = &doc.recipient;
    assert_eq!(r.name, "Bhaya Mitra");
    assert_eq!(r.birth_date.as_deref(), Some("1994-11-30"));
    assert_eq!(r.age, None);
    assert_eq!(r.gender, "Male");
    assert_eq!(r.nationality, "IN");
    assert_eq!(r.identity_scheme, "in.gov.uidai.aadhaar");
    assert_eq!(r.identity_value, "2342343334");
    assert_eq!(
        r.address,
        "no. 23, some lane, some road, some nagar, Bengaluru South, Karnataka, 560033"
    );
    // Stored second dose first; printed in dose order.
    let doses: Vec<u32> = doc.doses.iter().map(|d| d.dose).collect();
    assert_eq!(doses, [1, 2]);
    let d = &doc.doses[0];
    assert_eq!(d.total_doses, 2);
    assert!(!d.booster);
    assert_eq!(d.vaccine, "CoVax");
    assert_eq!(d.manufacturer, "COVPharma");
    assert_eq!(d.batch, "MB3428BX");
    assert_eq!(d.date, "2021-03-02T09:21:18Z");
    assert_eq!(d.facility_name, "ABC Medical Center");
    assert_eq!(
        d.facility_address,
        "4th cross, Bengaluru South, Karnataka, 560034"
    );
    assert_eq!(d.vaccinator, "Sooraj Singh");
    assert_eq!(d.valid_from.as_deref(), Some("2021-03-02"));
    assert_eq!(d.valid_until.as_deref(), Some("2030-03-02"));
}

#[test]
fn tolerates_variants_of_the_shape() {
    // Issuer as an object, subject as an array, numbers as strings, no
    // protection window (the credential's validity is used), a booster
    // inferred from dose > totalDoses, and unknown extra members.
    let vc = json!({
        "id": "urn:uuid:not-our-url",
        "issuer": { "id": "did:web:x", "name": "Ministry of Health" },
        "validFrom": "2022-01-01T00:00:00Z",
        "validUntil": "2023-01-01T00:00:00Z",
        "credentialSubject": [{
            "name": "A", "age": 30, "extra": true,
            "vaccination": { "dose": "3", "totalDoses": 2, "vaccinator": "Dr B" }
        }]
    });
    let doc = CertificateDocument::from_credentials(&[vc], "Q").unwrap();
    assert_eq!(doc.issuer, "Ministry of Health");
    assert_eq!(doc.certificate_id, "urn:uuid:not-our-url");
    assert_eq!(doc.recipient.age, Some(30));
    let d = &doc.doses[0];
    assert_eq!((d.dose, d.total_doses, d.booster), (3, 2, true));
    assert_eq!(d.vaccinator, "Dr B");
    assert_eq!(d.valid_from.as_deref(), Some("2022-01-01T00:00:00Z"));
    assert_eq!(d.valid_until.as_deref(), Some("2023-01-01T00:00:00Z"));
    // And it renders (dates print as dates).
    let text = parse(&renderer().render(&doc, "en").unwrap()).squashed();
    assert!(text.contains("from2022-01-01until2023-01-01"), "{text}");
    assert!(text.contains("IssuedbyMinistryofHealth"), "{text}");
}

#[test]
fn rejects_what_is_not_a_vaccination_credential() {
    let err =
        |v: Vec<serde_json::Value>| CertificateDocument::from_credentials(&v, "Q").unwrap_err();
    assert!(matches!(err(vec![]), PdfError::Credential(m) if m.contains("no credentials")));
    assert!(matches!(
        err(vec![json!({ "id": "x" })]),
        PdfError::Credential(m) if m.contains("credentials[0]") && m.contains("credentialSubject")
    ));
    let no_event = json!({ "credentialSubject": { "name": "A" } });
    let ok = credentials("two-doses")[0].clone();
    assert!(matches!(
        err(vec![ok, no_event]),
        PdfError::Credential(m) if m.contains("credentials[1]") && m.contains("vaccination")
    ));
    assert!(matches!(err(vec![json!(null)]), PdfError::Credential(_)));
}
