//! Writes laid-out pages as a PDF (ISO 32000-1) with pdf-writer: one
//! content stream per page, each font used embedded once as a Type 0 font
//! with a `ToUnicode` CMap, and each QR code (ours, and the optional second
//! one) as a 1-bit image.

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Settings, Str, TextStr};

use crate::compress;
use crate::embed::{GlyphMap, StaticFont, Subset, UnicodeMap};
use crate::error::PdfError;
use crate::fonts::{FontFace, FontTable, Glyph};
use crate::render::{Line, Op, Rgb};
use divoc_qr::QrMatrix;

/// No indentation or line breaks inside objects: smaller and faster.
const COMPACT: Settings = Settings { pretty: false };

/// Everything a PDF is made of besides the pages.
pub(crate) struct Job<'a> {
    pub(crate) fonts: &'a FontTable,
    /// By font id: the subset made at load, if any.
    pub(crate) statics: &'a [Option<StaticFont>],
    pub(crate) width: f32,
    pub(crate) height: f32,
    pub(crate) language: &'a str,
    pub(crate) title: &'a str,
    /// The QR codes, by `Op::Qr::image`: ours, then the second one if any.
    pub(crate) qrs: &'a [QrMatrix],
}

/// The page resource name of QR image `i`: the first keeps the name it
/// had before there could be two.
fn qr_name(i: usize) -> String {
    match i {
        0 => "QR".to_owned(),
        _ => format!("QR{}", i + 1),
    }
}

/// How one font is embedded in this PDF.
enum Embedding<'a> {
    /// The subset made at load, with its ready-made CMap.
    Static(&'a StaticFont),
    /// A subset made for this PDF, and the CMap it learns while the pages
    /// are written.
    Dynamic(Subset, UnicodeMap),
}

impl Embedding<'_> {
    fn subset(&self) -> &Subset {
        match self {
            Embedding::Static(s) => &s.subset,
            Embedding::Dynamic(s, _) => s,
        }
    }

    /// Whether `cluster` (glyph ids of the font file) reads as `text`
    /// through the CMap; else the page needs an `/ActualText` span.
    fn reads_as(&mut self, cluster: &[u16], text: &str) -> bool {
        match self {
            Embedding::Static(s) => s.unicode.reads(cluster, text),
            Embedding::Dynamic(_, u) => u.note(cluster, text),
        }
    }
}

