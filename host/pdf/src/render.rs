//! One certificate: a simple flow (header and QR, the recipient, one block
//! per dose, a footer on every page), laid out into positioned glyph runs,
//! then written out by `pdf`. The QR code sits at the top right of the
//! first page; a second QR (another format of the same certificate) goes
//! under it in the same column, with its label, and the doses start below
//! both.

use std::collections::HashMap;
use std::rc::Rc;

use crate::document::{CertificateDocument, Dose, SecondQr};
use crate::embed::StaticFont;
use crate::error::PdfError;
use crate::fonts::{FontId, FontTable, Glyph, Shaper};
use crate::pdf::{self, Job};
use crate::template::{parse_color, Template};

/// Longest value printed, in characters; longer ones are cut with `…` so a
/// hostile or broken record cannot make the layout run long.
const MAX_FIELD_CHARS: usize = 200;

pub(crate) type Rgb = (u8, u8, u8);

/// A template with its fonts and colours resolved at load, and its own
/// strings already shaped.
pub(crate) struct Compiled {
    pub(crate) t: Template,
    pub(crate) regular: Vec<FontId>,
    pub(crate) bold: Vec<FontId>,
    text: Rgb,
    muted: Rgb,
    accent: Rgb,
    /// Shaped template strings, by weight (regular, bold).
    shaped: [HashMap<String, Vec<Glyph>>; 2],
}

impl Compiled {
    pub(crate) fn new(mut t: Template, regular: Vec<FontId>, bold: Vec<FontId>) -> Compiled {
        t.sanitize();
        let color = |s: &str| parse_color(s).unwrap_or((0, 0, 0));
        Compiled {
            text: color(&t.style.text_color),
            muted: color(&t.style.muted_color),
            accent: color(&t.style.accent_color),
            t,
            regular,
            bold,
            shaped: [HashMap::new(), HashMap::new()],
        }
    }

    /// Shapes the template's own text once, and returns every piece shaped
    /// (the fonts' static subsets are made of these glyphs).
    pub(crate) fn shape_fixed(&mut self, fonts: &FontTable) -> Vec<(String, Vec<Glyph>)> {
        let l = &self.t.labels;
        let bold = [
            &l.title,
            &l.recipient_heading,
            &l.vaccination_heading,
            &l.dose_heading,
            &l.booster_heading,
        ];
        let regular = [
            &l.subtitle,
            &l.name,
            &l.birth_date,
            &l.age,
            &l.gender,
            &l.identity,
            &l.nationality,
            &l.address,
            &l.certificate_id,
            &l.vaccine,
            &l.manufacturer,
            &l.batch,
            &l.date,
            &l.facility,
            &l.vaccinator,
            &l.validity,
            &l.valid_from_until,
            &l.valid_from,
            &l.valid_until,
            &l.footer,
            &l.page,
        ];
        let strings: Vec<(Weight, String)> = bold
            .into_iter()
            .map(|s| (Weight::Bold, s.clone()))
            .chain(regular.into_iter().map(|s| (Weight::Regular, s.clone())))
            .chain(self.t.values.values().map(|v| (Weight::Regular, v.clone())))
            .chain(
                self.t
                    .second_qr
                    .iter()
                    .map(|q| (Weight::Regular, q.label.clone())),
            )
            .collect();
        // Text between placeholders is shaped on its own, as it is printed
        // (see `Flow::block`); so are the numbers and separators the layout
        // adds.
        let mut pieces: Vec<(Weight, String)> = Vec::new();
        for (weight, text) in strings {
            for part in fill(&text, &[]) {
                pieces.push((weight, part));
            }
        }
        for weight in [Weight::Regular, Weight::Bold] {
            pieces.extend((0..100).map(|n| (weight, n.to_string())));
        }
        pieces.extend([": ", ", ", "—"].map(|s| (Weight::Regular, s.to_string())));
        let shaper = fonts.shaper();
        let mut all = Vec::new();
        for (weight, text) in pieces {
            if text.is_empty() || self.shaped[weight as usize].contains_key(&text) {
                continue;
            }
            let mut glyphs = Vec::new();
            shaper.shape(&text, self.stack(weight), &mut glyphs);
            self.shaped[weight as usize].insert(text.clone(), glyphs.clone());
            all.push((text, glyphs));
        }
        all
    }

