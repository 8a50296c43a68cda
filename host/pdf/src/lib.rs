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

pub use document::{CertificateDocument, Dose, Recipient};
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

    /// Renders `doc` in `lang` (see [`PdfRenderer::resolve_language`]) and
    /// returns the PDF. [`PdfError::UnknownLanguage`] when no template
    /// matches; [`PdfError::Qr`] when the QR text is too long for a QR
    /// code. Any other field content renders (long values are cut).
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
mod tests {
    use super::*;

    #[test]
    fn renderer_is_shareable_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<PdfRenderer>();
    }
}
