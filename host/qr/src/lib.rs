//! QR symbols for certificates: the PDF places one as a 1-bit image (one
//! pixel per module, drawn without interpolation), and the API serves them
//! as PNG and SVG.
//!
//! Encoding uses the `qrcode` crate's parts (segment optimisation,
//! Reed–Solomon, module placement, function patterns, format information)
//! but chooses the mask here. The crate scores its eight candidate symbols
//! module by module, which alone took longer than laying out and writing
//! the whole certificate; here the masks (ISO/IEC 18004:2015 §7.8.2,
//! Table 10) are applied and scored (§7.8.3.1) on rows of bits, 64 modules
//! at a time.

#![deny(missing_docs)]

use std::sync::OnceLock;

use qrcode::canvas::{Canvas, MaskPattern, Module};
use qrcode::{bits, ec, Color, EcLevel, Version};

use std::fmt::Write as _;

/// Why a symbol could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    /// The data does not fit in a version 40 symbol at level M, or the
    /// encoder refused it.
    #[error("QR: {0}")]
    Encode(String),
    /// The PNG writer failed (it writes to memory, so only on a bug).
    #[error("PNG: {0}")]
    Png(String),
}

/// Quiet zone on each side, in modules (ISO/IEC 18004 §6.3.8).
pub const QUIET_ZONE: usize = 4;

/// Error correction level M (15 % recovery), as the service's own QR
/// images: survives creases and glare.
const EC_LEVEL: EcLevel = EcLevel::M;

/// The masks in their reference order (000…111).
const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// Whether mask `m` (0‥7, Table 10) flips the module at row `i`, column `j`.
// Written as Table 10 writes the conditions.
#[allow(clippy::manual_is_multiple_of)]
fn flips(m: usize, i: usize, j: usize) -> bool {
    match m {
        0 => (i + j) % 2 == 0,
        1 => i % 2 == 0,
        2 => j % 3 == 0,
        3 => (i + j) % 3 == 0,
        4 => (i / 2 + j / 3) % 2 == 0,
        5 => (i * j) % 2 + (i * j) % 3 == 0,
        6 => ((i * j) % 2 + (i * j) % 3) % 2 == 0,
        _ => ((i + j) % 2 + (i * j) % 3) % 2 == 0,
    }
}

/// Every mask condition repeats every 12 rows and every 12 columns.
const PERIOD: usize = 12;

/// Version 40 is 177 modules wide.
const MAX_WIDTH: usize = 177;

/// One row of a symbol as bits: bit `c` is set when module `c` is dark.
#[derive(Clone, Copy, Default, PartialEq, Debug)]
struct Line([u64; 3]);

