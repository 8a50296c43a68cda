//! Fonts: read and measured once at load, shared by every template that
//! names them; per-character fallback along a template's font stack; shaping
//! with rustybuzz (a HarfBuzz port), which forms Devanagari conjuncts and
//! places its vowel signs.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustybuzz::ttf_parser;

use crate::error::PdfError;

/// Index of a font in [`FontTable`].
pub(crate) type FontId = usize;

/// One font file and what the PDF needs to know about it.
pub(crate) struct FontFace {
    pub(crate) path: PathBuf,
    pub(crate) data: &'static [u8],
    /// The shaper's view of the font, parsed once.
    face: rustybuzz::Face<'static>,
    /// Which characters of the Basic Multilingual Plane the font has.
    coverage: Vec<u64>,
    pub(crate) units_per_em: f32,
    /// Horizontal advance of every glyph, in font units.
    advances: Vec<u16>,
    /// PostScript name (for the PDF's `/BaseFont`).
    pub(crate) postscript_name: String,
    /// Outlines are CFF (an OpenType `.otf`) rather than TrueType `glyf`.
    pub(crate) cff: bool,
    /// In thousandths of an em, as the PDF font descriptor wants them.
    pub(crate) ascent: f32,
    pub(crate) descent: f32,
    pub(crate) cap_height: f32,
    pub(crate) bbox: [f32; 4],
    pub(crate) italic_angle: f32,
    pub(crate) weight: f32,
}

impl FontFace {
    /// Whether the font has a glyph for `c`.
    pub(crate) fn covers(&self, c: char) -> bool {
        let cp = c as usize;
        match self.coverage.get(cp / 64) {
            Some(word) => word & (1 << (cp % 64)) != 0,
            None => self.face.glyph_index(c).is_some(),
        }
    }

    /// A glyph's advance in em, or 0 for a glyph the font does not have.
    pub(crate) fn advance(&self, glyph: u16) -> f32 {
        self.advances
            .get(usize::from(glyph))
            .map_or(0.0, |&a| f32::from(a) / self.units_per_em)
    }
}

/// Shaping plans are compiled per font and script (a few µs to tens of µs
/// each for complex scripts), so they are kept.
type PlanKey = (FontId, rustybuzz::Script);

/// Every font the templates name, each read once.
#[derive(Default)]
pub(crate) struct FontTable {
    faces: Vec<FontFace>,
    by_path: HashMap<PathBuf, FontId>,
    plans: RwLock<HashMap<PlanKey, Arc<rustybuzz::ShapePlan>>>,
}

impl FontTable {
    /// The id of the font at `path`, reading and parsing it on first use.
    pub(crate) fn load(&mut self, path: &Path) -> Result<FontId, PdfError> {
        let io = |source| PdfError::Io {
            path: path.to_path_buf(),
            source,
        };
        let key = path.canonicalize().map_err(io)?;
        if let Some(id) = self.by_path.get(&key) {
            return Ok(*id);
        }
        let data = intern(std::fs::read(&key).map_err(io)?);
        let face = parse(path, data)?;
        let id = self.faces.len();
        self.faces.push(face);
        self.by_path.insert(key, id);
        Ok(id)
    }

    pub(crate) fn get(&self, id: FontId) -> Option<&FontFace> {
        self.faces.get(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.faces.len()
    }

    /// A shaper over these fonts.
    pub(crate) fn shaper(&self) -> Shaper<'_> {
        Shaper { table: self }
    }
}

/// Font files are kept for the life of the process, so that the parsed
/// shaping tables can borrow them (`'static`) and are built once rather
/// than per certificate. Equal files are kept once, so loading templates
/// again (tests, a reload) costs nothing more.
fn intern(data: Vec<u8>) -> &'static [u8] {
    static FILES: Mutex<Vec<&'static [u8]>> = Mutex::new(Vec::new());
    let mut files = match FILES.lock() {
        Ok(files) => files,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(known) = files.iter().find(|f| ***f == *data) {
        return known;
    }
    let leaked: &'static [u8] = Box::leak(data.into_boxed_slice());
    files.push(leaked);
    leaked
}

