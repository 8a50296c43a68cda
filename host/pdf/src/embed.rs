//! Font subsets as embedded in a PDF (ISO 32000-1 §9.7: a Type 0 font over
//! a CIDFont, `Identity-H`, glyphs renumbered from 0).
//!
//! Subsetting and compressing a font costs more than laying out a whole
//! certificate, so each font has a *static subset*, made once at load: the
//! glyphs of every template string in it plus printable ASCII and Latin-1
//! (names, numbers, dates). A certificate whose glyphs all fall in it embeds
//! those ready-made bytes; any other (a name in Devanagari, say) gets a
//! subset of exactly its glyphs, made for it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pdf_writer::types::{SystemInfo, UnicodeCmap};
use pdf_writer::{Name, Str};
use subsetter::GlyphRemapper;

use crate::compress;
use crate::error::PdfError;
use crate::fonts::FontFace;

/// A font subset: the font program and the glyph numbering it uses.
pub(crate) struct Subset {
    /// `/BaseFont`: a six-letter tag naming this subset, `+`, the
    /// PostScript name (§9.6.4).
    pub(crate) base_font: String,
    /// The subset font program, deflated.
    pub(crate) font_file: Vec<u8>,
    /// Advance per new glyph id, in thousandths of an em (the `/W` array).
    pub(crate) widths: Vec<f32>,
    remapper: GlyphRemapper,
}

impl Subset {
    /// Subsets `face` to `glyphs` (glyph ids in the font file; `.notdef`
    /// is always kept), compressing with `compress`.
    pub(crate) fn build(
        face: &FontFace,
        glyphs: impl IntoIterator<Item = u16>,
        compress: fn(&[u8]) -> Vec<u8>,
    ) -> Result<Subset, PdfError> {
        let mut remapper = GlyphRemapper::new();
        for g in glyphs {
            remapper.remap(g);
        }
        let program = subsetter::subset(face.data, 0, &remapper).map_err(|e| PdfError::Font {
            path: face.path.clone(),
            message: format!("cannot subset: {e}"),
        })?;
        let widths = remapper
            .remapped_gids()
            .map(|g| face.advance(g) * 1000.0)
            .collect();
        let base_font = format!(
            "{}+{}",
            subset_tag(remapper.remapped_gids()),
            pdf_name(&face.postscript_name)
        );
        Ok(Subset {
            base_font,
            font_file: compress(&program),
            widths,
            remapper,
        })
    }

    /// The new id of a glyph of the font file, if the subset has it.
    pub(crate) fn cid(&self, glyph: u16) -> Option<u16> {
        self.remapper.get(glyph)
    }
}

/// What each glyph of a subset reads as (its `ToUnicode` CMap, §9.10.3).
/// A glyph maps to the text of the first one-glyph cluster it was seen in;
/// a cluster that reads otherwise (several glyphs, or a glyph that reads
/// differently elsewhere) is wrapped in an `/ActualText` span instead.
#[derive(Default, Clone)]
pub(crate) struct UnicodeMap {
    texts: GlyphMap<String>,
    /// Frozen maps belong to a static subset and its ready-made CMap.
    frozen: bool,
}

/// A map keyed by glyph id, hashed with one multiplication.
pub(crate) type GlyphMap<V> = HashMap<u16, V, BuildHasherDefault<GlyphHasher>>;

/// Fibonacci hashing for glyph ids: they are small and dense, and come
/// from our own fonts, so a keyed hash buys nothing.
#[derive(Default)]
pub(crate) struct GlyphHasher(u64);