impl Line {
    fn set(&mut self, c: usize) {
        if let Some(w) = self.0.get_mut(c / 64) {
            *w |= 1 << (c % 64);
        }
    }
    fn get(&self, c: usize) -> bool {
        self.0.get(c / 64).is_some_and(|w| w >> (c % 64) & 1 == 1)
    }
    /// Bit `c` of the result is bit `c + K` of `self` (0 past the end);
    /// `0 < K < 64`.
    #[inline(always)]
    fn ahead<const K: usize>(self) -> Line {
        let [a, b, c] = self.0;
        Line([
            (a >> K) | (b << (64 - K)),
            (b >> K) | (c << (64 - K)),
            c >> K,
        ])
    }
    /// Bit `c` of the result is bit `c - K` of `self` (0 before the
    /// start); `0 < K < 64`.
    #[inline(always)]
    fn behind<const K: usize>(self) -> Line {
        let [a, b, c] = self.0;
        Line([
            a << K,
            (b << K) | (a >> (64 - K)),
            (c << K) | (b >> (64 - K)),
        ])
    }
    #[inline(always)]
    fn and(self, o: Line) -> Line {
        Line([self.0[0] & o.0[0], self.0[1] & o.0[1], self.0[2] & o.0[2]])
    }
    #[inline(always)]
    fn or(self, o: Line) -> Line {
        Line([self.0[0] | o.0[0], self.0[1] | o.0[1], self.0[2] | o.0[2]])
    }
    #[inline(always)]
    fn xor(self, o: Line) -> Line {
        Line([self.0[0] ^ o.0[0], self.0[1] ^ o.0[1], self.0[2] ^ o.0[2]])
    }
    #[inline(always)]
    fn not(self) -> Line {
        Line([!self.0[0], !self.0[1], !self.0[2]])
    }
    fn count(self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
    /// Bits `0..n` set.
    fn first(n: usize) -> Line {
        let mut l = Line::default();
        for (i, w) in l.0.iter_mut().enumerate() {
            *w = match n.saturating_sub(i * 64) {
                0 => 0,
                k if k >= 64 => u64::MAX,
                k => (1u64 << k) - 1,
            };
        }
        l
    }
    /// The low `PERIOD` bits of `tile` repeated over bits `0..n`.
    fn tiled(tile: u64, n: usize) -> Line {
        let mut l = Line::default();
        for c in (0..192).step_by(PERIOD) {
            let (w, b) = (c / 64, c % 64);
            l.0[w] |= tile << b;
            if b + PERIOD > 64 && w + 1 < 3 {
                l.0[w + 1] |= tile >> (64 - b);
            }
        }
        l.and(Line::first(n))
    }
}

/// A QR symbol: `width` × `width` modules, quiet zone excluded.
#[derive(Debug, Clone, PartialEq)]
pub struct QrMatrix {
    width: usize,
    rows: Vec<Line>,
}

/// Encodes `data` in the smallest version that holds it at level M (the
/// encoder picks numeric, alphanumeric or byte segments by itself:
/// base45 text is alphanumeric).
pub fn encode(data: &[u8]) -> Result<QrMatrix, QrError> {
    let unmasked = Unmasked::new(data)?;
    let mut best = (u32::MAX, 0, Vec::new());
    let mut rows = Vec::with_capacity(unmasked.n);
    let mut scratch = Scratch::default();
    for m in 0..MASKS.len() {
        unmasked.masked(m, &mut rows);
        let score = penalty(&rows, unmasked.n, &mut scratch);
        if score < best.0 {
            best = (score, m, rows.clone());
        }
    }
    let (_, m, mut rows) = best;
    format_information(&mut rows, unmasked.n, m);
    Ok(QrMatrix {
        width: unmasked.n,
        rows,
    })
}

/// A symbol with its data placed, before masking.
struct Unmasked {
    n: usize,
    dark: Vec<Line>,
    /// Modules that hold data or error correction (the ones masks flip).
    data: &'static [Line],
}

/// What every symbol of a version shares: its function patterns (finders,
/// timing, alignment, version information) and where data goes.
struct Layout {
    functional_dark: Vec<Line>,
    data: Vec<Line>,
    /// The data modules (row, column) in the order codeword bits fill
    /// them (§7.7.3).
    order: Vec<(u8, u8)>,
}

impl Unmasked {
    fn new(data: &[u8]) -> Result<Unmasked, QrError> {
        let err = |e: qrcode::types::QrError| QrError::Encode(e.to_string());
        let bits = bits::encode_auto(data, EC_LEVEL).map_err(err)?;
        let version = bits.version();
        let n = usize::try_from(version.width()).unwrap_or(0);
        if n > MAX_WIDTH {
            return Err(QrError::Encode(format!("{n} modules wide")));
        }
        let (data, ecc) =
            ec::construct_codewords(&bits.into_bytes(), version, EC_LEVEL).map_err(err)?;
        let layout = layout(version, n);
        let mut dark = layout.functional_dark.clone();
        // Codewords (data, then error correction, already interleaved),
        // most significant bit first; left-over modules stay light.
        let bits = data
            .iter()
            .chain(&ecc)
            .flat_map(|byte| (0..8).rev().map(move |b| byte >> b & 1 == 1));
        for (&(i, j), bit) in layout.order.iter().zip(bits) {
            if bit {
                if let Some(row) = dark.get_mut(usize::from(i)) {
                    row.set(usize::from(j));
                }
            }
        }
        Ok(Unmasked {
            n,
            dark,
            data: &layout.data,
        })
    }

