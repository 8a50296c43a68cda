//! A second QR code (`[second_qr]` in a template): the same certificate in
//! another format, printed under ours with its label, on the first page,
//! without overlapping anything, and still on one A4 page.

use divoc_pdf::{PdfError, PdfRenderer, SecondQr};

use crate::common::*;

const CASE: &str = "two-doses-second-qr";

#[test]
fn the_shipped_templates_ask_for_the_eu_dcc() {
    let r = renderer();
    let en = r.second_qr("en").unwrap();
    assert_eq!(en.format, "eu-dcc");
    assert_eq!(en.label, "EU Digital COVID Certificate");
    let hi = r.second_qr("hi-IN").unwrap();
    assert_eq!(hi.format, "eu-dcc");
    assert!(hi.label.contains("डिजिटल कोविड प्रमाणपत्र"), "{}", hi.label);
    assert_eq!(r.second_qr("fr"), None, "no template, no second QR");
}

#[test]
fn both_codes_are_embedded_and_scan_back() {
    for lang in ["en", "hi"] {
        let doc = two_doses_second_qr(lang);
        let p = parse(&renderer().render(&doc, lang).unwrap());
        assert_eq!(p.images().len(), 2, "{lang}: two QR images");
        assert_eq!(
            p.scan_qrs(),
            [doc.qr_text.clone(), second_qr_text(CASE)],
            "{lang}"
        );
        // The samples are exactly the symbols divoc-qr makes of the two
        // texts (the same encoder as `/formats/eu-dcc/qr.png`).
        let bits = p.image_bits();
        assert_eq!(
            bits[0],
            divoc_qr::encode(doc.qr_text.as_bytes()).unwrap().bits()
        );
        assert_eq!(
            bits[1],
            divoc_qr::encode(second_qr_text(CASE).as_bytes())
                .unwrap()
                .bits()
        );
        assert!(second_qr_text(CASE).starts_with("HC1:"));
    }
}

#[test]
fn the_label_prints_and_everything_still_fits_one_a4_page() {
    for (lang, label, expected) in [
        (
            "en",
            "EUDigitalCOVIDCertificate",
            &["Dose1of2", "Dose2of2", "MB3428BY", "Page1of1"][..],
        ),
        (
            "hi",
            "यूरोपीयसंघ(EU)डिजिटलकोविडप्रमाणपत्र",
            &["खुराक1/2", "खुराक2/2", "MB3428BY", "पृष्ठ1/1"][..],
        ),
    ] {
        let pdf = renderer().render(&two_doses_second_qr(lang), lang).unwrap();
        let p = parse(&pdf);
        assert_eq!(p.pages.len(), 1, "{lang}: one page");
        let (w, h) = p.page_size(0);
        assert!((w - 595.28).abs() < 0.01 && (h - 841.89).abs() < 0.01, "A4");
        let text = p.squashed();
        assert_eq!(text.matches(label).count(), 1, "{lang}: {text}");
        for e in expected {
            assert!(text.contains(e), "{lang}: {e:?} missing from {text}");
        }
    }
}

#[test]
fn the_codes_stack_in_one_column_clear_of_the_text() {
    for lang in ["en", "hi"] {
        let p = parse(&renderer().render(&two_doses_second_qr(lang), lang).unwrap());
        let placed = p.placed_images(0);
        assert_eq!(placed.len(), 2, "{lang}: both drawn on page 1");
        let (first, second) = (&placed[0], &placed[1]);
        assert_ne!(first.name, second.name, "two images, not one twice");
        assert!(!first.overlaps(second), "{lang}: {first:?} {second:?}");
        // Same size (the template sets no second_qr_size), same column,
        // the second below the first.
        assert_eq!((first.w, first.h), (170.0, 170.0));
        assert_eq!((second.w, second.h), (first.w, first.h));
        assert!((second.x - first.x).abs() < 0.01);
        assert!(second.y >= first.y + first.h);
        // Inside the margins.
        let (w, _) = p.page_size(0);
        for q in &placed {
            assert!(q.x >= 42.0 && q.x + q.w <= w - 42.0 + 0.01 && q.y >= 42.0);
        }
        // No line of text starts on a code.
        let lines = &p.lines[0];
        for l in lines {
            for q in &placed {
                assert!(!q.contains(l.x, l.y), "{lang}: {l:?} on {q:?}");
            }
        }
        // The label: under the second code, inside its column.
        let label = renderer().second_qr(lang).unwrap().label;
        let label_lines: Vec<&TextLine> = lines
            .iter()
            .filter(|l| squash(label).contains(&squash(&l.text)) && !l.text.trim().is_empty())
            .filter(|l| l.x >= second.x && l.x < second.x + second.w)
            .collect();
        assert!(!label_lines.is_empty(), "{lang}: no label line");
        let label_bottom = label_lines.iter().map(|l| l.y).fold(0.0, f32::max);
        for l in &label_lines {
            assert!(
                l.y > second.y + second.h && l.y < second.y + second.h + 40.0,
                "{lang}: {l:?}"
            );
        }
        // The doses start below the whole column: their heading and every
        // line after it are below the label.
        let heading = if lang == "en" {
            "Vaccination details"
        } else {
            "टीकाकरण का विवरण"
        };
        let heading = lines.iter().find(|l| l.text == heading).unwrap();
        assert!(heading.y > label_bottom, "{lang}: {heading:?}");
        // Left of the column, nothing reaches into it: every line beside
        // the codes starts left of them (the flow narrows beside them).
        for l in lines.iter().filter(|l| l.y < label_bottom && l.x < first.x) {
            assert!(l.x < first.x - 9.0, "{lang}: {l:?}");
        }
    }
}

