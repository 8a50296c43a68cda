//! Step 4: QR content, size and rendering for a typical one-dose
//! certificate.

use divoc_certificates::qr;
use divoc_certificates::verify::StatusVerdict;
use divoc_certificates::VerifyInput;

use crate::common::*;

#[test]
fn typical_one_dose_certificate_qr_version_and_round_trip() {
    let e = env();
    let id = e.svc.issue(&sample("valid-one-dose"), "a").unwrap().id;
    let vc = e.svc.get(&id).unwrap().credential;
    let json_len = vc.to_string().len();
    let text = e.svc.qr_text(&id).unwrap();
    let version = qr::version_of(&text).unwrap();
    // Reported in README.md; `cargo test -p divoc-certificates qr -- --nocapture`.
    println!(
        "typical one-dose certificate: credential {json_len} bytes JSON, QR text {} chars \
         (alphanumeric), QR version {version} at level M",
        text.len()
    );
    assert!(text.starts_with("DIVOC1:"));
    assert!(version <= 40);

    // Verification straight from the scanned text.
    let v = e.svc.verify(VerifyInput::QrText(text.clone())).unwrap();
    assert!(v.valid && v.checks.status == StatusVerdict::Valid, "{v:?}");
    assert_eq!(
        v.claims.unwrap().certificate_id.as_deref(),
        Some(id.as_str())
    );
    // Garbage is a field error on "input", not a crash or an "invalid" verdict.
    assert!(matches!(
        e.svc.verify(VerifyInput::QrText("DIVOC1:%%%".into())),
        Err(divoc_certificates::CertError::Validation(f)) if f[0].field == "input"
    ));

    let png = qr::render_png(text.as_bytes(), 4).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    if let Ok(path) = std::env::var("DIVOC_QR_PNG_OUT") {
        std::fs::write(path, &png).unwrap();
    }
    let svg = qr::render_svg(text.as_bytes()).unwrap();
    assert!(svg.contains("<svg"));

    // DIVOC's legacy form: zip with certificate.json.
    let zip = qr::legacy_zip(&vc).unwrap();
    assert_eq!(qr::decode_legacy_zip(&zip).unwrap(), vc);
    println!("legacy DIVOC zip form: {} bytes (byte mode)", zip.len());
}
