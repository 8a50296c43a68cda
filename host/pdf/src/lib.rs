//! Printable vaccination certificates, rendered natively as PDF.
//!
//! [`PdfRenderer::load`] reads every template in a directory (one TOML file
//! per language, see `config/templates/pdf/`) and the fonts they name, once;
//! [`PdfRenderer::render`] lays out a [`CertificateDocument`] — the
//! recipient, every dose, the QR code — in the language asked for and
//! returns the PDF bytes. Text is shaped (rustybuzz), so scripts such as
//! Devanagari print with their conjuncts and vowel signs in place, and the
//! fonts used are subset and embedded in each PDF with a `ToUnicode` map,
//! so the text can be searched and copied.
//!
//! A template may ask for a second QR code (`[second_qr]`: a certificate
//! format and a label), e.g. the certificate's EU DCC: the caller reads it
//! with [`PdfRenderer::second_qr`], makes the artifact and sets
//! [`CertificateDocument::second_qr`]; the page then carries both codes,
//! one under the other.
//!
//! Adding a language is data only: a template file and, when its script
//! needs one, a font. Scripts written right to left are not supported yet
//! (there is no bidi reordering).
//!
//! ```no_run
//! # fn main() -> Result<(), divoc_pdf::PdfError> {
//! use divoc_pdf::{CertificateDocument, PdfRenderer};
//! let renderer = PdfRenderer::load("config/templates/pdf".as_ref())?;
//! let credentials: Vec<serde_json::Value> = Vec::new(); // one signed VC per dose
//! let doc = CertificateDocument::from_credentials(&credentials, "DIVOC1:…")?;
//! let pdf: Vec<u8> = renderer.render(&doc, "hi")?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod compress;
mod document;
mod embed;
mod error;
mod fonts;
mod pdf;
mod render;
mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

pub use document::{CertificateDocument, Dose, Recipient, SecondQr};
pub use error::PdfError;

use embed::{StaticFont, UnicodeMap};
use fonts::{FontId, FontTable, Glyph};
use render::Compiled;
use template::Template;

/// Characters every font in a regular (body) stack gets in its static
/// subset, when it has them: printable ASCII, Latin-1, common punctuation.
/// Names, numbers, dates and addresses in Latin script need nothing else.
const REGULAR_REPERTOIRE: &[(char, char)] = &[
    (' ', '~'),
    ('\u{a0}', 'ÿ'),
    ('–', '—'),
    ('‘', '’'),
    ('“', '”'),
    ('•', '•'),
    ('…', '…'),
];
/// Bold text is the template's own, plus dose numbers.
const BOLD_REPERTOIRE: &[(char, char)] = &[(' ', ' '), ('(', ')'), (',', ':')];

/// What a template's `[second_qr]` asks for: the QR of the certificate in
/// another format, printed under our own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondQrSpec<'a> {
    /// The certificate-format id, e.g. `eu-dcc`.
    pub format: &'a str,
    /// The label printed under the code, in the template's language.
    pub label: &'a str,
}

impl SecondQrSpec<'_> {
    /// The document's second QR: this label over `text` (the artifact).
    pub fn with_text(&self, text: impl Into<String>) -> SecondQr {
        SecondQr {
            label: self.label.to_owned(),
            text: text.into(),
        }
    }
}

/// Every template and font, loaded once; renders certificates. Cheap to
/// share between threads (`Arc<PdfRenderer>`); rendering takes `&self`.
pub struct PdfRenderer {
    fonts: FontTable,
    /// By font id: the subset embedded when a certificate needs no other
    /// glyphs (see `embed`).
    statics: Vec<Option<StaticFont>>,
    templates: BTreeMap<String, Compiled>,
    default: String,
    /// Times print as dates in this zone (the deployment's).
    zone: divoc_time::Zone,
}

impl fmt::Debug for PdfRenderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdfRenderer")
            .field("languages", &self.languages())
            .field("default", &self.default)
            .finish()
    }
}