pub(crate) fn write(job: &Job<'_>, pages: &[Vec<Op>]) -> Result<Vec<u8>, PdfError> {
    let mut embeddings = embeddings(job, pages)?;

    let mut next = 1;
    let mut alloc = || {
        let r = Ref::new(next);
        next += 1;
        r
    };
    let catalog = alloc();
    let page_tree = alloc();
    let info = alloc();
    let images: Vec<Ref> = job.qrs.iter().map(|_| alloc()).collect();
    let image_names: Vec<String> = (0..images.len()).map(qr_name).collect();
    let page_refs: Vec<(Ref, Ref)> = pages.iter().map(|_| (alloc(), alloc())).collect();
    // Type 0 font, CIDFont, descriptor, program, CMap.
    let font_refs: Vec<Option<[Ref; 5]>> = embeddings
        .iter()
        .map(|e| {
            e.as_ref()
                .map(|_| [alloc(), alloc(), alloc(), alloc(), alloc()])
        })
        .collect();
    let font_names: Vec<String> = (0..embeddings.len()).map(|i| format!("F{i}")).collect();

    let mut pdf = Pdf::with_settings_and_capacity(COMPACT, 64 * 1024);
    pdf.catalog(catalog)
        .pages(page_tree)
        .lang(TextStr(job.language));
    pdf.document_info(info)
        .title(TextStr(job.title))
        .creator(TextStr("DIVOC-rs"))
        .producer(TextStr("divoc-pdf"));
    pdf.pages(page_tree)
        .kids(page_refs.iter().map(|(p, _)| *p))
        .count(i32::try_from(pages.len()).unwrap_or(i32::MAX));

    for (ops, (page_ref, content_ref)) in pages.iter().zip(&page_refs) {
        let content = page_content(job, ops, &mut embeddings, &font_names, &image_names);
        let mut page = pdf.page(*page_ref);
        page.parent(page_tree)
            .media_box(Rect::new(0.0, 0.0, job.width, job.height))
            .contents(*content_ref);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        for (name, refs) in font_names.iter().zip(&font_refs) {
            if let Some(refs) = refs {
                fonts.pair(Name(name.as_bytes()), refs[0]);
            }
        }
        fonts.finish();
        let mut x_objects = resources.x_objects();
        for (name, image) in image_names.iter().zip(&images) {
            x_objects.pair(Name(name.as_bytes()), *image);
        }
        x_objects.finish();
        resources.finish();
        page.finish();
        pdf.stream(*content_ref, &content)
            .filter(Filter::FlateDecode);
    }

    for (qr, image) in job.qrs.iter().zip(&images) {
        // A QR code is all entropy: deflate would not shrink it.
        let (bits, side) = qr.bits();
        let side = i32::try_from(side).unwrap_or(0);
        let mut img = pdf.image_xobject(*image, &bits);
        img.width(side)
            .height(side)
            .bits_per_component(1)
            .interpolate(false);
        img.color_space().device_gray();
        img.finish();
    }

    for (id, (emb, refs)) in embeddings.iter().zip(&font_refs).enumerate() {
        let (Some(emb), Some(refs), Some(face)) = (emb, refs, job.fonts.get(id)) else {
            continue;
        };
        write_font(&mut pdf, face, emb, *refs);
    }
    Ok(pdf.finish())
}

/// The glyphs used per font, and how each font is embedded: its static
/// subset when that has every glyph, else a subset made now.
fn embeddings<'a>(
    job: &Job<'a>,
    pages: &[Vec<Op>],
) -> Result<Vec<Option<Embedding<'a>>>, PdfError> {
    let n = job.fonts.len();
    let mut used: Vec<Vec<u16>> = vec![Vec::new(); n];
    let mut seen: Vec<GlyphMap<()>> = vec![Default::default(); n];
    for op in pages.iter().flatten() {
        if let Op::Text { line, .. } = op {
            for g in &line.glyphs {
                if let (Some(u), Some(s)) = (used.get_mut(g.font), seen.get_mut(g.font)) {
                    if s.insert(g.id, ()).is_none() {
                        u.push(g.id);
                    }
                }
            }
        }
    }
    let mut out = Vec::with_capacity(n);
    for (id, glyphs) in used.iter().enumerate() {
        if glyphs.is_empty() {
            out.push(None);
            continue;
        }
        let face = job
            .fonts
            .get(id)
            .ok_or_else(|| PdfError::Render(format!("no font {id}")))?;
        let stat = job.statics.get(id).and_then(Option::as_ref);
        let emb = match stat {
            Some(s) if glyphs.iter().all(|&g| s.subset.cid(g).is_some()) => Embedding::Static(s),
            _ => Embedding::Dynamic(
                Subset::build(face, glyphs.iter().copied(), compress::fast)?,
                UnicodeMap::default(),
            ),
        };
        out.push(Some(emb));
    }
    Ok(out)
}

