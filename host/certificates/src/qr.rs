//! QR content and rendering.
//!
//! Content: `DIVOC1:` + base45 (RFC 9285) of the zlib-compressed (RFC 1950)
//! JCS-canonical signed credential. Base45's alphabet is exactly the QR
//! alphanumeric set (ISO/IEC 18004 §7.4.4: `0-9 A-Z space $ % * + - . / :`),
//! so the whole text — prefix included, hence upper case — is encoded in
//! alphanumeric mode at 5.5 bits per character, and any scanner app shows it
//! as plain text. The same scheme as the EU DCC's `HC1:` (without CBOR/COSE:
//! our proof is inside the JSON).
//!
//! [`legacy_zip`] also produces DIVOC's original form (a zip archive holding
//! `certificate.json`, put in a byte-mode QR) for DIVOC's verifier apps.

use std::cell::RefCell;
use std::io::{Read, Write};

use flate2::read::DeflateDecoder;
use flate2::write::{DeflateEncoder, ZlibEncoder};
use flate2::{Compression, Decompress, FlushDecompress, Status};
use serde_json::Value;

use crate::error::CertError;

/// The scheme prefix of our QR text.
pub const PREFIX: &str = "DIVOC1:";
/// Largest decompressed credential accepted (a zip/zlib bomb guard).
const MAX_INFLATED: u64 = 1 << 20;
/// The file name DIVOC's verifier expects inside the zip.
const LEGACY_FILE: &str = "certificate.json";

const B45: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/// RFC 9285 §4: two bytes → three characters, a trailing byte → two.
pub fn base45_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(2) * 3);
    let ch = |v: u32| char::from(B45[(v % 45) as usize]);
    for pair in data.chunks(2) {
        match *pair {
            [a, b] => {
                let n = u32::from(a) * 256 + u32::from(b);
                out.extend([ch(n), ch(n / 45), ch(n / 2025)]);
            }
            [a] => {
                let n = u32::from(a);
                out.extend([ch(n), ch(n / 45)]);
            }
            _ => {}
        }
    }
    out
}

/// Marks a byte outside the base45 alphabet in [`B45_VALUE`].
const INVALID: u8 = u8::MAX;