#[test]
fn a_document_without_a_second_qr_is_printed_as_before() {
    // The shipped templates ask for one; the caller decides whether there
    // is one to print (e.g. the EU DCC plugin is not loaded).
    let p = parse(&renderer().render(&two_doses(), "en").unwrap());
    assert_eq!(p.images().len(), 1);
    assert_eq!(p.placed_images(0).len(), 1);
    assert!(!p.squashed().contains("EUDigitalCOVIDCertificate"));
}

#[test]
fn second_qr_size_sets_the_second_codes_side() {
    let fonts = templates_dir().join("../../fonts").canonicalize().unwrap();
    let en = std::fs::read_to_string(templates_dir().join("en.toml"))
        .unwrap()
        .replace("../../fonts", fonts.to_str().unwrap())
        .replace("# second_qr_size = 170.0", "second_qr_size = 120.0 #");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("en.toml"), en).unwrap();
    let r = PdfRenderer::load(dir.path()).unwrap();
    let mut doc = two_doses();
    doc.second_qr = Some(r.second_qr("en").unwrap().with_text(second_qr_text(CASE)));
    let p = parse(&r.render(&doc, "en").unwrap());
    let placed = p.placed_images(0);
    assert_eq!((placed[1].w, placed[1].h), (120.0, 120.0));
    // Centred under the first.
    let centre = |q: &Placed| q.x + q.w / 2.0;
    assert!((centre(&placed[0]) - centre(&placed[1])).abs() < 0.01);
    assert_eq!(p.scan_qrs()[1], second_qr_text(CASE));
}

#[test]
fn a_template_without_second_qr_still_prints_one_it_is_given() {
    // A library caller may hand any template a document with a second QR:
    // it prints at the first code's size, under it.
    let fonts = templates_dir().join("../../fonts").canonicalize().unwrap();
    let text = std::fs::read_to_string(templates_dir().join("en.toml")).unwrap();
    let start = text.find("\n[second_qr]\n").unwrap() + 1;
    let end = start + text[start..].find("\n[labels]\n").unwrap() + 1;
    let en = format!("{}{}", &text[..start], &text[end..])
        .replace("../../fonts", fonts.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("en.toml"), en).unwrap();
    let r = PdfRenderer::load(dir.path()).unwrap();
    assert_eq!(r.second_qr("en"), None);
    let mut doc = two_doses();
    doc.second_qr = Some(SecondQr {
        label: "SMART Health Card".into(),
        text: "shc:/5676290952432060346029243740446031222959532654603460292540772804336028702864716745222809286133314564376531415906402203064504590856435503414245413640370636654171372412363803043756220467374075323239254334433260573601064529315312707424284350".into(),
    });
    let p = parse(&r.render(&doc, "en").unwrap());
    assert_eq!(p.pages.len(), 1);
    assert_eq!(p.scan_qrs()[1], doc.second_qr.as_ref().unwrap().text);
    assert!(p.squashed().contains("SMARTHealthCard"));
}

#[test]
fn a_second_payload_too_long_is_its_own_typed_error() {
    let mut doc = two_doses_second_qr("en");
    doc.second_qr.as_mut().unwrap().text = "A".repeat(5000);
    assert!(matches!(
        renderer().render(&doc, "en").unwrap_err(),
        PdfError::SecondQr(_)
    ));
    // Without it, the certificate prints.
    doc.second_qr = None;
    assert!(renderer().render(&doc, "en").is_ok());
}

#[test]
fn output_with_a_second_qr_is_deterministic() {
    let other = PdfRenderer::load(&templates_dir()).unwrap();
    for lang in ["en", "hi"] {
        let doc = two_doses_second_qr(lang);
        let a = renderer().render(&doc, lang).unwrap();
        assert_eq!(a, other.render(&doc, lang).unwrap(), "{lang}");
    }
}