    /// The symbol with mask `m` applied, into `rows`.
    fn masked(&self, m: usize, rows: &mut Vec<Line>) {
        // A mask's rows repeat every 12, and so does each row along its
        // length.
        let mut pattern = [Line::default(); PERIOD];
        for (p, row) in pattern.iter_mut().enumerate() {
            let mut tile = 0u64;
            for c in 0..PERIOD {
                tile |= u64::from(flips(m, p, c)) << c;
            }
            *row = Line::tiled(tile, self.n);
        }
        rows.clear();
        rows.extend(
            self.dark
                .iter()
                .zip(self.data)
                .enumerate()
                .map(|(i, (d, x))| d.xor(x.and(pattern[i % PERIOD]))),
        );
    }
}

/// The data modules in placement order (§7.7.3): two columns at a time
/// from the right, up then down, stepping over the vertical timing pattern
/// (column 6).
fn placement_order(data: &[Line], n: usize) -> Vec<(u8, u8)> {
    let mut order = Vec::new();
    let mut upward = true;
    let mut right = n;
    while right >= 2 {
        // Columns right - 1 and right - 2, or 5 and 4 for the timing column.
        let pair = if right - 1 == 6 { 5 } else { right - 1 };
        for step in 0..n {
            let i = if upward { n - 1 - step } else { step };
            for j in [pair, pair - 1] {
                if data.get(i).is_some_and(|r| r.get(j)) {
                    if let (Ok(i), Ok(j)) = (u8::try_from(i), u8::try_from(j)) {
                        order.push((i, j));
                    }
                }
            }
        }
        upward = !upward;
        right = pair - 1;
    }
    order
}

/// Rows of bits from modules given row by row.
fn pack(modules: impl Iterator<Item = bool>, n: usize) -> Vec<Line> {
    let mut rows = vec![Line::default(); n];
    let (mut i, mut j) = (0, 0);
    for dark in modules {
        if dark {
            if let Some(r) = rows.get_mut(i) {
                r.set(j);
            }
        }
        j += 1;
        if j == n {
            (i, j) = (i + 1, 0);
        }
    }
    rows
}

/// A version's [`Layout`], computed on first use.
fn layout(version: Version, n: usize) -> &'static Layout {
    static BY_VERSION: [OnceLock<Layout>; 40] = [const { OnceLock::new() }; 40];
    let compute = || {
        let mut canvas = Canvas::new(version, EC_LEVEL);
        canvas.draw_all_functional_patterns();
        let mut data = vec![Line::default(); n];
        for (i, row) in data.iter_mut().enumerate() {
            for j in 0..n {
                let (Ok(x), Ok(y)) = (i16::try_from(j), i16::try_from(i)) else {
                    continue;
                };
                if canvas.get(x, y) == Module::Empty {
                    row.set(j);
                }
            }
        }
        let functional_dark = pack(
            canvas.into_colors().into_iter().map(|c| c == Color::Dark),
            n,
        );
        let order = placement_order(&data, n);
        Layout {
            functional_dark,
            data,
            order,
        }
    };
    let slot = match version {
        Version::Normal(v) => usize::try_from(v - 1).ok().and_then(|v| BY_VERSION.get(v)),
        Version::Micro(_) => None,
    };
    match slot {
        Some(slot) => slot.get_or_init(compute),
        // Not reached (encode_auto makes normal symbols); still correct.
        None => Box::leak(Box::new(compute())),
    }
}

/// Writes the format information (error correction level and mask, two
/// copies, §7.9) into a masked symbol. The modules and their order are the
/// same in every version, relative to the corners, so they are copied from
/// a version 1 symbol the crate draws with the same mask.
fn format_information(rows: &mut [Line], n: usize, m: usize) {
    const SMALL: usize = 21;
    static BY_MASK: [OnceLock<Vec<bool>>; 8] = [const { OnceLock::new() }; 8];
    let Some(slot) = BY_MASK.get(m) else { return };
    let small = slot.get_or_init(|| {
        let mut c = Canvas::new(Version::Normal(1), EC_LEVEL);
        c.draw_all_functional_patterns();
        c.apply_mask(MASKS[m]);
        c.into_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect()
    });
    let at = |i: usize, j: usize| small.get(i * SMALL + j).copied().unwrap_or(false);
    let mut put = |i: usize, j: usize, dark: bool| {
        if let Some(row) = rows.get_mut(i) {
            let mask = Line::first(j + 1).xor(Line::first(j));
            *row = if dark {
                row.or(mask)
            } else {
                row.and(mask.not())
            };
        }
    };
    for k in (0..=8).filter(|&k| k != 6) {
        // Around the top left finder: row 8 and column 8.
        put(8, k, at(8, k));
        put(k, 8, at(k, 8));
    }
    for k in 0..8 {
        // Row 8 beside the top right finder.
        put(8, n - 8 + k, at(8, SMALL - 8 + k));
    }
    for k in 0..7 {
        // Column 8 beside the bottom left finder.
        put(n - 7 + k, 8, at(SMALL - 7 + k, 8));
    }
}