fn parse(path: &Path, data: &'static [u8]) -> Result<FontFace, PdfError> {
    let bad = |message: String| PdfError::Font {
        path: path.to_path_buf(),
        message,
    };
    let face = ttf_parser::Face::parse(data, 0)
        .map_err(|e| bad(format!("not an OpenType/TrueType font: {e}")))?;
    let tables = face.tables();
    if tables.cff2.is_some() {
        return Err(bad(
            "CFF2 outlines are not supported; use a TrueType or CFF font".into(),
        ));
    }
    let upem = f32::from(face.units_per_em());
    if upem <= 0.0 {
        return Err(bad("units per em is not positive".into()));
    }
    let advances = (0..face.number_of_glyphs())
        .map(|g| face.glyph_hor_advance(ttf_parser::GlyphId(g)).unwrap_or(0))
        .collect();
    let postscript_name = face
        .names()
        .into_iter()
        .find(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME && n.is_unicode())
        .and_then(|n| n.to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("Font")
                .to_string()
        });
    let em = |v: i16| f32::from(v) * 1000.0 / upem;
    let b = face.global_bounding_box();
    let (ascent, descent) = (em(face.ascender()), em(face.descender()));
    let cap_height = em(face.capital_height().unwrap_or(face.ascender()));
    let bbox = [em(b.x_min), em(b.y_min), em(b.x_max), em(b.y_max)];
    let italic_angle = face.italic_angle();
    let weight = f32::from(face.weight().to_number());
    let cff = tables.cff.is_some();
    let mut coverage = vec![0u64; 0x10000 / 64];
    for cp in 0..0x10000u32 {
        if let Some(c) = char::from_u32(cp) {
            if face.glyph_index(c).is_some() {
                coverage[cp as usize / 64] |= 1 << (cp % 64);
            }
        }
    }
    let Some(shaper_face) = rustybuzz::Face::from_slice(data, 0) else {
        return Err(bad("the shaper cannot read this font".into()));
    };
    Ok(FontFace {
        path: path.to_path_buf(),
        data,
        face: shaper_face,
        coverage,
        units_per_em: upem,
        advances,
        postscript_name,
        cff,
        ascent,
        descent,
        cap_height,
        bbox,
        italic_angle,
        weight,
    })
}

/// One shaped glyph. Advances and offsets are in em (font size 1).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Glyph {
    pub(crate) font: FontId,
    /// Glyph id in the font file.
    pub(crate) id: u16,
    /// Bytes of the shaped text this glyph's cluster stands for.
    pub(crate) range: Range<usize>,
    pub(crate) advance: f32,
    pub(crate) x_offset: f32,
    pub(crate) y_offset: f32,
    /// The cluster starts with white space: a line may break here.
    pub(crate) space: bool,
}

/// Shapes text with the table's fonts.
pub(crate) struct Shaper<'a> {
    table: &'a FontTable,
}