/// The value of each byte in the base45 alphabet ([`INVALID`] if it is not
/// in it): a table, because searching the alphabet per character was a
/// measurable part of verifying a QR code.
const B45_VALUE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < B45.len() {
        table[B45[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// RFC 9285 §4.2 decoding; `None` for characters outside the alphabet, a
/// dangling single character, or a triple above 65535.
pub fn base45_decode(text: &str) -> Option<Vec<u8>> {
    let values: Vec<u32> = text
        .bytes()
        .map(|b| match B45_VALUE[usize::from(b)] {
            INVALID => None,
            v => Some(u32::from(v)),
        })
        .collect::<Option<_>>()?;
    let mut out = Vec::with_capacity(values.len() / 3 * 2 + 1);
    for chunk in values.chunks(3) {
        match *chunk {
            [c, d, e] => {
                let n = c + d * 45 + e * 2025;
                let n = u16::try_from(n).ok()?;
                out.extend(n.to_be_bytes());
            }
            [c, d] => out.push(u8::try_from(c + d * 45).ok()?),
            _ => return None,
        }
    }
    Some(out)
}

fn canonical(credential: &Value) -> Result<Vec<u8>, CertError> {
    divoc_crypto::jcs::canonicalize_to_vec(credential)
        .map_err(|e| CertError::Internal(format!("canonicalization: {e}")))
}

/// The QR text for a signed credential.
pub fn encode(credential: &Value) -> Result<String, CertError> {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    z.write_all(&canonical(credential)?)
        .map_err(|e| CertError::Internal(format!("zlib: {e}")))?;
    let compressed = z
        .finish()
        .map_err(|e| CertError::Internal(format!("zlib: {e}")))?;
    Ok(format!("{PREFIX}{}", base45_encode(&compressed)))
}

fn bad_input(message: &str) -> CertError {
    CertError::field("input", message)
}

fn inflate(reader: impl Read) -> Result<Value, CertError> {
    let mut json = Vec::new();
    reader
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut json)
        .map_err(|_| bad_input("compressed data is corrupt"))?;
    if json.len() as u64 > MAX_INFLATED {
        return Err(bad_input("credential is larger than 1 MiB"));
    }
    serde_json::from_slice(&json).map_err(|_| bad_input("not a JSON credential"))
}

/// Decodes QR text (our `DIVOC1:` form; scanners may add surrounding
/// whitespace) back into the signed credential.
pub fn decode(text: &str) -> Result<Value, CertError> {
    let text = text.trim();
    let body = text
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad_input("unknown QR prefix; expected DIVOC1:"))?;
    let compressed = base45_decode(body).ok_or_else(|| bad_input("invalid base45"))?;
    inflate_zlib(&compressed)
}

/// Inflates a zlib stream and parses the JSON in it, with one decompressor
/// and one output buffer per thread: a fresh decompressor allocates and
/// zeroes ~43 KiB of state (its 32 KiB window), which cost more than
/// inflating a certificate did.
fn inflate_zlib(compressed: &[u8]) -> Result<Value, CertError> {
    /// A thread keeps at most this much output buffer between calls.
    const KEEP: usize = 64 << 10;
    thread_local! {
        static INFLATER: RefCell<Option<(Decompress, Vec<u8>)>> = const { RefCell::new(None) };
    }
    INFLATER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (inflater, out) =
            slot.get_or_insert_with(|| (Decompress::new(true), Vec::with_capacity(8 << 10)));
        inflater.reset(true);
        out.clear();
        let result = inflate_into(inflater, compressed, out).and_then(|()| {
            serde_json::from_slice(out).map_err(|_| bad_input("not a JSON credential"))
        });
        if out.capacity() > KEEP {
            *out = Vec::with_capacity(8 << 10);
        }
        result
    })
}