impl QrMatrix {
    /// Modules on a side, quiet zone excluded (21 for version 1).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether the module at row `i`, column `j` is dark.
    pub fn is_dark(&self, i: usize, j: usize) -> bool {
        self.rows.get(i).is_some_and(|r| r.get(j))
    }

    /// The symbol with its quiet zone as 1-bit grey samples (1 = light),
    /// rows padded to whole bytes, and the side in pixels.
    pub fn bits(&self) -> (Vec<u8>, usize) {
        self.scaled_bits(1)
    }

    /// As [`QrMatrix::bits`], each module `px` × `px` pixels.
    fn scaled_bits(&self, px: usize) -> (Vec<u8>, usize) {
        let side = (self.width + 2 * QUIET_ZONE) * px;
        let row_bytes = side.div_ceil(8);
        let mut out = vec![0xFFu8; row_bytes * side];
        for (i, row) in self.rows.iter().enumerate() {
            let light = row.not().and(Line::first(self.width));
            let first = (QUIET_ZONE + i) * px;
            let (line, rest) = out[first * row_bytes..].split_at_mut(row_bytes);
            for (b, byte) in line.iter_mut().enumerate() {
                let mut v = 0u8;
                for bit in 0..8 {
                    let module = (b * 8 + bit) / px;
                    let is_light = match module.checked_sub(QUIET_ZONE) {
                        Some(j) if j < self.width => light.get(j),
                        _ => true,
                    };
                    v = (v << 1) | u8::from(is_light);
                }
                *byte = v;
            }
            // The module's other pixel rows are copies of its first.
            for copy in rest.chunks_exact_mut(row_bytes).take(px - 1) {
                copy.copy_from_slice(line);
            }
        }
        (out, side)
    }

    /// A 1-bit greyscale PNG, each module `module_px` pixels square, with
    /// the quiet zone. One bit per pixel keeps both the deflate work and
    /// the file small (~1–3 KB for a certificate).
    pub fn to_png(&self, module_px: u32) -> Result<Vec<u8>, QrError> {
        let px = usize::try_from(module_px.clamp(1, 64)).unwrap_or(1);
        let (bits, side) = self.scaled_bits(px);
        let side = u32::try_from(side).map_err(|e| QrError::Png(e.to_string()))?;
        let mut out = Vec::with_capacity(bits.len() / 4 + 128);
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        encoder.set_compression(png::Compression::Fast);
        let png_err = |e: png::EncodingError| QrError::Png(e.to_string());
        let mut writer = encoder.write_header().map_err(png_err)?;
        writer.write_image_data(&bits).map_err(png_err)?;
        writer.finish().map_err(png_err)?;
        Ok(out)
    }

    /// An SVG document: one path of the dark modules' horizontal runs on a
    /// white square, the quiet zone included, at least `min_px` wide.
    pub fn to_svg(&self, min_px: u32) -> String {
        let side = self.width + 2 * QUIET_ZONE;
        let scale = usize::try_from(min_px).unwrap_or(0).div_ceil(side).max(1);
        let px = side * scale;
        let mut svg = String::with_capacity(self.width * self.width * 3);
        let _ = write!(
            svg,
            "<?xml version=\"1.0\" standalone=\"yes\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             version=\"1.1\" width=\"{px}\" height=\"{px}\" viewBox=\"0 0 {side} {side}\" \
             shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\""
        );
        for i in 0..self.width {
            let mut j = 0;
            while j < self.width {
                if !self.is_dark(i, j) {
                    j += 1;
                    continue;
                }
                let start = j;
                while j < self.width && self.is_dark(i, j) {
                    j += 1;
                }
                let (x, y, len) = (start + QUIET_ZONE, i + QUIET_ZONE, j - start);
                let _ = write!(svg, "M{x} {y}h{len}v1h-{len}z");
            }
        }
        svg.push_str("\"/></svg>\n");
        svg
    }
}

/// Rows padded with light rows before and after (so the vertical terms
/// need no bounds checks), and the alike-with-next-row rows.
#[derive(Default)]
struct Scratch {
    padded: Vec<Line>,
    down: Vec<Line>,
}

/// Light rows before the symbol in `Scratch::padded`.
const PAD_BEFORE: usize = 4;
/// Light rows after it: the finder test looks 10 rows down.
const PAD_AFTER: usize = 11;