impl Shaper<'_> {
    pub(crate) fn covers(&self, id: FontId, c: char) -> bool {
        self.table.faces.get(id).is_some_and(|f| f.covers(c))
    }

    /// Shapes `text` with the font stack `stack`, appending to `out`
    /// (ranges are offsets into `text`).
    ///
    /// Letters take the first font of the stack that has them. Everything
    /// else — digits, punctuation, spaces, combining marks — takes the font
    /// of the letter before it (else after it) when that font has it, so a
    /// run of one script stays in one font: `1-2HZ0` is all Latin, the
    /// digits in `2021 से` all Devanagari.
    pub(crate) fn shape(&self, text: &str, stack: &[FontId], out: &mut Vec<Glyph>) {
        let Some(&first) = stack.first() else {
            return;
        };
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let strong: Vec<Option<FontId>> = chars
            .iter()
            .map(|&(_, c)| {
                if c.is_alphabetic() {
                    stack.iter().copied().find(|&f| self.covers(f, c))
                } else {
                    None
                }
            })
            .collect();
        let mut after: Vec<Option<FontId>> = vec![None; chars.len()];
        let mut next = None;
        for i in (0..chars.len()).rev() {
            after[i] = next;
            next = strong[i].or(next);
        }
        let mut before = None;
        let mut fonts = Vec::with_capacity(chars.len());
        for (i, &(_, c)) in chars.iter().enumerate() {
            let font = match strong[i] {
                Some(f) => f,
                None => {
                    let candidates = before.into_iter().chain(after[i]);
                    let mut pick = None;
                    for f in candidates {
                        if self.covers(f, c) {
                            pick = Some(f);
                            break;
                        }
                    }
                    pick.or_else(|| stack.iter().copied().find(|&f| self.covers(f, c)))
                        .or(before)
                        .or(after[i])
                        .unwrap_or(first)
                }
            };
            if strong[i].is_some() {
                before = Some(font);
            }
            fonts.push(font);
        }
        let mut start = 0;
        for run in fonts.chunk_by(|a, b| a == b) {
            let end = start + run.len();
            let from = chars.get(start).map_or(text.len(), |&(b, _)| b);
            let to = chars.get(end).map_or(text.len(), |&(b, _)| b);
            self.shape_run(text, from..to, run[0], out);
            start = end;
        }
    }

    /// Shapes one run of `text` in one font.
    pub(crate) fn shape_run(
        &self,
        text: &str,
        run: Range<usize>,
        font: FontId,
        out: &mut Vec<Glyph>,
    ) {
        let Some(slice) = text.get(run.clone()) else {
            return;
        };
        let table = self.table;
        let Some(face) = table.faces.get(font).map(|f| &f.face) else {
            return;
        };
        let upem = face.units_per_em() as f32;
        let mut buffer = rustybuzz::UnicodeBuffer::new();
        buffer.push_str(slice);
        buffer.guess_segment_properties();
        // Lines are laid out left to right; a right-to-left script would
        // need bidi reordering, which templates do not support yet.
        buffer.set_direction(rustybuzz::Direction::LeftToRight);
        let plan = table.plan(font, face, buffer.script());
        let shaped = rustybuzz::shape_with_plan(face, &plan, buffer);
        let first = out.len();
        for (info, pos) in shaped.glyph_infos().iter().zip(shaped.glyph_positions()) {
            let start = run.start + info.cluster as usize;
            out.push(Glyph {
                font,
                id: u16::try_from(info.glyph_id).unwrap_or(0),
                range: start..start,
                advance: pos.x_advance as f32 / upem,
                x_offset: pos.x_offset as f32 / upem,
                y_offset: pos.y_offset as f32 / upem,
                space: text
                    .get(start..)
                    .is_some_and(|t| t.starts_with(char::is_whitespace)),
            });
        }
        // A cluster ends where the next one starts (clusters are monotonic
        // for left-to-right text), the last one at the end of the run.
        let mut next: Option<Range<usize>> = None;
        for g in out.iter_mut().skip(first).rev() {
            g.range.end = match &next {
                None => run.end,
                Some(n) if n.start == g.range.start => n.end,
                Some(n) if n.start > g.range.start => n.start,
                Some(_) => run.end,
            };
            next = Some(g.range.clone());
        }
    }
}

impl FontTable {
    fn plan(
        &self,
        font: FontId,
        face: &rustybuzz::Face<'_>,
        script: rustybuzz::Script,
    ) -> Arc<rustybuzz::ShapePlan> {
        let key = (font, script);
        let cached = self
            .plans
            .read()
            .ok()
            .and_then(|plans| plans.get(&key).cloned());
        if let Some(plan) = cached {
            return plan;
        }
        let plan = Arc::new(rustybuzz::ShapePlan::new(
            face,
            rustybuzz::Direction::LeftToRight,
            Some(script),
            None,
            &[],
        ));
        if let Ok(mut plans) = self.plans.write() {
            plans.insert(key, plan.clone());
        }
        plan
    }
}