    pub(crate) fn stack(&self, weight: Weight) -> &[FontId] {
        match weight {
            Weight::Regular => &self.regular,
            Weight::Bold => &self.bold,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Weight {
    Regular = 0,
    Bold = 1,
}

/// One line of shaped text.
pub(crate) struct Line {
    /// The paragraph the glyphs' ranges point into.
    pub(crate) text: Rc<str>,
    pub(crate) glyphs: Vec<Glyph>,
    pub(crate) width: f32,
}

/// A wrapped paragraph.
struct Block {
    lines: Vec<Line>,
    size: f32,
    line_height: f32,
    color: Rgb,
}

impl Block {
    fn height(&self) -> f32 {
        self.lines.len() as f32 * self.line_height
    }
}

/// A drawing operation; coordinates from the page's top left, y down.
pub(crate) enum Op {
    Text {
        x: f32,
        baseline: f32,
        size: f32,
        color: Rgb,
        line: Line,
    },
    Rule {
        x: f32,
        y: f32,
        width: f32,
        color: Rgb,
    },
    /// QR code `image` (0: ours, 1: the second one; see `pdf::Job::qrs`).
    Qr {
        x: f32,
        y: f32,
        size: f32,
        image: usize,
    },
}

/// A label and its value.
struct Row {
    label: Block,
    value: Block,
}

impl Row {
    fn height(&self) -> f32 {
        self.label.height().max(self.value.height())
    }
}

/// Renders `doc` with template `tpl`.
pub(crate) fn render(
    tpl: &Compiled,
    fonts: &FontTable,
    statics: &[Option<StaticFont>],
    doc: &CertificateDocument,
    zone: &divoc_time::Zone,
) -> Result<Vec<u8>, PdfError> {
    let mut qrs =
        vec![divoc_qr::encode(doc.qr_text.as_bytes()).map_err(|e| PdfError::Qr(e.to_string()))?];
    if let Some(second) = &doc.second_qr {
        qrs.push(
            divoc_qr::encode(second.text.as_bytes())
                .map_err(|e| PdfError::SecondQr(e.to_string()))?,
        );
    }
    let pages = layout(tpl, fonts, doc, zone);
    let mut title = tpl.t.labels.title.clone();
    let id = clean(&doc.certificate_id);
    if !id.trim().is_empty() {
        title = format!("{title} {id}");
    }
    let job = Job {
        fonts,
        statics,
        width: tpl.t.page.width,
        height: tpl.t.page.height,
        language: &tpl.t.language,
        title: &title,
        qrs: &qrs,
    };
    pdf::write(&job, &pages)
}

/// The pages of `doc`, laid out.
pub(crate) fn layout(
    tpl: &Compiled,
    fonts: &FontTable,
    doc: &CertificateDocument,
    zone: &divoc_time::Zone,
) -> Vec<Vec<Op>> {
    let mut flow = Flow::new(tpl, fonts.shaper(), zone, doc.second_qr.as_ref());
    flow.certificate(doc);
    flow.finish()
}

struct Flow<'a> {
    tpl: &'a Compiled,
    shaper: Shaper<'a>,
    /// Times print as the date in the deployment's zone.
    zone: &'a divoc_time::Zone,
    pages: Vec<Vec<Op>>,
    y: f32,
    left: f32,
    right: f32,
    top: f32,
    /// Content stops here; the footer is below.
    bottom: f32,
    /// Left edge and bottom of the QR column (first page only): the QR
    /// code, and the second one with its label when there is one.
    qr_left: f32,
    qr_bottom: f32,
    gap: f32,
    footer: Block,
    scratch: Vec<Glyph>,
}

impl<'a> Flow<'a> {
    fn new(
        tpl: &'a Compiled,
        shaper: Shaper<'a>,
        zone: &'a divoc_time::Zone,
        second: Option<&SecondQr>,
    ) -> Flow<'a> {
        let t = &tpl.t;
        let m = t.page.margin;
        let s = &t.style;
        let mut flow = Flow {
            tpl,
            shaper,
            zone,
            pages: vec![Vec::new()],
            y: m,
            left: m,
            right: t.page.width - m,
            top: m,
            bottom: t.page.height - m,
            qr_left: t.page.width - m - s.qr_size,
            qr_bottom: m + s.qr_size,
            gap: s.text_size,
            footer: Block {
                lines: Vec::new(),
                size: s.small_size,
                line_height: s.small_size * s.line_height,
                color: tpl.muted,
            },
            scratch: Vec::new(),
        };
        // The footer's text shares its band with the page number at the right.
        let footer_width = (flow.right - flow.left) * 0.78;
        flow.footer = flow.block(
            &[&t.labels.footer],
            Weight::Regular,
            s.small_size,
            tpl.muted,
            footer_width,
        );
        let band = flow.footer.height().max(s.small_size * s.line_height);
        // Keep at least one line of content per page, however tall the footer.
        flow.bottom = (flow.bottom - band - flow.gap).max(flow.top + s.text_size * 4.0);
        // One column holds both codes, as wide as the wider; each is
        // centred in it.
        let second_size = second.map(|_| t.second_qr_size());
        let column = second_size.map_or(s.qr_size, |size| size.max(s.qr_size));
        flow.qr_left = flow.right - column;
        flow.pages[0].push(Op::Qr {
            x: flow.qr_left + (column - s.qr_size) / 2.0,
            y: flow.top,
            size: s.qr_size,
            image: 0,
        });
        if let (Some(second), Some(size)) = (second, second_size) {
            flow.second_qr(&second.label, size);
        }
        flow
    }

    /// Places the second QR code under the first, in the same column, and
    /// its label under it, centred; the column then ends below the label.
    fn second_qr(&mut self, label: &str, size: f32) {
        let tpl = self.tpl;
        let s = &tpl.t.style;
        let column = self.right - self.qr_left;
        let label = clean(label);
        let label = self.block(&[label], Weight::Regular, s.text_size, tpl.muted, column);
        // The codes carry their own quiet zone: half a gap between them is
        // enough for a scanner to tell them apart.
        let top = self.qr_bottom + self.gap * 0.5;
        // Templates with `[second_qr]` are checked to fit at load; for one
        // without it (a document from a library caller) the code shrinks
        // rather than run into the footer, though not below a scannable
        // minimum.
        let room = self.bottom - self.gap - label.height() - top;
        let size = size.min(room).max(36.0);
        self.pages[0].push(Op::Qr {
            x: self.qr_left + (column - size) / 2.0,
            y: top,
            size,
            image: 1,
        });
        let mut y = top + size;
        for line in label.lines {
            self.pages[0].push(Op::Text {
                x: self.qr_left + ((column - line.width) / 2.0).max(0.0),
                baseline: baseline(y, label.size, label.line_height),
                size: label.size,
                color: label.color,
                line,
            });
            y += label.line_height;
        }
        self.qr_bottom = y;
    }

    fn certificate(&mut self, doc: &CertificateDocument) {
        let tpl = self.tpl;
        let t = &tpl.t;
        let s = &t.style;
        let l = &t.labels;
        let beside_qr = self.qr_left - self.gap - self.left;

        let left = self.left;
        let title = self.block(
            &[&l.title],
            Weight::Bold,
            s.title_size,
            tpl.accent,
            beside_qr,
        );
        self.place(title, left);
        if !doc.issuer.trim().is_empty() {
            let parts = fill(&l.subtitle, &[("issuer", clean(&doc.issuer))]);
            let sub = self.block(&parts, Weight::Regular, s.text_size, tpl.muted, beside_qr);
            self.place(sub, left);
        }
        self.y += self.gap;

        // The recipient.
        self.heading(&l.recipient_heading);
        let r = &doc.recipient;
        let name = if r.name.trim().is_empty() {
            "—".to_string()
        } else {
            clean(&r.name)
        };
        self.row(&l.name, &[name]);
        match (&r.birth_date, r.age) {
            (Some(dob), _) if !dob.trim().is_empty() => {
                self.row(&l.birth_date, &[date(dob, self.zone)])
            }
            (_, Some(age)) => self.row(&l.age, &[age.to_string()]),
            _ => {}
        }
        self.row(&l.gender, &[self.value(&r.gender)]);
        let identity = match (r.identity_scheme.trim(), r.identity_value.trim()) {
            ("", v) => vec![clean(v)],
            (scheme, "") => vec![self.value(scheme)],
            (scheme, v) => vec![self.value(scheme), ": ".into(), clean(v)],
        };
        self.row(&l.identity, &identity);
        self.row(&l.nationality, &[self.value(&r.nationality)]);
        self.row(&l.address, &[clean(&r.address)]);
        self.row(&l.certificate_id, &[clean(&doc.certificate_id)]);

        // The doses start below the QR code.
        if self.pages.len() == 1 {
            self.y = self.y.max(self.qr_bottom + self.gap);
        } else {
            self.y += self.gap;
        }
        self.heading(&l.vaccination_heading);
        for d in &doc.doses {
            self.dose(d);
        }
    }

    fn dose(&mut self, d: &Dose) {
        let tpl = self.tpl;
        let t = &tpl.t;
        let s = &t.style;
        let l = &t.labels;
        let heading = if d.booster {
            &l.booster_heading
        } else {
            &l.dose_heading
        };
        let heading = fill(
            heading,
            &[
                ("dose", d.dose.to_string()),
                ("total", d.total_doses.to_string()),
            ],
        );
        let width = self.right - self.left;
        let heading = self.block(&heading, Weight::Bold, s.text_size * 1.1, tpl.accent, width);
        let facility = match (d.facility_name.trim(), d.facility_address.trim()) {
            ("", a) => vec![clean(a)],
            (n, "") => vec![clean(n)],
            (n, a) => vec![clean(n), ", ".into(), clean(a)],
        };
        let validity = match (&d.valid_from, &d.valid_until) {
            (Some(f), Some(u)) => fill(
                &l.valid_from_until,
                &[("from", date(f, self.zone)), ("until", date(u, self.zone))],
            ),
            (Some(f), None) => fill(&l.valid_from, &[("from", date(f, self.zone))]),
            (None, Some(u)) => fill(&l.valid_until, &[("until", date(u, self.zone))]),
            (None, None) => Vec::new(),
        };
        let fields: [(&str, Vec<String>); 7] = [
            (&l.vaccine, vec![clean(&d.vaccine)]),
            (&l.manufacturer, vec![clean(&d.manufacturer)]),
            (&l.batch, vec![clean(&d.batch)]),
            (&l.date, vec![date(&d.date, self.zone)]),
            (&l.facility, facility),
            (&l.vaccinator, vec![clean(&d.vaccinator)]),
            (&l.validity, validity),
        ];
        let rows: Vec<Row> = fields
            .iter()
            .filter(|(_, v)| !is_blank(v))
            .map(|(label, value)| self.make_row(label, value))
            .collect();
        let row_gap = self.row_gap();
        let total = heading.height()
            + rows.iter().map(|r| r.height() + row_gap).sum::<f32>()
            + self.gap * 0.5;
        // Keep a dose on one page when it fits on one.
        if self.y + total > self.bottom && total <= self.bottom - self.top {
            self.new_page();
        }
        self.y += self.gap * 0.5;
        self.ensure(heading.height());
        let left = self.left;
        self.place(heading, left);
        for row in rows {
            self.place_row(row);
        }
    }

    fn heading(&mut self, text: &str) {
        let tpl = self.tpl;
        let s = &tpl.t.style;
        let block = self.block(
            &[text],
            Weight::Bold,
            s.heading_size,
            tpl.accent,
            self.right - self.left,
        );
        self.ensure(block.height() + s.text_size * s.line_height * 2.0);
        let left = self.left;
        self.place(block, left);
        let rule = Op::Rule {
            x: left,
            y: self.y,
            width: self.width_at(self.y) - left,
            color: tpl.accent,
        };
        self.page().push(rule);
        self.y += self.row_gap() * 2.0;
    }

    fn row_gap(&self) -> f32 {
        self.tpl.t.style.text_size * 0.3
    }

    /// The right edge of the content at height `y`: left of the QR code
    /// beside it.
    fn width_at(&self, y: f32) -> f32 {
        if self.pages.len() == 1 && y < self.qr_bottom {
            self.qr_left - self.gap
        } else {
            self.right
        }
    }

    /// A label and its value, given as pieces (see [`Flow::block`]).
    fn make_row(&mut self, label: &str, value: &[String]) -> Row {
        let tpl = self.tpl;
        let s = &tpl.t.style;
        let label_col = s.label_width;
        let value_x = self.left + label_col;
        let value_width = self.width_at(self.y) - value_x;
        Row {
            label: self.block(
                &[label],
                Weight::Regular,
                s.text_size,
                tpl.muted,
                label_col - 6.0,
            ),
            value: self.block(value, Weight::Regular, s.text_size, tpl.text, value_width),
        }
    }

    /// A label/value row; nothing when the value is empty.
    fn row(&mut self, label: &str, value: &[String]) {
        if is_blank(value) {
            return;
        }
        let row = self.make_row(label, value);
        self.place_row(row);
    }

    fn place_row(&mut self, row: Row) {
        let h = row.height();
        self.ensure(h);
        let top = self.y;
        let left = self.left;
        self.place(row.label, left);
        self.y = top;
        self.place(row.value, left + self.tpl.t.style.label_width);
        self.y = top + h + self.row_gap();
    }

    /// Starts a new page unless `height` fits (or the page is still empty).
    fn ensure(&mut self, height: f32) {
        if self.y + height > self.bottom && self.y > self.top {
            self.new_page();
        }
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = self.top;
    }

    fn page(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// Places `block`'s lines at `x` from the current height down.
    fn place(&mut self, block: Block, x: f32) {
        for line in block.lines {
            let baseline = baseline(self.y, block.size, block.line_height);
            let op = Op::Text {
                x,
                baseline,
                size: block.size,
                color: block.color,
                line,
            };
            self.page().push(op);
            self.y += block.line_height;
        }
    }

    /// Shapes and wraps to `max_width` the text made of `parts`. Each part
    /// is shaped on its own, or found already shaped when the template has
    /// it (labels, the text around placeholders): shaping is most of the
    /// cost of a page, and parts meet at spaces or punctuation, where
    /// shaping them together would change nothing.
    fn block<S: AsRef<str>>(
        &mut self,
        parts: &[S],
        weight: Weight,
        size: f32,
        color: Rgb,
        max_width: f32,
    ) -> Block {
        let tpl = self.tpl;
        let text: Rc<str> = match parts {
            [one] => Rc::from(one.as_ref()),
            _ => Rc::from(parts.iter().map(AsRef::as_ref).collect::<String>()),
        };
        let mut glyphs = std::mem::take(&mut self.scratch);
        glyphs.clear();
        let mut offset = 0;
        for part in parts {
            let part = part.as_ref();
            let first = glyphs.len();
            match tpl.shaped[weight as usize].get(part) {
                Some(cached) => glyphs.extend_from_slice(cached),
                None => self.shaper.shape(part, tpl.stack(weight), &mut glyphs),
            }
            for g in &mut glyphs[first..] {
                g.range = g.range.start + offset..g.range.end + offset;
            }
            offset += part.len();
        }
        let lines = wrap(&glyphs, size, max_width.max(size))
            .into_iter()
            .map(|range| {
                let glyphs = glyphs.get(range).map(<[Glyph]>::to_vec).unwrap_or_default();
                let width = glyphs.iter().map(|g| g.advance * size).sum();
                Line {
                    text: text.clone(),
                    glyphs,
                    width,
                }
            })
            .collect();
        self.scratch = glyphs;
        Block {
            lines,
            size,
            line_height: size * tpl.t.style.line_height,
            color,
        }
    }

    /// A recorded value, translated when the template lists it.
    fn value(&self, v: &str) -> String {
        let v = v.trim();
        match self.tpl.t.values.get(v) {
            Some(t) => t.clone(),
            None => clean(v),
        }
    }

    /// Adds the footer and page numbers; returns the pages.
    fn finish(mut self) -> Vec<Vec<Op>> {
        let t = &self.tpl.t;
        let pages = self.pages.len();
        let footer_top = self.bottom + self.gap;
        let size = t.style.small_size;
        let line_height = size * t.style.line_height;
        let mut out = std::mem::take(&mut self.pages);
        for (i, ops) in out.iter_mut().enumerate() {
            let mut y = footer_top;
            ops.push(Op::Rule {
                x: self.left,
                y: y - self.gap * 0.5,
                width: self.right - self.left,
                color: self.tpl.muted,
            });
            for line in &self.footer.lines {
                ops.push(Op::Text {
                    x: self.left,
                    baseline: baseline(y, size, line_height),
                    size,
                    color: self.tpl.muted,
                    line: Line {
                        text: line.text.clone(),
                        glyphs: line.glyphs.clone(),
                        width: line.width,
                    },
                });
                y += line_height;
            }
            let label = fill(
                &t.labels.page,
                &[("page", (i + 1).to_string()), ("pages", pages.to_string())],
            );
            let block = self.block(&label, Weight::Regular, size, self.tpl.muted, f32::MAX);
            for line in block.lines {
                let x = (self.right - line.width).max(self.left);
                ops.push(Op::Text {
                    x,
                    baseline: baseline(footer_top, size, line_height),
                    size,
                    color: self.tpl.muted,
                    line,
                });
            }
        }
        out
    }
}

/// The baseline of a line whose box starts at `top`: the box's middle
/// sits about at the middle of the lower-case letters.
fn baseline(top: f32, size: f32, line_height: f32) -> f32 {
    top + line_height * 0.5 + size * 0.35
}

/// Greedy line breaking at white space; a word longer than the line is
/// broken between clusters. Returns glyph ranges, spaces at the edges left
/// out.
fn wrap(glyphs: &[Glyph], size: f32, max_width: f32) -> Vec<std::ops::Range<usize>> {
    let mut lines = Vec::new();
    let n = glyphs.len();
    let mut start = 0;
    loop {
        while start < n && glyphs[start].space {
            start += 1;
        }
        if start >= n {
            break;
        }
        let mut width = 0.0;
        let mut last_space = None;
        let mut end = n;
        let mut i = start;
        while i < n {
            let g = &glyphs[i];
            if g.space {
                last_space = Some(i);
            }
            let w = g.advance * size;
            if width + w > max_width && i > start && !g.space {
                end = match last_space {
                    Some(b) if b > start => b,
                    // No space: break at the last cluster boundary.
                    _ => (start + 1..=i)
                        .rev()
                        .find(|&j| glyphs[j].range.start != glyphs[j - 1].range.start)
                        .unwrap_or(i),
                };
                break;
            }
            width += w;
            i += 1;
        }
        let mut trimmed = end;
        while trimmed > start && glyphs[trimmed - 1].space {
            trimmed -= 1;
        }
        lines.push(start..trimmed);
        start = end;
    }
    lines
}

/// `template` cut at its `{name}` placeholders, each replaced by its value
/// from `values` (an unknown placeholder prints as written): the pieces
/// for [`Flow::block`]. Empty pieces are left out.
fn fill(template: &str, values: &[(&str, String)]) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + len];
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => {
                parts.push(rest[..open].to_string());
                parts.push(value.clone());
            }
            None if values.is_empty() => parts.push(rest[..open].to_string()),
            None => parts.push(rest[..open + len + 1].to_string()),
        }
        rest = &rest[open + len + 1..];
    }
    parts.push(rest.to_string());
    parts.retain(|p| !p.is_empty());
    parts
}