impl PdfRenderer {
    /// Loads every `*.toml` template in `templates_dir` and the fonts they
    /// name (paths relative to the template). Fails on the first bad
    /// template or font, naming its file: a deployment with a broken
    /// template should not start.
    pub fn load(templates_dir: &Path) -> Result<PdfRenderer, PdfError> {
        let entries = std::fs::read_dir(templates_dir).map_err(|source| PdfError::Io {
            path: templates_dir.to_path_buf(),
            source,
        })?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| PdfError::Io {
                path: templates_dir.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut fonts = FontTable::default();
        let mut templates = BTreeMap::new();
        let mut default = None;
        for path in paths {
            let t = Template::read(&path)?;
            let stack = |fonts: &mut FontTable, names: &[String]| {
                names
                    .iter()
                    .map(|name| fonts.load(&template::font_path(&path, name)))
                    .collect::<Result<Vec<FontId>, PdfError>>()
            };
            let regular = stack(&mut fonts, &t.fonts.regular)?;
            let bold = stack(&mut fonts, &t.fonts.bold)?;
            if t.default {
                if let Some(other) = &default {
                    return Err(PdfError::Template {
                        path,
                        message: format!("default = true, but template {other:?} says so too"),
                    });
                }
                default = Some(t.language.clone());
            }
            let lang = t.language.clone();
            templates.insert(lang, Compiled::new(t, regular, bold));
        }
        let statics = static_fonts(&fonts, &mut templates)?;
        let default = default
            .or_else(|| templates.contains_key("en").then(|| "en".to_string()))
            .or_else(|| templates.keys().next().cloned())
            .ok_or_else(|| PdfError::NoTemplates {
                dir: templates_dir.to_path_buf(),
            })?;
        Ok(PdfRenderer {
            fonts,
            statics,
            templates,
            default,
            zone: divoc_time::Zone::utc(),
        })
    }

    /// Prints date-times as dates in `zone` (default UTC): the deployment's
    /// time zone, so a certificate shows the local date of vaccination.
    pub fn with_time_zone(mut self, zone: divoc_time::Zone) -> PdfRenderer {
        self.zone = zone;
        self
    }

    /// The language tags that have a template, sorted.
    pub fn languages(&self) -> Vec<String> {
        self.templates.keys().cloned().collect()
    }

    /// A language's own name, as its template gives it (e.g. `हिन्दी`).
    pub fn language_name(&self, lang: &str) -> Option<&str> {
        self.templates.get(lang).map(|t| t.t.name.as_str())
    }

    /// The language served when a request names none.
    pub fn default_language(&self) -> &str {
        &self.default
    }

    /// The template's language for a requested tag: an exact match
    /// (ignoring case), else the primary subtag (`hi-IN` → `hi`).
    pub fn resolve_language(&self, lang: &str) -> Option<&str> {
        let lang = lang.trim();
        let find = |tag: &str| {
            self.templates
                .keys()
                .find(|k| k.eq_ignore_ascii_case(tag))
                .map(String::as_str)
        };
        find(lang).or_else(|| find(lang.split(['-', '_']).next().unwrap_or(lang)))
    }

    /// The second QR the template for `lang` asks for (`[second_qr]`), the
    /// language resolved as [`PdfRenderer::render`] resolves it; `None`
    /// when the template asks for none or no template matches.
    pub fn second_qr(&self, lang: &str) -> Option<SecondQrSpec<'_>> {
        let tpl = self
            .resolve_language(lang)
            .and_then(|l| self.templates.get(l))?;
        tpl.t.second_qr.as_ref().map(|q| SecondQrSpec {
            format: &q.format,
            label: &q.label,
        })
    }

    /// Renders `doc` in `lang` (see [`PdfRenderer::resolve_language`]) and
    /// returns the PDF. [`PdfError::UnknownLanguage`] when no template
    /// matches; [`PdfError::Qr`] when the QR text is too long for a QR
    /// code, [`PdfError::SecondQr`] when the second QR's is (the caller
    /// may render without it). Any other field content renders (long
    /// values are cut).
    pub fn render(&self, doc: &CertificateDocument, lang: &str) -> Result<Vec<u8>, PdfError> {
        let tpl = self
            .resolve_language(lang)
            .and_then(|l| self.templates.get(l))
            .ok_or_else(|| PdfError::UnknownLanguage {
                lang: lang.chars().take(64).collect(),
                available: self.languages(),
            })?;
        render::render(tpl, &self.fonts, &self.statics, doc, &self.zone)
    }
}

