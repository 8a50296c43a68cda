//! Shared fixtures: the shipped templates and the `tests/cases/` data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use divoc_pdf::{CertificateDocument, PdfRenderer};
use serde_json::Value;

/// `config/templates/pdf` of this repository.
pub fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/templates/pdf")
}

/// The shipped templates, loaded once for the whole test binary.
pub fn renderer() -> &'static PdfRenderer {
    static R: OnceLock<PdfRenderer> = OnceLock::new();
    R.get_or_init(|| PdfRenderer::load(&templates_dir()).unwrap())
}

pub fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cases")
        .join(case)
}

pub fn credentials(case: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(case_dir(case).join("credentials.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn qr_text(case: &str) -> String {
    std::fs::read_to_string(case_dir(case).join("qr.txt"))
        .unwrap()
        .trim()
        .to_string()
}

/// The typical certificate: two doses, a QR of a signed credential's size.
pub fn two_doses() -> CertificateDocument {
    CertificateDocument::from_credentials(&credentials("two-doses"), qr_text("two-doses")).unwrap()
}

/// A parsed PDF and its text, page by page.
pub struct Parsed {
    pub doc: lopdf::Document,
    pub pages: Vec<String>,
}

/// Parses a PDF (with lopdf) and extracts each page's text the way a
/// viewer copies it: a marked-content `/ActualText` replaces the glyphs it
/// spans (that is how a shaped cluster such as `कि` — drawn as ि then क —
/// reads back in order), other glyphs are decoded through their font's
/// `ToUnicode` CMap. lopdf's own `extract_text` ignores `/ActualText`.
pub fn parse(pdf: &[u8]) -> Parsed {
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF header");
    let doc = lopdf::Document::load_mem(pdf).expect("the output parses as a PDF");
    let pages = doc
        .get_pages()
        .values()
        .map(|&id| page_text(&doc, id))
        .collect();
    Parsed { doc, pages }
}

fn page_text(doc: &lopdf::Document, page: lopdf::ObjectId) -> String {
    use lopdf::Object;
    let mut cmaps: HashMap<Vec<u8>, HashMap<u16, String>> = HashMap::new();
    for (name, font) in doc.get_page_fonts(page).unwrap() {
        let stream = font
            .get(b"ToUnicode")
            .and_then(|o| doc.dereference(o))
            .and_then(|(_, o)| o.as_stream())
            .expect("every font has a ToUnicode CMap");
        let cmap = String::from_utf8(stream.decompressed_content().unwrap()).unwrap();
        cmaps.insert(name, parse_cmap(&cmap));
    }
    let content = lopdf::content::Content::decode(&doc.get_page_content(page)).unwrap();
    let mut out = String::new();
    let mut font = Vec::new();
    // Depth of marked content inside an /ActualText span (0: none).
    let mut in_span = 0usize;
    for op in content.operations {
        match (op.operator.as_str(), op.operands.as_slice()) {
            ("Tf", [Object::Name(name), _]) => font = name.clone(),
            ("BDC", [_, Object::Dictionary(props)]) if in_span == 0 => {
                if let Ok(Object::String(bytes, _)) = props.get(b"ActualText") {
                    out.push_str(&text_string(bytes));
                    in_span = 1;
                }
            }
            ("BDC" | "BMC", _) if in_span > 0 => in_span += 1,
            ("EMC", _) if in_span > 0 => in_span -= 1,
            ("Tj", [Object::String(bytes, _)]) if in_span == 0 => {
                decode(&cmaps[&font], bytes, &mut out)
            }
            ("TJ", [Object::Array(items)]) if in_span == 0 => {
                for item in items {
                    if let Object::String(bytes, _) = item {
                        decode(&cmaps[&font], bytes, &mut out);
                    }
                }
            }
            ("ET", _) => out.push('\n'),
            _ => {}
        }
    }
    out
}

fn decode(cmap: &HashMap<u16, String>, bytes: &[u8], out: &mut String) {
    for pair in bytes.chunks(2) {
        let cid = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        if let Some(s) = cmap.get(&cid) {
            out.push_str(s);
        }
    }
}

/// A PDF text string: UTF-16BE after a byte-order mark, else (for our
/// purposes) Latin-1.
fn text_string(bytes: &[u8]) -> String {
    match bytes.strip_prefix(&[0xFE, 0xFF]) {
        Some(utf16) => {
            let units: Vec<u16> = utf16
                .chunks(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16(&units).unwrap()
        }
        None => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

fn utf16_hex(hex: &str) -> String {
    let units: Vec<u16> = (0..hex.len() / 4)
        .map(|i| u16::from_str_radix(&hex[i * 4..i * 4 + 4], 16).unwrap())
        .collect();
    String::from_utf16(&units).unwrap()
}

/// The `bfchar` and `bfrange` sections of a ToUnicode CMap.
fn parse_cmap(cmap: &str) -> HashMap<u16, String> {
    let mut map = HashMap::new();
    let mut section = "";
    let mut hex: Vec<String> = Vec::new();
    for token in cmap.split_whitespace() {
        match token {
            "beginbfchar" | "beginbfrange" => {
                section = token;
                hex.clear();
            }
            "endbfchar" | "endbfrange" => section = "",
            t if !section.is_empty() && t.starts_with('<') && t.ends_with('>') => {
                hex.push(t[1..t.len() - 1].to_string());
                if section == "beginbfchar" && hex.len() == 2 {
                    let cid = u16::from_str_radix(&hex[0], 16).unwrap();
                    map.insert(cid, utf16_hex(&hex[1]));
                    hex.clear();
                } else if section == "beginbfrange" && hex.len() == 3 {
                    let lo = u16::from_str_radix(&hex[0], 16).unwrap();
                    let hi = u16::from_str_radix(&hex[1], 16).unwrap();
                    let first = utf16_hex(&hex[2]);
                    let base = first.chars().next().unwrap() as u32;
                    for (i, cid) in (lo..=hi).enumerate() {
                        let c = char::from_u32(base + i as u32).unwrap();
                        map.insert(cid, c.to_string());
                    }
                    hex.clear();
                }
            }
            _ => {}
        }
    }
    map
}

impl Parsed {
    pub fn text(&self) -> String {
        self.pages.concat()
    }

    /// Every dictionary in the file (streams' included).
    pub fn dicts(&self) -> impl Iterator<Item = &lopdf::Dictionary> {
        self.doc.objects.values().filter_map(|o| match o {
            lopdf::Object::Dictionary(d) => Some(d),
            lopdf::Object::Stream(s) => Some(&s.dict),
            _ => None,
        })
    }

    /// `/BaseFont` of every Type 0 font.
    pub fn fonts(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .dicts()
            .filter(|d| d.get(b"Subtype").and_then(|s| s.as_name()).ok() == Some(b"Type0"))
            .map(|d| {
                String::from_utf8(d.get(b"BaseFont").unwrap().as_name().unwrap().to_vec()).unwrap()
            })
            .collect();
        names.sort();
        names
    }

    /// The QR image, decoded the way a phone would: the 1-bit samples
    /// scaled up and handed to a QR reader.
    pub fn scan_qr(&self) -> String {
        let image = self
            .doc
            .objects
            .values()
            .filter_map(|o| o.as_stream().ok())
            .find(|s| s.dict.get(b"Subtype").and_then(|t| t.as_name()).ok() == Some(b"Image"))
            .expect("an image");
        let int = |k: &[u8]| usize::try_from(image.dict.get(k).unwrap().as_i64().unwrap()).unwrap();
        let (w, h) = (int(b"Width"), int(b"Height"));
        assert_eq!(w, h, "a square image");
        assert_eq!(int(b"BitsPerComponent"), 1);
        let samples = image
            .decompressed_content()
            .unwrap_or_else(|_| image.content.clone());
        let row_bytes = w.div_ceil(8);
        assert_eq!(samples.len(), row_bytes * h);
        let scale = 3;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w * scale, h * scale, |x, y| {
            let (x, y) = (x / scale, y / scale);
            if samples[y * row_bytes + x / 8] & (0x80 >> (x % 8)) != 0 {
                255
            } else {
                0
            }
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code");
        grids[0].decode().unwrap().1
    }

    /// Text with all white space removed: lines wrap where the layout
    /// decides, so compare without it.
    pub fn squashed(&self) -> String {
        squash(&self.text())
    }
}

pub fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}