/// The mask penalty (§7.8.3.1): runs of five or more alike (N1 = 3, +1 per
/// extra module), 2×2 blocks alike (N2 = 3 each), the finder-like
/// 1:1:3:1:1 pattern with four light modules on a side (N3 = 40 each; one
/// with light on both sides counts once), and the dark share's distance
/// from 50 % (N4 = 10 per 5 %). Lower is better. Outside the symbol is
/// light (the quiet zone).
///
/// Bit-parallel: along a row, 64 modules at a time (shifting the row);
/// down the columns, every column at once (combining neighbouring rows).
fn penalty(rows: &[Line], n: usize, s: &mut Scratch) -> u32 {
    if n < 2 || rows.len() != n {
        return u32::MAX;
    }
    let all = Line::first(n);
    let pairs = Line::first(n - 1);
    s.padded.clear();
    s.padded.resize(PAD_BEFORE, Line::default());
    s.padded.extend_from_slice(rows);
    s.padded.resize(PAD_BEFORE + n + PAD_AFTER, Line::default());
    // down[1 + i]: rows i and i + 1 alike, for i in -1..n+3 (0 outside).
    s.down.clear();
    s.down.resize(n + 4, Line::default());
    for i in 0..n - 1 {
        s.down[1 + i] = rows[i].xor(rows[i + 1]).not().and(all);
    }
    let (p, d) = (&s.padded, &s.down);
    let mut score = 0;
    for (i, &a) in rows.iter().enumerate() {
        // Along the row.
        let alike = a.xor(a.ahead::<1>()).not().and(pairs);
        score += runs_and_finders(
            [
                alike,
                alike.ahead::<1>(),
                alike.ahead::<2>(),
                alike.ahead::<3>(),
            ],
            alike.behind::<1>(),
            [
                a,
                a.ahead::<1>(),
                a.ahead::<2>(),
                a.ahead::<3>(),
                a.ahead::<4>(),
                a.ahead::<5>(),
                a.ahead::<6>(),
            ],
            a.behind::<1>()
                .or(a.behind::<2>())
                .or(a.behind::<3>())
                .or(a.behind::<4>()),
            a.ahead::<7>()
                .or(a.ahead::<8>())
                .or(a.ahead::<9>())
                .or(a.ahead::<10>()),
        );
        // Down the columns, from row i.
        let r = |k: usize| p[PAD_BEFORE + i + k];
        let before = |k: usize| p[PAD_BEFORE + i - k];
        score += runs_and_finders(
            [d[1 + i], d[2 + i], d[3 + i], d[4 + i]],
            d[i],
            [r(0), r(1), r(2), r(3), r(4), r(5), r(6)],
            before(1).or(before(2)).or(before(3)).or(before(4)),
            r(7).or(r(8)).or(r(9)).or(r(10)),
        );
        // 2×2 blocks with the next row.
        if i + 1 < n {
            let vertical = d[1 + i];
            score += 3 * vertical.and(vertical.ahead::<1>()).and(alike).count();
        }
    }
    let dark: u32 = rows.iter().map(|r| r.count()).sum();
    let total = u32::try_from(n * n).unwrap_or(u32::MAX);
    let k = (dark * 100 / total).abs_diff(50) / 5;
    score + 10 * k
}