/// Runs `inflater` over all of `input` into `out`, refusing more than
/// [`MAX_INFLATED`] bytes of output and truncated streams.
fn inflate_into(
    inflater: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CertError> {
    let limit = MAX_INFLATED as usize;
    loop {
        if out.len() == out.capacity() {
            if out.len() > limit {
                return Err(bad_input("credential is larger than 1 MiB"));
            }
            out.reserve(out.len().max(8 << 10));
        }
        let consumed = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
        let rest = input.get(consumed..).unwrap_or_default();
        let produced = out.len();
        let status = inflater
            .decompress_vec(rest, out, FlushDecompress::None)
            .map_err(|_| bad_input("compressed data is corrupt"))?;
        if out.len() > limit {
            return Err(bad_input("credential is larger than 1 MiB"));
        }
        match status {
            Status::StreamEnd => return Ok(()),
            // No progress with room to spare: the stream ends early.
            _ if out.len() == produced
                && out.len() < out.capacity()
                && usize::try_from(inflater.total_in()).unwrap_or(usize::MAX) == consumed =>
            {
                return Err(bad_input("compressed data is corrupt"));
            }
            _ => {}
        }
    }
}

/// The QR version (1-40) a text needs at error-correction level M.
pub fn version_of(text: &str) -> Result<i16, CertError> {
    let width = symbol(text.as_bytes())?.width();
    // ISO/IEC 18004 §6.3: a version v symbol is 17 + 4v modules wide.
    i16::try_from((width - 17) / 4).map_err(|e| CertError::Internal(format!("QR: {e}")))
}

/// Level M (15% recovery) survives creases and phone-screen glare; the
/// encoder picks alphanumeric mode for base45 text by itself. The mask is
/// chosen on rows of bits (`divoc-qr`), ~100× faster than module by module.
fn symbol(data: &[u8]) -> Result<divoc_qr::QrMatrix, CertError> {
    divoc_qr::encode(data).map_err(|e| CertError::Internal(e.to_string()))
}

/// Renders `data` as a PNG (1-bit grey, 4-module quiet zone).
pub fn render_png(data: &[u8], module_px: u32) -> Result<Vec<u8>, CertError> {
    symbol(data)?
        .to_png(module_px)
        .map_err(|e| CertError::Internal(e.to_string()))
}

/// Renders `data` as an SVG document, at least 256 px wide.
pub fn render_svg(data: &[u8]) -> Result<String, CertError> {
    Ok(symbol(data)?.to_svg(256))
}

/// DIVOC's legacy QR payload: a zip archive with one deflated entry,
/// `certificate.json` (the credential JSON). Written by hand (PKWARE
/// APPNOTE 6.3.x §4.3: local header, data, central directory, end record)
/// since one fixed entry does not justify a zip library.
pub fn legacy_zip(credential: &Value) -> Result<Vec<u8>, CertError> {
    let json = serde_json::to_vec(credential).map_err(|e| CertError::Internal(e.to_string()))?;
    let mut d = DeflateEncoder::new(Vec::new(), Compression::best());
    d.write_all(&json)
        .map_err(|e| CertError::Internal(format!("deflate: {e}")))?;
    let data = d
        .finish()
        .map_err(|e| CertError::Internal(format!("deflate: {e}")))?;
    let mut crc = flate2::Crc::new();
    crc.update(&json);
    let too_big = |_| CertError::Internal("credential too large for zip".into());
    let (csize, usize_) = (
        u32::try_from(data.len()).map_err(too_big)?,
        u32::try_from(json.len()).map_err(too_big)?,
    );
    let name = LEGACY_FILE.as_bytes();
    let name_len = name.len() as u16;
    let mut out = Vec::with_capacity(data.len() + 128);
    let common = |out: &mut Vec<u8>| {
        out.extend(20u16.to_le_bytes()); // version needed: 2.0 (deflate)
        out.extend(0u16.to_le_bytes()); // flags
        out.extend(8u16.to_le_bytes()); // method: deflate
        out.extend(0u16.to_le_bytes()); // mod time
        out.extend(0x21u16.to_le_bytes()); // mod date: 1980-01-01
        out.extend(crc.sum().to_le_bytes());
        out.extend(csize.to_le_bytes());
        out.extend(usize_.to_le_bytes());
        out.extend(name_len.to_le_bytes());
        out.extend(0u16.to_le_bytes()); // extra length
    };
    out.extend(0x0403_4b50u32.to_le_bytes());
    common(&mut out);
    out.extend(name);
    out.extend(&data);
    let cd_offset = u32::try_from(out.len()).map_err(too_big)?;
    out.extend(0x0201_4b50u32.to_le_bytes());
    out.extend(20u16.to_le_bytes()); // version made by
    common(&mut out);
    out.extend([0u8; 12]); // comment len, disk, internal attrs, external attrs
    out.extend(0u32.to_le_bytes()); // local header offset
    out.extend(name);
    let cd_size = u32::try_from(out.len()).map_err(too_big)? - cd_offset;
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]); // disk numbers
    out.extend(1u16.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(cd_size.to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    Ok(out)
}

/// Reads `certificate.json` from a DIVOC legacy zip (the first local
/// entry; stored or deflated).
pub fn decode_legacy_zip(zip: &[u8]) -> Result<Value, CertError> {
    let u16_at = |i: usize| zip.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| {
        zip.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if u32_at(0) != Some(0x0403_4b50) {
        return Err(bad_input("not a zip archive"));
    }
    let (Some(method), Some(csize), Some(name_len), Some(extra_len)) =
        (u16_at(8), u32_at(18), u16_at(26), u16_at(28))
    else {
        return Err(bad_input("truncated zip header"));
    };
    let start = 30 + usize::from(name_len) + usize::from(extra_len);
    let data = zip
        .get(start..start + csize as usize)
        .ok_or_else(|| bad_input("truncated zip entry"))?;
    match method {
        0 => inflate(data),
        8 => inflate(DeflateDecoder::new(data)),
        _ => Err(bad_input("unsupported zip compression method")),
    }
}

/// Largest image accepted by [`read_image`], in pixels (a decompression
/// bomb guard: a phone photo is ~12 MP; QR scans are far smaller).
const MAX_IMAGE_PIXELS: u64 = 16_000_000;

/// Most pixels the QR search looks at: a larger image is first scaled
/// down by a whole factor (each pixel the mean of its block). A 12 MP
/// photo with the code across a third of its width keeps ~6 pixels a
/// module, and the search's cost, linear in pixels, stays bounded.
pub const MAX_SEARCH_PIXELS: u64 = 4_000_000;

/// Most memory one image's decoding may allocate (16 MP of RGBA and the
/// grey copy, with room).
const MAX_DECODE_ALLOC: u64 = 128 << 20;

/// Finds and reads the QR code in a PNG or JPEG image and returns its raw
/// content bytes (text for our `DIVOC1:` form, a zip for DIVOC's legacy
/// form). Errors name the field `qr_image`.
pub fn read_image(bytes: &[u8]) -> Result<Vec<u8>, CertError> {
    read_image_until(bytes, None)
}

/// [`read_image`], giving up (an error naming `qr_image`) at the first
/// step that starts after `deadline`.
///
/// The search is quirc's (the `quircs` port): it keeps at most 32 finder
/// patterns and 8 candidate codes however busy the image, so its cost is
/// linear in the pixels searched. (`rqrr`, used before, tries every pair
/// of finder-like shapes and copies the image for each: a 2 MP image of
/// 1-pixel stripes took it 33 s.)
pub fn read_image_until(
    bytes: &[u8],
    deadline: Option<std::time::Instant>,
) -> Result<Vec<u8>, CertError> {
    let bad = |m: &str| CertError::field("qr_image", m);
    let in_time = || {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            Err(bad(
                "no QR code was found within the time an image may take",
            ))
        } else {
            Ok(())
        }
    };
    in_time()?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| bad("unreadable image"))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits.clone());
    let (w, h) = reader
        .into_dimensions()
        .map_err(|_| bad("not a PNG or JPEG image"))?;
    if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(bad("image is larger than 16 megapixels"));
    }
    let (grey, w, h) = match png_grey(bytes, MAX_SEARCH_PIXELS as usize, &in_time)? {
        Some(scaled) => scaled,
        None => {
            let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
                .with_guessed_format()
                .map_err(|_| bad("unreadable image"))?;
            reader.limits(limits);
            let img = reader
                .decode()
                .map_err(|_| bad("not a PNG or JPEG image"))?
                .into_luma8();
            in_time()?;
            let (w, h) = (img.width() as usize, img.height() as usize);
            scale_down(img.as_raw(), w, h, MAX_SEARCH_PIXELS as usize)
        }
    };
    in_time()?;
    let mut quirc = quircs::Quirc::default();
    let mut last_error = "no QR code found in the image";
    for code in quirc.identify(w, h, &grey) {
        in_time()?;
        match code.ok().map(|c| c.decode()) {
            Some(Ok(data)) => return Ok(data.payload),
            _ => last_error = "a QR code was found but could not be read",
        }
    }
    Err(bad(last_error))
}

