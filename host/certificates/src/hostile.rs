//! Images built to cost a QR search the most, each small enough to pass
//! the 1 MiB body limit: what `divoc bench abuse` floods the public
//! verification route with, what its worst-case figure is measured on, and
//! what the admission tests send.
//!
//! A QR search does work in proportion to the pixels it looks at and to
//! the shapes in them that could be finder patterns (the 1:1:3:1:1 squares
//! in three corners of a code, ISO/IEC 18004 §6.3.3). So each image is as
//! large as the reader accepts and is full of such shapes or of edges.

/// One hostile image.
#[derive(Debug, Clone)]
pub struct HostileImage {
    /// What it is, e.g. `stripes-16mp`.
    pub name: &'static str,
    /// The PNG file.
    pub png: Vec<u8>,
}

/// Every hostile image, worst-known first.
pub fn images() -> Vec<HostileImage> {
    let mut out = Vec::new();
    let mut push = |name, png: Result<Vec<u8>, png::EncodingError>| {
        if let Ok(png) = png {
            out.push(HostileImage { name, png });
        }
    };
    // Random dots, 1 bit a pixel: edges everywhere, every region its own.
    // 2,000 × 2,000 is searched as it is; 2,800 × 2,800 (just under 1 MiB)
    // is first scaled down to 1,400 × 1,400.
    push("noise-4mp", noise(2000, 2000));
    push("noise-8mp", noise(2800, 2800));
    // Finder-ratio stripes a pixel wide: every scan line is all candidates.
    push(
        "stripes-16mp",
        grey(4000, 4000, |x, _| [1, 0, 1, 1, 1, 0, 1, 0][x % 8] == 1),
    );
    // A field of 7-pixel finder patterns: as many as fit.
    push(
        "finders-16mp",
        grey(4000, 4000, |x, y| {
            let (i, j) = (x % 9, y % 9);
            let ring = i < 7 && j < 7 && (i == 0 || i == 6 || j == 0 || j == 6);
            let core = (2..=4).contains(&i) && (2..=4).contains(&j);
            ring || core
        }),
    );
    // A 4 MP field of the same (searched without scaling).
    push(
        "finders-4mp",
        grey(2000, 2000, |x, y| {
            let (i, j) = (x % 9, y % 9);
            let ring = i < 7 && j < 7 && (i == 0 || i == 6 || j == 0 || j == 6);
            let core = (2..=4).contains(&i) && (2..=4).contains(&j);
            ring || core
        }),
    );
    // A one-pixel checkerboard.
    push("checker-16mp", grey(4000, 4000, |x, y| (x + y) % 2 == 0));
    out
}

/// A 1-bit PNG of `w` × `h` random dots (xorshift, fixed seed).
fn noise(w: u32, h: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let row_bytes = w.div_ceil(8) as usize;
    let mut data = vec![0u8; row_bytes * h as usize];
    for byte in data.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    encode(w, h, png::BitDepth::One, &data)
}

/// An 8-bit grey PNG, black where `dark`.
fn grey(
    w: u32,
    h: u32,
    dark: impl Fn(usize, usize) -> bool,
) -> Result<Vec<u8>, png::EncodingError> {
    let mut data = Vec::with_capacity(w as usize * h as usize);
    for y in 0..h as usize {
        data.extend((0..w as usize).map(|x| if dark(x, y) { 0u8 } else { 255 }));
    }
    encode(w, h, png::BitDepth::Eight, &data)
}

fn encode(
    w: u32,
    h: u32,
    depth: png::BitDepth,
    data: &[u8],
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(depth);
        encoder.set_compression(png::Compression::Balanced);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(data)?;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_hostile_image_fits_the_body_limit_and_holds_no_code() {
        let images = images();
        assert_eq!(images.len(), 6);
        for image in images {
            assert!(
                image.png.len() < 1 << 20,
                "{}: {} bytes",
                image.name,
                image.png.len()
            );
            let e = crate::qr::read_image(&image.png).unwrap_err().to_string();
            assert!(e.contains("QR code"), "{}: {e}", image.name);
        }
    }
}