/// N1 and N3 for the lines whose positions are the bits, given: whether
/// this module and the next are alike, and the same for the next three
/// positions (`alike`) and the previous one (`prev`); the seven modules
/// from here (`core`); whether any of the four modules before, or the four
/// after the seventh, is dark.
fn runs_and_finders(
    alike: [Line; 4],
    prev: Line,
    core: [Line; 7],
    dark_before: Line,
    dark_after: Line,
) -> u32 {
    // Modules here..=here+4 alike. A run of L ≥ 5 has L - 4 of these and
    // one start; it scores 3 + (L - 5) = (L - 4) + 2. A start is a five
    // whose previous position is not one.
    let [a0, a1, a2, a3] = alike;
    let five = a0.and(a1).and(a2).and(a3);
    let five_before = prev.and(a0).and(a1).and(a2);
    let starts = five.and(five_before.not());
    let n1 = five.count() + 2 * starts.count();
    // 1011101 from here (past the end is light, so a core must fit).
    let [c0, c1, c2, c3, c4, c5, c6] = core;
    let cores = c0
        .and(c1.not())
        .and(c2)
        .and(c3)
        .and(c4)
        .and(c5.not())
        .and(c6);
    let n3 = cores.and(dark_before.and(dark_after).not()).count();
    n1 + 40 * n3
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "DIVOC1:6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDEXWK G2EP4J0B";

    /// What a phone does: find the symbol in a picture and decode it.
    fn scan(qr: &QrMatrix) -> String {
        let (bits, side) = qr.bits();
        let row_bytes = side.div_ceil(8);
        let scale = 4;
        let mut img =
            rqrr::PreparedImage::prepare_from_greyscale(side * scale, side * scale, |x, y| {
                let (x, y) = (x / scale, y / scale);
                if bits[y * row_bytes + x / 8] & (0x80 >> (x % 8)) != 0 {
                    255
                } else {
                    0
                }
            });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code in the picture");
        grids[0].decode().unwrap().1
    }

    fn text_of_length(len: usize) -> String {
        TEXT.chars().cycle().take(len).collect()
    }

    #[test]
    fn scans_back_to_its_text() {
        // Versions 2 to 25 or so: a signed two-dose credential is ~1,350.
        for len in [TEXT.len(), 200, 700, 1350] {
            let text = text_of_length(len);
            let qr = encode(text.as_bytes()).unwrap();
            assert_eq!(scan(&qr), text, "{len} characters");
        }
    }

    /// The crate's symbol for a text with a given mask.
    fn crate_symbol(text: &str, mask: MaskPattern) -> (usize, Vec<bool>) {
        let bits = bits::encode_auto(text.as_bytes(), EC_LEVEL).unwrap();
        let version = bits.version();
        let (data, ecc) = ec::construct_codewords(&bits.into_bytes(), version, EC_LEVEL).unwrap();
        let mut canvas = Canvas::new(version, EC_LEVEL);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&data, &ecc);
        canvas.apply_mask(mask);
        let n = usize::try_from(version.width()).unwrap();
        let dark = canvas
            .into_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect();
        (n, dark)
    }

    #[test]
    fn every_mask_gives_the_crates_symbol() {
        // Small, version 7+ (with version information) and large symbols:
        // mask conditions, data modules and format information all agree.
        for len in [10, 150, 400, 1350] {
            let text = text_of_length(len);
            let unmasked = Unmasked::new(text.as_bytes()).unwrap();
            for (m, pattern) in MASKS.into_iter().enumerate() {
                let (n, expected) = crate_symbol(&text, pattern);
                let mut rows = Vec::new();
                unmasked.masked(m, &mut rows);
                format_information(&mut rows, n, m);
                let ours = QrMatrix { width: n, rows };
                for i in 0..n {
                    for j in 0..n {
                        assert_eq!(
                            ours.is_dark(i, j),
                            expected[i * n + j],
                            "{len} chars, {pattern:?}, row {i} column {j}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn same_version_as_the_crate_picks() {
        let code = qrcode::QrCode::with_error_correction_level(TEXT, EC_LEVEL).unwrap();
        assert_eq!(encode(TEXT.as_bytes()).unwrap().width, code.width());
    }

    fn line(bits: &[bool]) -> Line {
        let mut l = Line::default();
        for (c, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
            l.set(c);
        }
        l
    }

    fn rows(dark: &[bool], n: usize) -> Vec<Line> {
        dark.chunks(n).map(line).collect()
    }

    /// N1 + N3 of a single row: the penalty of a one-row symbol less its
    /// column, block and balance terms is awkward, so compute the row
    /// terms directly.
    fn lp(bits: &[bool]) -> u32 {
        let (a, n) = (line(bits), bits.len());
        let alike = a.xor(a.ahead::<1>()).not().and(Line::first(n - 1));
        runs_and_finders(
            [
                alike,
                alike.ahead::<1>(),
                alike.ahead::<2>(),
                alike.ahead::<3>(),
            ],
            alike.behind::<1>(),
            [
                a,
                a.ahead::<1>(),
                a.ahead::<2>(),
                a.ahead::<3>(),
                a.ahead::<4>(),
                a.ahead::<5>(),
                a.ahead::<6>(),
            ],
            a.behind::<1>()
                .or(a.behind::<2>())
                .or(a.behind::<3>())
                .or(a.behind::<4>()),
            a.ahead::<7>()
                .or(a.ahead::<8>())
                .or(a.ahead::<9>())
                .or(a.ahead::<10>()),
        )
    }

    /// The penalty the slow, obvious way, module by module.
    fn reference_penalty(dark: &[bool], n: usize) -> u32 {
        let at = |r: usize, c: usize| dark[r * n + c];
        let line_score = |line: Vec<bool>| {
            let mut score = 0;
            let mut start = 0;
            while start < line.len() {
                let mut end = start;
                while end < line.len() && line[end] == line[start] {
                    end += 1;
                }
                if end - start >= 5 {
                    score += 3 + (end - start - 5) as u32;
                }
                start = end;
            }
            let light = |i: isize| i < 0 || i as usize >= line.len() || !line[i as usize];
            let finder = [true, false, true, true, true, false, true];
            for c in 0..line.len().saturating_sub(6) {
                if line[c..c + 7] == finder {
                    let c = c as isize;
                    let before = (1..=4).all(|k| light(c - k));
                    let after = (7..=10).all(|k| light(c + k));
                    if before || after {
                        score += 40;
                    }
                }
            }
            score
        };
        let mut score = 0;
        for i in 0..n {
            score += line_score((0..n).map(|j| at(i, j)).collect());
            score += line_score((0..n).map(|j| at(j, i)).collect());
        }
        for r in 0..n - 1 {
            for c in 0..n - 1 {
                let v = at(r, c);
                if at(r, c + 1) == v && at(r + 1, c) == v && at(r + 1, c + 1) == v {
                    score += 3;
                }
            }
        }
        let dark_count = dark.iter().filter(|&&d| d).count();
        score + 10 * ((dark_count * 100 / (n * n)).abs_diff(50) / 5) as u32
    }

    #[test]
    fn penalty_counts_each_rule() {
        // All light 5×5: N1 3 per row and column (10 × 3), N2 16 × 3, no
        // finder pattern, N4 |0 − 50| / 5 = 10 → 100.
        let light = [false; 25];
        assert_eq!(
            penalty(&rows(&light, 5), 5, &mut Scratch::default()),
            30 + 48 + 100
        );
        // A run of 7: 3 + 2.
        assert_eq!(lp(&[true; 7]), 5);
        // A finder-like row with light all around counts once.
        let row = [true, false, true, true, true, false, true];
        assert_eq!(lp(&row), 40);
        let mut padded = vec![false; 4];
        padded.extend(row);
        padded.push(true);
        assert_eq!(lp(&padded), 40);
        // Dark right before and after the core: no light side.
        let mut hemmed = vec![true];
        hemmed.extend(row);
        hemmed.push(true);
        assert_eq!(lp(&hemmed), 0);
        // Light after only (the line ends).
        let mut after = vec![true, true];
        after.extend(row);
        assert_eq!(lp(&after), 40);
        // Two separate patterns count twice.
        let mut two = row.to_vec();
        two.extend([false; 4]);
        two.extend(row);
        assert_eq!(lp(&two), 80);
    }

    #[test]
    fn bit_parallel_penalty_equals_the_obvious_one() {
        // Pseudo-random symbols of sizes around the 64-bit word edges.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut scratch = Scratch::default();
        for n in [5, 21, 63, 64, 65, 117, 128, 129, 177] {
            for density in [2, 3, 5] {
                let dark: Vec<bool> = (0..n * n)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x.is_multiple_of(density)
                    })
                    .collect();
                assert_eq!(
                    penalty(&rows(&dark, n), n, &mut scratch),
                    reference_penalty(&dark, n),
                    "n = {n}, density 1/{density}"
                );
            }
        }
        // And on a real symbol.
        let qr = encode(TEXT.as_bytes()).unwrap();
        let n = qr.width;
        let dark: Vec<bool> = (0..n * n).map(|k| qr.is_dark(k / n, k % n)).collect();
        assert_eq!(
            penalty(&rows(&dark, n), n, &mut scratch),
            reference_penalty(&dark, n)
        );
    }

    #[test]
    fn shifts_move_bits_across_words() {
        let mut l = Line::default();
        l.set(0);
        l.set(64);
        l.set(130);
        assert_eq!(l.ahead::<1>().0, [1 << 63, 0, 1 << 1]);
        assert_eq!(l.behind::<1>().0, [1 << 1, 1 << 1, 1 << 3]);
        assert_eq!(l.behind::<63>().0, [1 << 63, 1 << 63, 0]);
        assert_eq!(Line::first(65).0, [u64::MAX, 1, 0]);
        assert_eq!(Line::first(0).count(), 0);
        // 0b101 every 12 bits, across the word boundary at 60..72.
        let t = Line::tiled(0b101, 80);
        let set: Vec<usize> = (0..192).filter(|&c| t.get(c)).collect();
        assert_eq!(set, [0, 2, 12, 14, 24, 26, 36, 38, 48, 50, 60, 62, 72, 74]);
    }

    #[test]
    fn bits_are_packed_msb_first_with_a_light_quiet_zone() {
        let mut rows = vec![Line::default()];
        rows[0].set(0);
        let qr = QrMatrix { width: 1, rows };
        let (bits, side) = qr.bits();
        assert_eq!(side, 9);
        assert_eq!(bits.len(), 2 * 9);
        // Row 4, column 4: byte 0 of that row, bit 4 from the left.
        assert_eq!(bits[4 * 2], 0b1111_0111);
        assert_eq!(bits.iter().filter(|&&b| b != 0xFF).count(), 1);
    }

    #[test]
    fn too_long_is_an_error_not_a_panic() {
        let text = "A".repeat(10_000);
        assert!(matches!(encode(text.as_bytes()), Err(QrError::Encode(_))));
        // Empty text is a valid (tiny) symbol.
        assert_eq!(encode(b"").unwrap().width, 21);
    }

    /// Reads a PNG back with the `png` crate (not our writer's code) and
    /// scans it as a phone would.
    fn scan_png(png_bytes: &[u8]) -> (u32, String) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.bit_depth, png::BitDepth::One);
        let (w, line) = (info.width as usize, info.line_size);
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, w, |x, y| {
            if buf[y * line + x / 8] & (0x80 >> (x % 8)) != 0 {
                255
            } else {
                0
            }
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        (info.width, grids[0].decode().unwrap().1)
    }

    #[test]
    fn png_scans_back_at_every_module_size() {
        for (len, px) in [(TEXT.len(), 1), (700, 3), (1350, 4), (1350, 5)] {
            let text = text_of_length(len);
            let qr = encode(text.as_bytes()).unwrap();
            let png = qr.to_png(px).unwrap();
            let (width, scanned) = scan_png(&png);
            assert_eq!(scanned, text, "{len} characters at {px} px");
            assert_eq!(width as usize, (qr.width() + 2 * QUIET_ZONE) * px as usize);
        }
    }

    #[test]
    fn svg_draws_exactly_the_dark_modules() {
        let qr = encode(TEXT.as_bytes()).unwrap();
        let svg = qr.to_svg(256);
        let side = qr.width() + 2 * QUIET_ZONE;
        assert!(svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")));
        let px: usize = svg
            .split("width=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(px >= 256 && px.is_multiple_of(side), "{px}");
        // Rebuild the grid from the path's runs.
        let d = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut dark = vec![false; qr.width() * qr.width()];
        for run in d.split('M').filter(|r| !r.is_empty()) {
            let (xy, rest) = run.split_once('h').unwrap();
            let (x, y) = xy.split_once(' ').unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            let len: usize = rest.split('v').next().unwrap().parse().unwrap();
            for c in x..x + len {
                let cell = &mut dark[(y - QUIET_ZONE) * qr.width() + c - QUIET_ZONE];
                assert!(!*cell, "runs overlap");
                *cell = true;
            }
        }
        for i in 0..qr.width() {
            for j in 0..qr.width() {
                assert_eq!(dark[i * qr.width() + j], qr.is_dark(i, j), "({i}, {j})");
            }
        }
    }

    #[test]
    fn binary_data_round_trips() {
        // DIVOC's legacy QR holds a zip archive: bytes, not text.
        let data: Vec<u8> = (0..=255u8).cycle().take(600).collect();
        let qr = encode(&data).unwrap();
        let (bits, side) = qr.bits();
        let row_bytes = side.div_ceil(8);
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(side * 4, side * 4, |x, y| {
            let (x, y) = (x / 4, y / 4);
            if bits[y * row_bytes + x / 8] & (0x80 >> (x % 8)) != 0 {
                255
            } else {
                0
            }
        });
        let grids = img.detect_grids();
        let mut out = Vec::new();
        grids[0].decode_to(&mut out).unwrap();
        assert_eq!(out, data);
    }
}