/// A PNG (not interlaced) larger than `max` pixels decoded a row at a time
/// straight into the grey image [`scale_down`] would make of it: `None`
/// for anything else (an image that needs no scaling decodes faster whole).
///
/// Decoding a 16 MP image whole and then scaling it held 16–64 MB (grey to
/// RGBA) and a grey copy, and streamed all of it through the caches once
/// more; row by row, what is held is one row, one row of block sums and
/// the (at most [`MAX_SEARCH_PIXELS`]) result, and the deadline is checked
/// as rows go. Grey is the luma `image`'s `into_luma8` computes (ITU-R
/// BT.709 weights, alpha dropped; it rounds in floating point, this in
/// integers: the same to within one level), so both paths see the same
/// image.
fn png_grey(
    bytes: &[u8],
    max: usize,
    in_time: &dyn Fn() -> Result<(), CertError>,
) -> Result<Option<(Vec<u8>, usize, usize)>, CertError> {
    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !bytes.starts_with(PNG_SIGNATURE) {
        return Ok(None);
    }
    let bad = || CertError::field("qr_image", "not a PNG or JPEG image");
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        png::Limits {
            bytes: MAX_DECODE_ALLOC as usize,
        },
    );
    // Palettes and grey under 8 bits become 8-bit samples; 16-bit samples
    // keep their high byte.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|_| bad())?;
    let info = reader.info();
    if info.interlaced {
        return Ok(None);
    }
    let (w, h) = (info.width as usize, info.height as usize);
    let (color, depth) = reader.output_color_type();
    if depth != png::BitDepth::Eight {
        return Ok(None);
    }
    let channels = color.samples();
    let rgb = matches!(color, png::ColorType::Rgb | png::ColorType::Rgba);
    let mut f = 1;
    while (w / f) * (h / f) > max {
        f += 1;
    }
    if f == 1 {
        // Nothing to scale: a whole decode is as small, and faster.
        return Ok(None);
    }
    let (ow, oh) = (w / f, h / f);
    let area = (f * f) as u32;
    let mut sums = vec![0u32; ow];
    let mut out = Vec::with_capacity(ow * oh);
    for y in 0..oh * f {
        if y % 256 == 255 {
            in_time()?;
        }
        let row = reader.next_row().map_err(|_| bad())?.ok_or_else(bad)?;
        let blocks = row.data().chunks_exact(f * channels).take(ow);
        if rgb {
            for (sum, block) in sums.iter_mut().zip(blocks) {
                for px in block.chunks_exact(channels) {
                    // BT.709 luma, rounded.
                    *sum += (2126 * u32::from(px[0])
                        + 7152 * u32::from(px[1])
                        + 722 * u32::from(px[2])
                        + 5000)
                        / 10000;
                }
            }
        } else if channels == 1 {
            for (sum, block) in sums.iter_mut().zip(blocks) {
                *sum += block.iter().map(|&p| u32::from(p)).sum::<u32>();
            }
        } else {
            for (sum, block) in sums.iter_mut().zip(blocks) {
                *sum += block
                    .iter()
                    .step_by(channels)
                    .map(|&p| u32::from(p))
                    .sum::<u32>();
            }
        }
        if y % f == f - 1 {
            out.extend(sums.iter().map(|&s| (s / area) as u8));
            sums.iter_mut().for_each(|s| *s = 0);
        }
    }
    Ok(Some((out, ow, oh)))
}

