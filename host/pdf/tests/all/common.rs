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

/// The `two-doses-second-qr` case: the typical certificate with a second
/// QR, a real EU DCC (`second_qr.txt`, made by the format-eu-dcc plugin
/// from a test certificate), labelled as `lang`'s template says.
pub fn two_doses_second_qr(lang: &str) -> CertificateDocument {
    let case = "two-doses-second-qr";
    let mut doc = CertificateDocument::from_credentials(&credentials(case), qr_text(case)).unwrap();
    let spec = renderer()
        .second_qr(lang)
        .expect("the shipped template has [second_qr]");
    doc.second_qr = Some(spec.with_text(second_qr_text(case)));
    doc
}

pub fn second_qr_text(case: &str) -> String {
    std::fs::read_to_string(case_dir(case).join("second_qr.txt"))
        .unwrap()
        .trim()
        .to_string()
}

/// Where a page draws an image: its resource name and its rectangle, in
/// points from the page's top left (x, y, width, height).
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub name: String,
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Placed {
    pub fn overlaps(&self, o: &Placed) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
    pub fn contains(&self, x: f32, y: f32) -> bool {
        x >= self.x && x <= self.x + self.w && y >= self.y && y <= self.y + self.h
    }
}

/// One text object (the renderer writes one per line): where it starts,
/// in points from the page's top left (x, baseline), and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLine {
    pub x: f32,
    pub y: f32,
    pub text: String,
}

/// A parsed PDF and its text, page by page.
pub struct Parsed {
    pub doc: lopdf::Document,
    pub pages: Vec<String>,
    /// Each page's text objects.
    pub lines: Vec<Vec<TextLine>>,
}

/// Parses a PDF (with lopdf) and extracts each page's text the way a
/// viewer copies it: a marked-content `/ActualText` replaces the glyphs it
/// spans (that is how a shaped cluster such as `कि` — drawn as ि then क —
/// reads back in order), other glyphs are decoded through their font's
/// `ToUnicode` CMap. lopdf's own `extract_text` ignores `/ActualText`.
pub fn parse(pdf: &[u8]) -> Parsed {
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF header");
    let doc = lopdf::Document::load_mem(pdf).expect("the output parses as a PDF");
    let lines: Vec<Vec<TextLine>> = doc
        .get_pages()
        .values()
        .map(|&id| page_text(&doc, id))
        .collect();
    let pages = lines
        .iter()
        .map(|page| page.iter().map(|l| format!("{}\n", l.text)).collect())
        .collect();
    Parsed { doc, pages, lines }
}

fn page_text(doc: &lopdf::Document, page: lopdf::ObjectId) -> Vec<TextLine> {
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
    let height = media_box(doc, page)[3];
    let mut lines = Vec::new();
    let mut out = String::new();
    let mut origin = (0.0, 0.0);
    let mut font = Vec::new();
    // Depth of marked content inside an /ActualText span (0: none).
    let mut in_span = 0usize;
    for op in content.operations {
        match (op.operator.as_str(), op.operands.as_slice()) {
            ("Tf", [Object::Name(name), _]) => font = name.clone(),
            ("Tm", [.., x, y]) => origin = (x.as_float().unwrap(), height - y.as_float().unwrap()),
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
            ("ET", _) => lines.push(TextLine {
                x: origin.0,
                y: origin.1,
                text: std::mem::take(&mut out),
            }),
            _ => {}
        }
    }
    lines
}

/// A page's media box: x0, y0, x1, y1.
fn media_box(doc: &lopdf::Document, page: lopdf::ObjectId) -> Vec<f32> {
    doc.get_dictionary(page)
        .unwrap()
        .get(b"MediaBox")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_float().unwrap())
        .collect()
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

    /// Every image, in object order (the order they were written).
    pub fn images(&self) -> Vec<&lopdf::Stream> {
        self.doc
            .objects
            .values()
            .filter_map(|o| o.as_stream().ok())
            .filter(|s| s.dict.get(b"Subtype").and_then(|t| t.as_name()).ok() == Some(b"Image"))
            .collect()
    }

    /// The one QR image, decoded the way a phone would: the 1-bit samples
    /// scaled up and handed to a QR reader.
    pub fn scan_qr(&self) -> String {
        let images = self.images();
        assert_eq!(images.len(), 1, "one image");
        scan(images[0])
    }

    /// Every QR image, decoded, in the order written (ours first).
    pub fn scan_qrs(&self) -> Vec<String> {
        self.images().into_iter().map(scan).collect()
    }

    /// Every image's 1-bit samples and side, as written.
    pub fn image_bits(&self) -> Vec<(Vec<u8>, usize)> {
        self.images().into_iter().map(samples).collect()
    }

    /// The images page `page` (0-based) draws, where it draws them: each
    /// `Do` of an image after the `cm` that scales the unit square to it.
    pub fn placed_images(&self, page: usize) -> Vec<Placed> {
        use lopdf::Object;
        let id = *self.doc.get_pages().values().nth(page).unwrap();
        let height = media_box(&self.doc, id)[3];
        let content = lopdf::content::Content::decode(&self.doc.get_page_content(id)).unwrap();
        let mut out = Vec::new();
        let mut cm = [0f32; 6];
        for op in content.operations {
            match (op.operator.as_str(), op.operands.as_slice()) {
                ("cm", operands) if operands.len() == 6 => {
                    for (v, o) in cm.iter_mut().zip(operands) {
                        *v = o.as_float().unwrap();
                    }
                }
                ("Do", [Object::Name(name)]) => out.push(Placed {
                    name: String::from_utf8(name.clone()).unwrap(),
                    x: cm[4],
                    y: height - cm[5] - cm[3],
                    w: cm[0],
                    h: cm[3],
                }),
                _ => {}
            }
        }
        out
    }

    /// Width and height of page `page` (its media box).
    pub fn page_size(&self, page: usize) -> (f32, f32) {
        let id = *self.doc.get_pages().values().nth(page).unwrap();
        let b = media_box(&self.doc, id);
        (b[2] - b[0], b[3] - b[1])
    }

    /// Text with all white space removed: lines wrap where the layout
    /// decides, so compare without it.
    pub fn squashed(&self) -> String {
        squash(&self.text())
    }
}

/// An image's 1-bit samples (rows padded to bytes) and its side.
fn samples(image: &lopdf::Stream) -> (Vec<u8>, usize) {
    let int = |k: &[u8]| usize::try_from(image.dict.get(k).unwrap().as_i64().unwrap()).unwrap();
    let (w, h) = (int(b"Width"), int(b"Height"));
    assert_eq!(w, h, "a square image");
    assert_eq!(int(b"BitsPerComponent"), 1);
    let samples = image
        .decompressed_content()
        .unwrap_or_else(|_| image.content.clone());
    assert_eq!(samples.len(), w.div_ceil(8) * h);
    (samples, w)
}

/// A 1-bit QR image decoded by a QR reader (rqrr), scaled up as a camera
/// would see it.
fn scan(image: &lopdf::Stream) -> String {
    let (samples, w) = samples(image);
    let row_bytes = w.div_ceil(8);
    let scale = 3;
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w * scale, w * scale, |x, y| {
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

pub fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}