fn write_font(pdf: &mut Pdf, face: &FontFace, emb: &Embedding<'_>, refs: [Ref; 5]) {
    let [type0, cid_ref, descriptor, program, cmap_ref] = refs;
    let subset = emb.subset();
    let base = Name(subset.base_font.as_bytes());
    pdf.type0_font(type0)
        .base_font(base)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid_ref)
        .to_unicode(cmap_ref);

    let mut cid = pdf.cid_font(cid_ref);
    cid.subtype(if face.cff {
        CidFontType::Type0
    } else {
        CidFontType::Type2
    })
    .base_font(base)
    .system_info(SystemInfo {
        registry: Str(b"Adobe"),
        ordering: Str(b"Identity"),
        supplement: 0,
    })
    .font_descriptor(descriptor)
    .default_width(0.0);
    if !face.cff {
        cid.cid_to_gid_map_predefined(Name(b"Identity"));
    }
    cid.widths().consecutive(0, subset.widths.iter().copied());
    cid.finish();

    let mut flags = FontFlags::SYMBOLIC;
    if face.italic_angle != 0.0 {
        flags |= FontFlags::ITALIC;
    }
    let [x0, y0, x1, y1] = face.bbox;
    let mut fd = pdf.font_descriptor(descriptor);
    fd.name(base)
        .flags(flags)
        .bbox(Rect::new(x0, y0, x1, y1))
        .italic_angle(face.italic_angle)
        .ascent(face.ascent)
        .descent(face.descent)
        .cap_height(face.cap_height)
        // The usual estimate from the weight class when the font has none.
        .stem_v(10.0 + 0.244 * (face.weight - 50.0).max(0.0));
    if face.cff {
        fd.font_file3(program);
    } else {
        fd.font_file2(program);
    }
    fd.finish();

    let mut stream = pdf.stream(program, &subset.font_file);
    stream.filter(Filter::FlateDecode);
    if face.cff {
        stream.pair(Name(b"Subtype"), Name(b"OpenType"));
    }
    stream.finish();

    match emb {
        Embedding::Static(s) => {
            pdf.cmap(cmap_ref, &s.cmap).filter(Filter::FlateDecode);
        }
        Embedding::Dynamic(subset, unicode) => {
            let cmap = compress::fast(&unicode.cmap(subset));
            pdf.cmap(cmap_ref, &cmap).filter(Filter::FlateDecode);
        }
    }
}