/// `grey` (w × h, one byte a pixel) scaled down by the least whole factor
/// that brings it to at most `max` pixels; each output pixel is the mean
/// of its block, so modules stay sharp-edged. Unchanged when small enough.
fn scale_down(grey: &[u8], w: usize, h: usize, max: usize) -> (Vec<u8>, usize, usize) {
    let mut f = 1;
    while (w / f) * (h / f) > max {
        f += 1;
    }
    if f == 1 {
        return (grey.to_vec(), w, h);
    }
    let (ow, oh) = (w / f, h / f);
    let mut sums = vec![0u32; ow];
    let mut out = Vec::with_capacity(ow * oh);
    let area = (f * f) as u32;
    for oy in 0..oh {
        sums.iter_mut().for_each(|s| *s = 0);
        for row in grey.chunks_exact(w).skip(oy * f).take(f) {
            for (sum, block) in sums.iter_mut().zip(row.chunks_exact(f)) {
                *sum += block.iter().map(|&p| u32::from(p)).sum::<u32>();
            }
        }
        out.extend(sums.iter().map(|&s| (s / area) as u8));
    }
    (out, ow, oh)
}

/// Decodes any QR content we know: our `DIVOC1:` text or DIVOC's legacy
/// zip.
pub fn decode_content(content: &[u8]) -> Result<Value, CertError> {
    if content.starts_with(b"PK\x03\x04") {
        return decode_legacy_zip(content);
    }
    let text = std::str::from_utf8(content).map_err(|_| bad_input("unknown QR content"))?;
    decode(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `text`'s QR code drawn `px` pixels a module at the centre of a
    /// `w` × `h` grey canvas, as a PNG.
    fn qr_photo(text: &str, px: u32, w: u32, h: u32) -> Vec<u8> {
        let m = divoc_qr::encode(text.as_bytes()).unwrap();
        let n = m.width() as u32;
        let (x0, y0) = ((w - (n + 8) * px) / 2, (h - (n + 8) * px) / 2);
        let img = image::GrayImage::from_fn(w, h, |x, y| {
            let inside = |v: u32, o: u32| v >= o + 4 * px && v < o + (n + 4) * px;
            let dark = inside(x, x0)
                && inside(y, y0)
                && m.is_dark(((y - y0) / px - 4) as usize, ((x - x0) / px - 4) as usize);
            image::Luma([if dark { 20 } else { 230 }])
        });
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png
    }

    /// The grey image the generic path (`image` decodes it whole) makes.
    fn grey_by_image(png: &[u8]) -> (Vec<u8>, usize, usize) {
        let img = image::load_from_memory(png).unwrap().into_luma8();
        let (w, h) = (img.width() as usize, img.height() as usize);
        scale_down(img.as_raw(), w, h, 5_000)
    }

    fn encode_png(
        w: u32,
        h: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        palette: Option<Vec<u8>>,
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut e = png::Encoder::new(&mut out, w, h);
            e.set_color(color);
            e.set_depth(depth);
            if let Some(p) = palette {
                e.set_palette(p);
            }
            e.write_header().unwrap().write_image_data(data).unwrap();
        }
        out
    }

    #[test]
    fn png_rows_give_the_grey_image_a_whole_decode_gives() {
        use png::{BitDepth, ColorType};
        let (w, h) = (203u32, 151u32); // not a multiple of the factor (2)
        let px = |x: u32, y: u32, k: u32| ((x * 7 + y * 13 + k * 101) % 256) as u8;
        let n = (w * h) as usize;
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        let grey: Vec<u8> = (0..n as u32).map(|i| px(i % w, i / w, 0)).collect();
        cases.push((
            "grey 8",
            encode_png(w, h, ColorType::Grayscale, BitDepth::Eight, None, &grey),
        ));
        let rgb: Vec<u8> = (0..n as u32 * 3)
            .map(|i| px(i / 3 % w, i / 3 / w, i % 3))
            .collect();
        cases.push((
            "rgb 8",
            encode_png(w, h, ColorType::Rgb, BitDepth::Eight, None, &rgb),
        ));
        let rgba: Vec<u8> = (0..n as u32 * 4)
            .map(|i| px(i / 4 % w, i / 4 / w, i % 4))
            .collect();
        cases.push((
            "rgba 8",
            encode_png(w, h, ColorType::Rgba, BitDepth::Eight, None, &rgba),
        ));
        let ga: Vec<u8> = (0..n as u32 * 2)
            .map(|i| px(i / 2 % w, i / 2 / w, i % 2))
            .collect();
        cases.push((
            "grey+alpha 8",
            encode_png(w, h, ColorType::GrayscaleAlpha, BitDepth::Eight, None, &ga),
        ));
        // One bit a pixel, rows padded to whole bytes.
        let stride = (w as usize).div_ceil(8);
        let bits: Vec<u8> = (0..stride * h as usize)
            .map(|i| (i * 37 % 251) as u8)
            .collect();
        cases.push((
            "grey 1",
            encode_png(w, h, ColorType::Grayscale, BitDepth::One, None, &bits),
        ));
        let palette: Vec<u8> = (0..16 * 3).map(|i| (i * 17 % 256) as u8).collect();
        let stride4 = (w as usize).div_ceil(2);
        let idx: Vec<u8> = (0..stride4 * h as usize)
            .map(|i| (i * 29 % 256) as u8)
            .collect();
        cases.push((
            "palette 4",
            encode_png(
                w,
                h,
                ColorType::Indexed,
                BitDepth::Four,
                Some(palette),
                &idx,
            ),
        ));
        for (name, png) in &cases {
            let (grey, gw, gh) = png_grey(png, 5_000, &|| Ok(())).unwrap().expect(name);
            let (want, ww, wh) = grey_by_image(png);
            assert_eq!((gw, gh), (ww, wh), "{name}");
            if name.starts_with("grey") {
                assert_eq!(grey, want, "{name}");
            } else {
                // Colour: rounded in integers here, in floats there.
                let off = grey.iter().zip(&want).filter(|(a, b)| a != b).count();
                assert!(
                    grey.iter().zip(&want).all(|(a, b)| a.abs_diff(*b) <= 1),
                    "{name}"
                );
                assert!(
                    off * 100 < grey.len(),
                    "{name}: {off} of {} differ",
                    grey.len()
                );
            }
        }
        // 16-bit samples: the high byte here, `image` rounds; within one.
        let g16: Vec<u8> = (0..n as u32 * 2)
            .map(|i| px(i / 2 % w, i / 2 / w, i % 2))
            .collect();
        let png = encode_png(w, h, ColorType::Grayscale, BitDepth::Sixteen, None, &g16);
        let (grey, ..) = png_grey(&png, 5_000, &|| Ok(())).unwrap().unwrap();
        let (want, ..) = grey_by_image(&png);
        assert!(grey.iter().zip(&want).all(|(a, b)| a.abs_diff(*b) <= 1));
        // Not a PNG: the generic path's.
        assert!(png_grey(b"\xff\xd8\xff", 5_000, &|| Ok(()))
            .unwrap()
            .is_none());
        // A truncated PNG is an error naming the field.
        let cut = &cases[0].1[..cases[0].1.len() / 2];
        match png_grey(cut, 5_000, &|| Ok(())) {
            Err(CertError::Validation(errors)) => assert_eq!(errors[0].field, "qr_image"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_large_photo_is_scaled_down_and_still_read() {
        let text = "DIVOC1:".to_owned() + &"6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3".repeat(20);
        // 16 MP with the code at 9 pixels a module: searched at 4 MP.
        let png = qr_photo(&text, 9, 4000, 4000);
        assert_eq!(read_image(&png).unwrap(), text.as_bytes());
        // Small images are searched as they are.
        let png = qr_photo("DIVOC1:ABC", 3, 200, 150);
        assert_eq!(read_image(&png).unwrap(), b"DIVOC1:ABC");
    }

    #[test]
    fn scaling_down_averages_whole_blocks() {
        let grey: Vec<u8> = vec![0, 255, 10, 10, 0, 255, 10, 10, 7, 7, 7, 7];
        let (out, w, h) = scale_down(&grey, 4, 3, 3);
        // Factor 2: 2 × 1 blocks of 2 × 2; the odd row is dropped.
        assert_eq!((w, h), (2, 1));
        assert_eq!(out, vec![127, 10]);
        assert_eq!(scale_down(&grey, 4, 3, 12), (grey.clone(), 4, 3));
    }

    #[test]
    fn a_search_past_its_deadline_stops() {
        // A deadline already past: refused at the first step.
        let png = qr_photo("DIVOC1:ABC", 3, 200, 150);
        let e = read_image_until(&png, Some(std::time::Instant::now()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("within the time"), "{e}");
    }

    #[test]
    fn base45_rfc9285_examples() {
        // RFC 9285 §4.3 and §4.4.
        assert_eq!(base45_encode(b"AB"), "BB8");
        assert_eq!(base45_encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(base45_encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(base45_decode("QED8WEX0").unwrap(), b"ietf!");
        assert_eq!(base45_decode("GGW"), None); // 65536 + …: above 0xFFFF
        assert_eq!(base45_decode("A"), None);
        assert_eq!(base45_decode("ab"), None); // lower case is not base45
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base45_decode(&base45_encode(&all)).unwrap(), all);
    }

    #[test]
    fn qr_text_round_trips_and_is_alphanumeric() {
        let v = serde_json::json!({"b": [1, 2, 3], "a": "x"});
        let text = encode(&v).unwrap();
        assert!(text.starts_with("DIVOC1:"));
        assert!(text.bytes().all(|b| B45.contains(&b)));
        assert_eq!(decode(&format!(" {text}\n")).unwrap(), v);
        assert!(decode("HC1:ABC").is_err());
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    #[test]
    fn the_reused_inflater_decodes_each_text_on_its_own() {
        // Different sizes in turn on one thread: nothing of the previous
        // stream (window, buffered output) leaks into the next.
        let big = serde_json::json!({"pad": "x".repeat(200_000), "n": 7});
        let small = serde_json::json!({"a": 1});
        for v in [&big, &small, &big, &small] {
            assert_eq!(&decode(&encode(v).unwrap()).unwrap(), v);
        }
    }

    #[test]
    fn corrupt_truncated_and_oversized_streams_are_refused() {
        let text = |bytes: &[u8]| format!("{PREFIX}{}", base45_encode(bytes));
        let whole = zlib(br#"{"a":"0123456789012345678901234567890123456789"}"#);
        // Cut short, before and inside the checksum.
        for cut in [whole.len() / 2, whole.len() - 2] {
            let e = decode(&text(&whole[..cut])).unwrap_err();
            assert!(e.to_string().contains("corrupt"), "{e}");
        }
        let e = decode(&text(b"not zlib at all")).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
        // A small stream that inflates past 1 MiB.
        let bomb = zlib(&vec![b' '; (MAX_INFLATED as usize) + 10]);
        assert!(bomb.len() < 4096);
        let e = decode(&text(&bomb)).unwrap_err();
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
        // Exactly at the limit is still JSON-checked, not refused for size.
        let e = decode(&text(&zlib(&vec![b' '; MAX_INFLATED as usize]))).unwrap_err();
        assert!(e.to_string().contains("not a JSON credential"), "{e}");
        // And the thread's inflater still works afterwards.
        let v = serde_json::json!({"ok": true});
        assert_eq!(decode(&encode(&v).unwrap()).unwrap(), v);
    }

    #[test]
    fn qr_images_are_read_back() {
        let v = serde_json::json!({"credentialSubject": {"name": "Ana"}, "n": 1});
        let text = encode(&v).unwrap();
        let png = render_png(text.as_bytes(), 3).unwrap();
        assert_eq!(read_image(&png).unwrap(), text.as_bytes());
        assert_eq!(decode_content(&read_image(&png).unwrap()).unwrap(), v);
        // DIVOC's legacy byte-mode zip QR.
        let zip = legacy_zip(&v).unwrap();
        let png = render_png(&zip, 3).unwrap();
        assert_eq!(decode_content(&read_image(&png).unwrap()).unwrap(), v);
        // Not an image; an image without a QR code.
        let e = read_image(b"hello").unwrap_err();
        assert!(matches!(e, CertError::Validation(ref f) if f[0].field == "qr_image"));
        let blank = image::GrayImage::from_pixel(64, 64, image::Luma([255u8]));
        let mut out = std::io::Cursor::new(Vec::new());
        blank.write_to(&mut out, image::ImageFormat::Png).unwrap();
        assert!(read_image(&out.into_inner()).is_err());
    }

    #[test]
    fn legacy_zip_round_trips() {
        let v = serde_json::json!({"credentialSubject": {"name": "x"}});
        let zip = legacy_zip(&v).unwrap();
        assert_eq!(&zip[..4], b"PK\x03\x04");
        assert_eq!(decode_legacy_zip(&zip).unwrap(), v);
    }
}