fn is_blank(parts: &[String]) -> bool {
    parts.iter().all(|p| p.trim().is_empty())
}

/// Control characters become spaces; long values are cut.
fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_FIELD_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX_FIELD_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// A calendar date prints as it is; a date-time (`…T09:21:18Z`) as its
/// date in the deployment's zone — a vaccination at 02:00 in India is on
/// the Indian date, not the UTC one; anything else as given.
fn date(s: &str, zone: &divoc_time::Zone) -> String {
    let s = s.trim();
    if let Some(d) = divoc_time::parse_date(s) {
        return d.to_string();
    }
    match divoc_time::parse_instant(s, zone) {
        Some(ms) => divoc_time::Date::in_zone(ms, zone).to_string(),
        None => clean(s),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn glyph(start: usize, space: bool) -> Glyph {
        Glyph {
            font: 0,
            id: 1,
            range: start..start + 1,
            advance: 0.5,
            x_offset: 0.0,
            y_offset: 0.0,
            space,
        }
    }

    fn glyphs(text: &str) -> Vec<Glyph> {
        text.bytes()
            .enumerate()
            .map(|(i, b)| glyph(i, b == b' '))
            .collect()
    }

    #[test]
    fn wraps_at_spaces_and_trims_them() {
        // Each glyph is 5 points wide at size 10: 6 fit in 30 points.
        let g = glyphs("aaa bbb ccc");
        assert_eq!(wrap(&g, 10.0, 30.0), vec![0..3, 4..7, 8..11]);
        assert_eq!(wrap(&g, 10.0, 100.0), vec![0..11]);
        assert_eq!(
            wrap(&glyphs("   "), 10.0, 30.0),
            Vec::<std::ops::Range<usize>>::new()
        );
    }

    #[test]
    fn breaks_long_words_between_clusters() {
        let g = glyphs("aaaaaaaaaa");
        assert_eq!(wrap(&g, 10.0, 20.0), vec![0..4, 4..8, 8..10]);
        // Two glyphs of one cluster stay together.
        let mut g = glyphs("aaaa");
        g[2].range = 1..3;
        g[1].range = 1..3;
        assert_eq!(wrap(&g, 10.0, 10.0), vec![0..1, 1..3, 3..4]);
    }

    #[test]
    fn wrap_always_progresses() {
        // Narrower than one glyph: one glyph per line, never an empty loop.
        let g = glyphs("abc");
        assert_eq!(wrap(&g, 10.0, 0.1), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn dates_print_as_dates() {
        let utc = divoc_time::Zone::utc();
        assert_eq!(date("2021-03-02T09:21:18Z", &utc), "2021-03-02");
        assert_eq!(date("2021-03-02", &utc), "2021-03-02");
        assert_eq!(date("2 March 2021", &utc), "2 March 2021");
        assert_eq!(date("2021-03-0२", &utc), "2021-03-0२");
        assert_eq!(date("ब", &utc), "ब");
        // In India, 20:30 UTC on 1 March is already 2 March.
        let ist = divoc_time::Zone::named("Asia/Kolkata").unwrap();
        assert_eq!(date("2021-03-01T20:30:00Z", &ist), "2021-03-02");
        assert_eq!(date("2021-03-01T20:30:00Z", &utc), "2021-03-01");
        // A calendar date is never shifted.
        assert_eq!(date("2021-03-02", &ist), "2021-03-02");
    }

    #[test]
    fn fill_cuts_templates_at_placeholders() {
        let v = |s: &str| s.to_string();
        assert_eq!(
            fill(
                "Dose {dose} of {total}",
                &[("dose", v("1")), ("total", v("2"))]
            ),
            ["Dose ", "1", " of ", "2"]
        );
        assert_eq!(
            fill(
                "{from} से {until} तक",
                &[("from", v("a")), ("until", v("b"))]
            ),
            ["a", " से ", "b", " तक"]
        );
        // No values: the literal pieces (what the template caches).
        assert_eq!(fill("{from} से {until} तक", &[]), [" से ", " तक"]);
        assert_eq!(
            fill("a {unknown} b", &[("x", v("y"))]),
            ["a {unknown}", " b"]
        );
        assert_eq!(fill("a {b", &[]), ["a {b"]);
        assert_eq!(fill("plain", &[]), ["plain"]);
    }

    #[test]
    fn clean_cuts_and_replaces_controls() {
        assert_eq!(clean("a\nb\u{0}c"), "a b c");
        let long = "क".repeat(500);
        let c = clean(&long);
        assert_eq!(c.chars().count(), MAX_FIELD_CHARS + 1);
        assert!(c.ends_with('…'));
    }
}
