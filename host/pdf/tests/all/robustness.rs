//! Whatever the record holds, rendering does not panic, and what comes out
//! is a PDF. Inputs come from a small seeded generator (reproducible).

use divoc_pdf::{CertificateDocument, Dose, PdfError, Recipient, SecondQr};

use crate::common::*;

/// xorshift64*: enough to mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// A string from an alphabet of awkward characters.
    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            " ",
            "  ",
            "\n",
            "\t",
            "\0",
            "\u{7f}",
            "é",
            "ß",
            "Ω",
            "Ж",
            "क",
            "्",
            "ष",
            "ि",
            "ं",
            "़",
            "\u{200d}",
            "\u{200c}",
            "\u{094d}\u{094d}",
            "ع",
            "ש",
            "\u{202e}",
            "中",
            "😀",
            "👩‍👩‍👧",
            "\u{fe0f}",
            "\u{0301}",
            "\u{fffd}",
            "\u{feff}",
            "-",
            "/",
            ":",
            "{dose}",
            "{",
            "}",
            "(",
            "%",
            "\\",
            "<",
            ">",
            "1",
            "२",
            "\u{00ad}",
            "ﷺ",
            "𒐫",
            "\u{10ffff}",
        ];
        let len = match self.below(10) {
            0 => 0,
            1 => 300 + self.below(3000) as usize,
            _ => self.below(40) as usize,
        };
        (0..len)
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }
    fn opt_text(&mut self) -> Option<String> {
        (self.below(3) > 0).then(|| self.text())
    }
    fn number(&mut self) -> u32 {
        match self.below(4) {
            0 => 0,
            1 => u32::MAX,
            _ => self.below(5) as u32,
        }
    }
}

fn random_document(rng: &mut Rng) -> CertificateDocument {
    let doses = (0..rng.below(14))
        .map(|_| Dose {
            dose: rng.number(),
            total_doses: rng.number(),
            booster: rng.below(2) == 0,
            vaccine: rng.text(),
            manufacturer: rng.text(),
            batch: rng.text(),
            date: rng.text(),
            facility_name: rng.text(),
            facility_address: rng.text(),
            vaccinator: rng.text(),
            valid_from: rng.opt_text(),
            valid_until: rng.opt_text(),
        })
        .collect();
    // QR text: mostly base45, sometimes arbitrary bytes (byte mode).
    let qr_text = if rng.below(2) == 0 {
        let b45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
        (0..rng.below(1500))
            .map(|_| b45.as_bytes()[rng.below(45) as usize] as char)
            .collect()
    } else {
        rng.text()
    };
    // Half the documents carry a second QR, with a label of any shape.
    let second_qr = (rng.below(2) == 0).then(|| SecondQr {
        label: rng.text(),
        text: rng.text(),
    });
    CertificateDocument {
        certificate_id: rng.text(),
        issuer: rng.text(),
        recipient: Recipient {
            name: rng.text(),
            birth_date: rng.opt_text(),
            age: (rng.below(2) == 0).then(|| rng.number()),
            gender: rng.text(),
            nationality: rng.text(),
            identity_scheme: rng.text(),
            identity_value: rng.text(),
            address: rng.text(),
        },
        doses,
        qr_text,
        second_qr,
    }
}

#[test]
fn odd_inputs_render_or_fail_cleanly() {
    let mut rng = Rng(0x05EE_D0FD_170C);
    let mut rendered = 0;
    for i in 0..40 {
        let doc = random_document(&mut rng);
        for lang in ["en", "hi"] {
            match renderer().render(&doc, lang) {
                Ok(pdf) => {
                    let p = parse(&pdf);
                    assert!(!p.pages.is_empty(), "case {i} {lang}");
                    let mut expected = vec![doc.qr_text.clone()];
                    expected.extend(doc.second_qr.iter().map(|q| q.text.clone()));
                    assert_eq!(p.scan_qrs(), expected, "case {i} {lang}: QR");
                    rendered += 1;
                }
                // The only acceptable failures: a QR payload too long.
                Err(PdfError::Qr(_)) => assert!(doc.qr_text.len() > 1000, "case {i}"),
                Err(PdfError::SecondQr(_)) => {
                    let second = doc.second_qr.as_ref().map_or(0, |q| q.text.len());
                    assert!(second > 1000, "case {i}");
                }
                Err(other) => panic!("case {i} {lang}: {other}"),
            }
        }
    }
    assert!(rendered > 40, "most cases render ({rendered})");
}

#[test]
fn the_empty_document_renders() {
    let doc = CertificateDocument::default();
    for lang in ["en", "hi"] {
        let p = parse(&renderer().render(&doc, lang).unwrap());
        assert_eq!(p.pages.len(), 1);
        // The name row stands even when the name is missing.
        assert!(p.squashed().contains('—'), "{lang}");
    }
}

#[test]
fn a_very_long_unbroken_value_is_cut_and_wrapped() {
    let mut doc = two_doses();
    doc.recipient.name = "W".repeat(5000);
    doc.recipient.address = "क्ष".repeat(2000);
    let p = parse(&renderer().render(&doc, "hi").unwrap());
    let text = p.squashed();
    // Cut at 200 characters, with an ellipsis.
    assert!(text.contains(&format!("{}…", "W".repeat(200))), "{text}");
    assert!(!text.contains(&"W".repeat(201)));
    assert!(text.contains("क्षक्ष"));
    assert!(p.pages.len() <= 2, "{} pages", p.pages.len());
}

#[test]
fn a_qr_payload_too_long_is_a_typed_error() {
    let mut doc = two_doses();
    doc.qr_text = "A".repeat(5000);
    assert!(matches!(
        renderer().render(&doc, "en").unwrap_err(),
        PdfError::Qr(_)
    ));
}