impl Hasher for GlyphHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u16(&mut self, v: u16) {
        self.0 = u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl UnicodeMap {
    pub(crate) fn freeze(mut self) -> UnicodeMap {
        self.frozen = true;
        self
    }

    /// Whether `cluster` alone reads as `text`, without learning anything
    /// (for a frozen map).
    pub(crate) fn reads(&self, cluster: &[u16], text: &str) -> bool {
        match cluster {
            [glyph] => self.texts.get(glyph).is_some_and(|t| t == text),
            _ => false,
        }
    }

    /// Records that `cluster` (glyph ids of the font file) reads as `text`.
    /// Returns whether the glyphs alone read right, i.e. no `/ActualText`
    /// is needed.
    pub(crate) fn note(&mut self, cluster: &[u16], text: &str) -> bool {
        let [glyph] = cluster else {
            // Several glyphs (e.g. ि drawn before क): the first one carries
            // the text for viewers without /ActualText, if still free.
            if let Some(&first) = cluster.first() {
                if !self.frozen {
                    self.texts.entry(first).or_insert_with(|| text.to_string());
                }
            }
            return false;
        };
        match self.texts.get(glyph) {
            Some(t) => t == text,
            None if self.frozen => false,
            None => {
                self.texts.insert(*glyph, text.to_string());
                true
            }
        }
    }

    /// The CMap stream, uncompressed, for `subset`'s numbering.
    pub(crate) fn cmap(&self, subset: &Subset) -> Vec<u8> {
        let info = SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Identity"),
            supplement: 0,
        };
        let mut cmap = UnicodeCmap::new(Name(b"Custom"), info);
        let mut pairs: Vec<(u16, &str)> = self
            .texts
            .iter()
            .filter_map(|(g, t)| Some((subset.cid(*g)?, t.as_str())))
            .filter(|(_, t)| !t.is_empty())
            .collect();
        pairs.sort_unstable();
        for (cid, text) in pairs {
            cmap.pair_with_multiple(cid, text.chars());
        }
        cmap.finish().into_vec()
    }
}

/// A font prepared at load: its static subset, what its glyphs read as,
/// and the compressed CMap.
pub(crate) struct StaticFont {
    pub(crate) subset: Subset,
    pub(crate) unicode: UnicodeMap,
    pub(crate) cmap: Vec<u8>,
}

impl StaticFont {
    pub(crate) fn build(
        face: &FontFace,
        glyphs: &[u16],
        unicode: UnicodeMap,
    ) -> Result<StaticFont, PdfError> {
        let subset = Subset::build(face, glyphs.iter().copied(), compress::best)?;
        let cmap = compress::best(&unicode.cmap(&subset));
        Ok(StaticFont {
            subset,
            unicode: unicode.freeze(),
            cmap,
        })
    }
}

/// Six upper-case letters derived from the glyph set (FNV-1a), so equal
/// subsets get equal names and the output stays deterministic.
fn subset_tag(glyphs: impl Iterator<Item = u16>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for g in glyphs {
        for b in g.to_be_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    (0..6)
        .map(|i| char::from(b'A' + ((h >> (i * 8)) % 26) as u8))
        .collect()
}

/// A PostScript name as a PDF name: printable ASCII without delimiters.
fn pdf_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() && !"()<>[]{}/%#".contains(*c))
        .take(100)
        .collect();
    if cleaned.is_empty() {
        "Font".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_map_asks_for_actual_text_only_when_needed() {
        let mut m = UnicodeMap::default();
        assert!(m.note(&[5], "a"));
        assert!(m.note(&[5], "a"));
        // The same glyph reading differently (e.g. a space and NBSP).
        assert!(!m.note(&[5], "b"));
        // Two glyphs for one cluster: the first maps, the span is needed.
        assert!(!m.note(&[7, 8], "कि"));
        assert!(!m.note(&[7], "क"));
        let mut frozen = m.clone().freeze();
        assert!(frozen.note(&[5], "a"));
        assert!(!frozen.note(&[9], "z"), "a frozen map cannot learn");
        assert!(frozen.reads(&[5], "a"));
        assert!(!frozen.reads(&[5], "b"));
        assert!(!frozen.reads(&[7, 8], "कि"));
    }

    #[test]
    fn subset_tags_are_six_capitals_and_stable() {
        let a = subset_tag([0u16, 3, 9].into_iter());
        assert_eq!(a.len(), 6);
        assert!(a.chars().all(|c| c.is_ascii_uppercase()));
        assert_eq!(a, subset_tag([0u16, 3, 9].into_iter()));
        assert_ne!(a, subset_tag([0u16, 3, 10].into_iter()));
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(pdf_name("NotoSans-Regular"), "NotoSans-Regular");
        assert_eq!(pdf_name("Bad Name/(x)"), "BadNamex");
        assert_eq!(pdf_name("हिन्दी"), "Font");
    }
}