fn page_content(
    job: &Job<'_>,
    ops: &[Op],
    embeddings: &mut [Option<Embedding<'_>>],
    font_names: &[String],
    image_names: &[String],
) -> Vec<u8> {
    let h = job.height;
    let mut c = Content::with_settings_and_capacity(COMPACT, 16 * 1024);
    let mut fill: Option<Rgb> = None;
    let mut set_fill = |c: &mut Content, rgb: Rgb| {
        if fill != Some(rgb) {
            // Three decimals tell 256 levels apart.
            let v = |x: u8| (f32::from(x) / 255.0 * 1000.0).round() / 1000.0;
            c.set_fill_rgb(v(rgb.0), v(rgb.1), v(rgb.2));
            fill = Some(rgb);
        }
    };
    for op in ops {
        match op {
            Op::Text {
                x,
                baseline,
                size,
                color,
                line,
            } => {
                set_fill(&mut c, *color);
                text_line(
                    &mut c,
                    job,
                    embeddings,
                    font_names,
                    *x,
                    h - baseline,
                    *size,
                    line,
                );
            }
            Op::Rule { x, y, width, color } => {
                set_fill(&mut c, *color);
                c.rect(*x, h - y - 0.6, *width, 0.6).fill_nonzero();
            }
            Op::Qr { x, y, size, image } => {
                // An op names an image the job has, by construction.
                let Some(name) = image_names.get(*image) else {
                    continue;
                };
                c.save_state()
                    .transform([*size, 0.0, 0.0, *size, *x, h - y - size])
                    .x_object(Name(name.as_bytes()))
                    .restore_state();
            }
        }
    }
    compress::fast(&c.finish())
}

/// One line: per font run, per cluster. A cluster whose glyphs do not read
/// as its text through the CMap is wrapped in an `/ActualText` span.
#[allow(clippy::too_many_arguments)]
fn text_line(
    c: &mut Content,
    job: &Job<'_>,
    embeddings: &mut [Option<Embedding<'_>>],
    font_names: &[String],
    x: f32,
    y: f32,
    size: f32,
    line: &Line,
) {
    c.begin_text();
    let pt = |v: f32| (v * 100.0).round() / 100.0;
    c.set_text_matrix([1.0, 0.0, 0.0, 1.0, pt(x), pt(y)]);
    let mut tj = Tj::default();
    let mut ids = Vec::new();
    for run in line.glyphs.chunk_by(|a, b| a.font == b.font) {
        let Some(first) = run.first() else { continue };
        let (Some(Some(emb)), Some(name), Some(face)) = (
            embeddings.get_mut(first.font),
            font_names.get(first.font),
            job.fonts.get(first.font),
        ) else {
            continue;
        };
        tj.flush(c);
        c.set_font(Name(name.as_bytes()), size);
        for cluster in run.chunk_by(|a, b| a.range == b.range) {
            let text = line.text.get(cluster[0].range.clone()).unwrap_or("");
            ids.clear();
            ids.extend(cluster.iter().map(|g| g.id));
            let plain = emb.reads_as(&ids, text);
            if !plain {
                tj.flush(c);
                c.begin_marked_content_with_properties(Name(b"Span"))
                    .properties()
                    .actual_text(TextStr(text));
            }
            for g in cluster {
                let cid = emb.subset().cid(g.id).unwrap_or(0);
                tj.glyph(c, cid, g, face.advance(g.id), size);
            }
            if !plain {
                tj.flush(c);
                c.end_marked_content();
            }
        }
    }
    tj.flush(c);
    if tj.rise != 0.0 {
        c.set_rise(0.0);
    }
    c.end_text();
}

/// A `TJ` array being built: glyph codes and position adjustments.
#[derive(Default)]
struct Tj {
    items: Vec<TjItem>,
    rise: f32,
}

enum TjItem {
    Codes(Vec<u8>),
    Adjust(f32),
}

impl Tj {
    /// Adds a glyph drawn at the pen plus its offsets, then moves the pen
    /// by its shaped advance. The PDF moves the pen by the font's advance
    /// (`width`); the difference goes into the array (thousandths of an em,
    /// positive moves left).
    fn glyph(&mut self, c: &mut Content, cid: u16, g: &Glyph, width: f32, size: f32) {
        let rise = g.y_offset * size;
        if (rise - self.rise).abs() > 0.001 {
            self.flush(c);
            c.set_rise(rise);
            self.rise = rise;
        }
        self.adjust(-g.x_offset * 1000.0);
        match self.items.last_mut() {
            Some(TjItem::Codes(codes)) => codes.extend(cid.to_be_bytes()),
            _ => self.items.push(TjItem::Codes(cid.to_be_bytes().to_vec())),
        }
        self.adjust((width - g.advance + g.x_offset) * 1000.0);
    }

    fn adjust(&mut self, amount: f32) {
        if amount.abs() < 0.01 || !amount.is_finite() {
            return;
        }
        match self.items.last_mut() {
            Some(TjItem::Adjust(a)) => *a += amount,
            _ => self.items.push(TjItem::Adjust(amount)),
        }
    }

    /// Thousandths of an em to 0.01: `-20`, not `-19.99998` (font units
    /// divided and multiplied back).
    fn rounded(a: f32) -> f32 {
        (a * 100.0).round() / 100.0
    }

    fn flush(&mut self, c: &mut Content) {
        if self.items.is_empty() {
            return;
        }
        {
            let mut show = c.show_positioned();
            let mut items = show.items();
            for item in &self.items {
                match item {
                    TjItem::Codes(codes) => {
                        items.show(Str(codes));
                    }
                    TjItem::Adjust(a) => {
                        let a = Tj::rounded(*a);
                        if a != 0.0 {
                            items.adjust(a);
                        }
                    }
                }
            }
        }
        self.items.clear();
    }
}
