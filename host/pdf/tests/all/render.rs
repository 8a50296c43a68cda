//! Rendering the shipped templates: the PDF parses, embeds its fonts, shows
//! every dose, reads back as text in each language, and carries the QR.

use divoc_pdf::{Dose, PdfError};

use crate::common::*;

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn english_certificate_has_every_field_and_dose() {
    let doc = two_doses();
    let pdf = renderer().render(&doc, "en").unwrap();
    let p = parse(&pdf);
    assert_eq!(p.pages.len(), 1);
    let text = p.squashed();
    for expected in [
        "CertificateforCOVID-19Vaccination",
        "Beneficiarydetails",
        "BhayaMitra",
        "1994-11-30",
        "Aadhaar:2342343334",
        "India",
        "1-2HZ0RSJ9WQ5",
        "Vaccinationdetails",
        "Dose1of2",
        "Dose2of2",
        "ABCMedicalCenter,4thcross,BengaluruSouth,Karnataka,560034",
        "from2021-03-02until2030-03-02",
        "from2021-04-01until2030-04-01",
        "Page1of1",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from {text}");
    }
    // One block per dose, each with its own batch and date.
    assert_eq!(count(&text, "Batchnumber"), 2);
    assert_eq!(count(&text, "MB3428BX"), 1);
    assert_eq!(count(&text, "MB3428BY"), 1);
    assert_eq!(count(&text, "Vaccinatedby"), 2);
    // Dose 1 is printed before dose 2 although stored after it.
    assert!(text.find("Dose1of2").unwrap() < text.find("Dose2of2").unwrap());
}

#[test]
fn hindi_certificate_reads_back_in_devanagari() {
    let pdf = renderer().render(&two_doses(), "hi").unwrap();
    let p = parse(&pdf);
    assert_eq!(p.pages.len(), 1);
    let text = p.squashed();
    for expected in [
        // Conjuncts (प्र, त्र, र्थ), vowel signs before their consonant (ि),
        // and nasalisation (ं) must all come back in logical order.
        "कोविड-19टीकाकरणप्रमाणपत्र",
        "लाभार्थीकाविवरण",
        "जन्मतिथि",
        "पुरुष",
        "आधार:2342343334",
        "भारत",
        "खुराक1/2",
        "खुराक2/2",
        "टीकाकरणकीतिथि",
        "बैचसंख्या",
        "2021-03-02से2030-03-02तक",
        "BhayaMitra",
        "पृष्ठ1/1",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from {text}");
    }
    assert_eq!(count(&text, "बैचसंख्या"), 2);
    assert!(!text.contains("Male"), "the gender is translated");
}

#[test]
fn fonts_are_embedded_subset_and_mapped_to_unicode() {
    for (lang, expected) in [
        ("en", vec!["NotoSans-Bold", "NotoSans-Regular"]),
        (
            "hi",
            vec![
                "NotoSans-Regular",
                "NotoSansDevanagari-Bold",
                "NotoSansDevanagari-Regular",
            ],
        ),
    ] {
        let p = parse(&renderer().render(&two_doses(), lang).unwrap());
        let fonts = p.fonts();
        let stripped: Vec<&str> = fonts
            .iter()
            .map(|f| {
                let (tag, name) = f.split_once('+').expect("a subset tag");
                assert!(
                    tag.len() == 6 && tag.chars().all(|c| c.is_ascii_uppercase()),
                    "{f}"
                );
                name
            })
            .collect();
        let mut sorted = stripped.clone();
        sorted.sort();
        assert_eq!(sorted, expected, "{lang}");
        // Every font has its program embedded and a ToUnicode map.
        let programs = p
            .dicts()
            .filter(|d| d.has(b"FontFile2") || d.has(b"FontFile3"))
            .count();
        assert_eq!(
            programs,
            fonts.len(),
            "{lang}: one embedded program per font"
        );
        let type0 = p
            .dicts()
            .filter(|d| d.get(b"Subtype").and_then(|s| s.as_name()).ok() == Some(b"Type0"));
        for d in type0 {
            assert!(d.has(b"ToUnicode") && d.has(b"DescendantFonts"));
        }
    }
}

#[test]
fn the_qr_code_scans_back_to_the_payload() {
    let doc = two_doses();
    for lang in ["en", "hi"] {
        let p = parse(&renderer().render(&doc, lang).unwrap());
        assert_eq!(p.scan_qr(), doc.qr_text, "{lang}");
    }
}

