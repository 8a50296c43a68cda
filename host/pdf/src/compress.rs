//! Deflate (zlib format, the PDF `FlateDecode` filter) with one compressor
//! per thread, reset between streams: setting a compressor up allocates and
//! clears some hundreds of KB, which would otherwise cost more than
//! compressing a certificate's streams.

use std::cell::RefCell;

use flate2::{Compress, Compression, FlushCompress, Status};

thread_local! {
    static FAST: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), true));
}

/// Compresses `data` quickly (level 1): for streams made per request.
pub(crate) fn fast(data: &[u8]) -> Vec<u8> {
    FAST.with(|c| run(&mut c.borrow_mut(), data))
}

/// Compresses `data` as small as deflate goes (level 9): for streams made
/// once at load.
pub(crate) fn best(data: &[u8]) -> Vec<u8> {
    run(&mut Compress::new(Compression::best(), true), data)
}

fn run(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    c.reset();
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let before = c.total_in();
        let consumed = usize::try_from(before).unwrap_or(usize::MAX);
        let input = data.get(consumed..).unwrap_or(&[]);
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(1024));
        }
        match c.compress_vec(input, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return out,
            Ok(_) => {}
            // Deflate cannot fail on in-memory input with output space; if
            // it ever did, the caller gets an empty stream, not a panic.
            Err(_) => return Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    #[test]
    fn round_trips_and_reuses_the_compressor() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for _ in 0..2 {
            for z in [super::fast(&data), super::best(&data), super::fast(b"")] {
                let mut back = Vec::new();
                flate2::read::ZlibDecoder::new(&z[..])
                    .read_to_end(&mut back)
                    .unwrap();
                assert!(back == data || back.is_empty());
            }
        }
    }
}