/// Shapes every template's own strings and builds each font's static
/// subset: those glyphs plus the font's share of the repertoire.
fn static_fonts(
    fonts: &FontTable,
    templates: &mut BTreeMap<String, Compiled>,
) -> Result<Vec<Option<StaticFont>>, PdfError> {
    let n = fonts.len();
    let mut glyphs: Vec<BTreeSet<u16>> = vec![BTreeSet::new(); n];
    let mut maps: Vec<UnicodeMap> = vec![UnicodeMap::default(); n];
    let mut regular = vec![false; n];
    let mut bold = vec![false; n];
    let mut note = |text: &str, shaped: &[Glyph]| {
        for cluster in shaped.chunk_by(|a, b| a.range == b.range && a.font == b.font) {
            let Some(first) = cluster.first() else {
                continue;
            };
            let ids: Vec<u16> = cluster.iter().map(|g| g.id).collect();
            if let (Some(set), Some(map)) = (glyphs.get_mut(first.font), maps.get_mut(first.font)) {
                set.extend(&ids);
                map.note(&ids, text.get(first.range.clone()).unwrap_or(""));
            }
        }
    };
    for tpl in templates.values_mut() {
        for (text, shaped) in tpl.shape_fixed(fonts) {
            note(&text, &shaped);
        }
        for &f in &tpl.regular {
            regular[f] = true;
        }
        for &f in &tpl.bold {
            bold[f] = true;
        }
    }
    let shaper = fonts.shaper();
    for font in 0..n {
        let repertoire = if regular[font] {
            REGULAR_REPERTOIRE
        } else if bold[font] {
            BOLD_REPERTOIRE
        } else {
            &[]
        };
        let chars = repertoire.iter().flat_map(|&(a, b)| a..=b);
        for c in chars.filter(|&c| !c.is_control()) {
            if shaper.covers(font, c) {
                let text = c.to_string();
                let mut shaped = Vec::new();
                shaper.shape_run(&text, 0..text.len(), font, &mut shaped);
                note(&text, &shaped);
            }
        }
    }
    let mut out = Vec::with_capacity(n);
    for ((font, set), map) in glyphs.into_iter().enumerate().zip(maps) {
        let face = fonts.get(font);
        out.push(match face {
            Some(face) if !set.is_empty() => {
                let set: Vec<u16> = set.into_iter().collect();
                Some(StaticFont::build(face, &set, map)?)
            }
            _ => None,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use render::Op;

    #[test]
    fn renderer_is_shareable_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<PdfRenderer>();
    }

    /// A box on the page: left, top, right, bottom (points, y down).
    type Rect = (f32, f32, f32, f32);

    fn overlap(a: Rect, b: Rect) -> bool {
        a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
    }

    /// The boxes every op of a page covers: text from a little above its
    /// baseline (ascenders) to a little below (descenders), as wide as
    /// shaped; each QR code whole, quiet zone included.
    fn boxes(ops: &[Op]) -> (Vec<(Rect, String)>, Vec<Rect>) {
        let mut text = Vec::new();
        let mut qrs = Vec::new();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    baseline,
                    size,
                    line,
                    ..
                } => text.push((
                    (
                        *x,
                        baseline - size * 0.8,
                        x + line.width,
                        baseline + size * 0.25,
                    ),
                    line.text.to_string(),
                )),
                Op::Rule { x, y, width, .. } => {
                    text.push(((*x, *y, x + width, y + 0.6), "rule".to_owned()))
                }
                Op::Qr { x, y, size, .. } => qrs.push((*x, *y, x + size, y + size)),
            }
        }
        (text, qrs)
    }

    /// The laid-out first page of the `two-doses-second-qr` case: no text
    /// or rule touches either code, the codes do not touch, everything is
    /// inside the margins, and the whole certificate is one page.
    #[test]
    fn the_second_qr_overlaps_nothing() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let renderer = PdfRenderer::load(&root.join("../../config/templates/pdf")).unwrap();
        let case = root.join("tests/cases/two-doses-second-qr");
        let read = |f: &str| std::fs::read_to_string(case.join(f)).unwrap();
        let credentials: Vec<serde_json::Value> =
            serde_json::from_str(&read("credentials.json")).unwrap();
        for lang in ["en", "hi"] {
            let mut doc =
                CertificateDocument::from_credentials(&credentials, read("qr.txt").trim()).unwrap();
            let spec = renderer.second_qr(lang).unwrap();
            doc.second_qr = Some(spec.with_text(read("second_qr.txt").trim()));
            let tpl = &renderer.templates[lang];
            let pages = render::layout(tpl, &renderer.fonts, &doc, &renderer.zone);
            assert_eq!(pages.len(), 1, "{lang}: one page");
            let (text, qrs) = boxes(&pages[0]);
            assert_eq!(qrs.len(), 2, "{lang}");
            assert!(!overlap(qrs[0], qrs[1]), "{lang}: the codes touch");
            let p = &tpl.t.page;
            for (r, what) in text
                .iter()
                .map(|(r, w)| (*r, w.as_str()))
                .chain(qrs.iter().map(|r| (*r, "QR")))
            {
                assert!(
                    r.0 >= p.margin - 0.01
                        && r.2 <= p.width - p.margin + 0.01
                        && r.1 >= p.margin - tpl.t.style.title_size
                        && r.3 <= p.height - p.margin + 0.01,
                    "{lang}: {what:?} at {r:?} outside the margins"
                );
                if what == "QR" {
                    continue;
                }
                for q in &qrs {
                    assert!(
                        !overlap(r, *q),
                        "{lang}: {what:?} at {r:?} on a QR at {q:?}"
                    );
                }
            }
            // The label is under the second code, within its column.
            let label: Vec<Rect> = text
                .iter()
                .filter(|(_, t)| t.as_str() == spec.label)
                .map(|(r, _)| *r)
                .collect();
            assert!(!label.is_empty(), "{lang}: no label");
            for r in label {
                assert!(r.1 >= qrs[1].3 && r.0 >= qrs[1].0 - 0.01 && r.2 <= qrs[1].2 + 0.01);
            }
        }
    }
}