#[test]
fn many_doses_flow_onto_more_pages() {
    let mut doc = two_doses();
    let template = doc.doses[1].clone();
    doc.doses = (1..=12)
        .map(|n| Dose {
            dose: n,
            total_doses: 2,
            booster: n > 2,
            batch: format!("BATCH-{n:02}"),
            ..template.clone()
        })
        .collect();
    let pdf = renderer().render(&doc, "en").unwrap();
    let p = parse(&pdf);
    assert!(p.pages.len() >= 2, "12 doses on {} page(s)", p.pages.len());
    let pages = p.pages.len();
    let text = p.squashed();
    for n in 1..=12 {
        assert_eq!(count(&text, &format!("BATCH-{n:02}")), 1, "dose {n} once");
    }
    assert_eq!(count(&text, "Dose1of2"), 1);
    assert_eq!(count(&text, "Boosterdose(3)"), 1);
    assert_eq!(count(&text, "Boosterdose(12)"), 1);
    // Footer and page number on every page; the QR only once.
    for (i, page) in p.pages.iter().enumerate() {
        assert!(squash(page).contains(&format!("Page{}of{pages}", i + 1)));
        assert!(squash(page).contains("Thiscertificateisdigitallysigned"));
    }
    assert_eq!(p.scan_qr(), doc.qr_text);
    // A dose is never split over two pages: its heading and its last row
    // are on the same page.
    for n in 3..=12 {
        let heading = format!("Boosterdose({n})");
        let batch = format!("BATCH-{n:02}");
        let on = |needle: &str| p.pages.iter().position(|pg| squash(pg).contains(needle));
        assert_eq!(on(&heading), on(&batch), "dose {n}");
    }
}

#[test]
fn unknown_language_is_a_typed_error_naming_lang() {
    let err = renderer().render(&two_doses(), "xx").unwrap_err();
    match &err {
        PdfError::UnknownLanguage { lang, available } => {
            assert_eq!(lang, "xx");
            assert_eq!(available, &["en", "hi"]);
        }
        other => panic!("expected UnknownLanguage, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.starts_with("lang:"), "{message}");
    assert!(
        message.contains("\"xx\"") && message.contains("en, hi"),
        "{message}"
    );
    // Hostile input is not echoed at length.
    let long = "x".repeat(10_000);
    match renderer().render(&two_doses(), &long).unwrap_err() {
        PdfError::UnknownLanguage { lang, .. } => assert!(lang.len() <= 64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn language_tags_resolve_by_case_and_primary_subtag() {
    let r = renderer();
    assert_eq!(r.languages(), ["en", "hi"]);
    assert_eq!(r.default_language(), "en");
    assert_eq!(r.language_name("hi"), Some("हिन्दी"));
    assert_eq!(r.resolve_language("hi-IN"), Some("hi"));
    assert_eq!(r.resolve_language("EN"), Some("en"));
    assert_eq!(r.resolve_language(" en_GB "), Some("en"));
    assert_eq!(r.resolve_language("fr"), None);
    assert_eq!(r.resolve_language(""), None);
    let doc = two_doses();
    assert_eq!(
        r.render(&doc, "hi-IN").unwrap(),
        r.render(&doc, "hi").unwrap()
    );
}

#[test]
fn output_is_deterministic() {
    let doc = two_doses();
    let other = divoc_pdf::PdfRenderer::load(&templates_dir()).unwrap();
    for lang in ["en", "hi"] {
        let a = renderer().render(&doc, lang).unwrap();
        assert_eq!(
            a,
            renderer().render(&doc, lang).unwrap(),
            "{lang}: same renderer"
        );
        assert_eq!(
            a,
            other.render(&doc, lang).unwrap(),
            "{lang}: another renderer"
        );
    }
}

#[test]
fn a_name_outside_the_ready_made_subsets_still_embeds_and_reads_back() {
    // Devanagari and accented names need glyphs the fonts' static subsets
    // lack (conjuncts), so those fonts are subset for this PDF.
    let mut doc = two_doses();
    doc.recipient.name = "श्रीमती क्षमा त्रिपाठी".into();
    doc.doses[0].vaccinator = "Zoë Ærøskøbing-Łukasz".into();
    for lang in ["en", "hi"] {
        let pdf = renderer().render(&doc, lang).unwrap();
        let p = parse(&pdf);
        let text = p.squashed();
        assert!(text.contains("श्रीमतीक्षमात्रिपाठी"), "{lang}: {text}");
        assert!(
            text.contains("Zoë") && text.contains("Ærøskøbing-Łukasz"),
            "{lang}"
        );
        assert!(p
            .fonts()
            .iter()
            .any(|f| f.ends_with("NotoSansDevanagari-Regular")));
    }
}

#[test]
fn booster_and_missing_fields() {
    let mut doc = two_doses();
    doc.recipient.birth_date = None;
    doc.recipient.age = Some(47);
    doc.recipient.identity_scheme.clear();
    doc.recipient.address.clear();
    doc.doses.truncate(1);
    doc.doses[0].booster = true;
    doc.doses[0].dose = 3;
    doc.doses[0].valid_from = None;
    doc.doses[0].facility_address.clear();
    let text = parse(&renderer().render(&doc, "en").unwrap()).squashed();
    assert!(text.contains("Age47"), "{text}");
    assert!(!text.contains("Dateofbirth"));
    assert!(text.contains("ID2342343334"), "value without a scheme");
    assert!(!text.contains("Address"), "an empty row is left out");
    assert!(text.contains("Boosterdose(3)"));
    assert!(text.contains("Validuntil2030-03-02"));
    assert!(text.contains("VaccinatedatABCMedicalCenterVaccinatedby"));
}
