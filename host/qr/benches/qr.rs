//! QR symbol cost: encoding (with mask selection) and each served form.
//! `cargo bench -p divoc-qr`; figures in docs/PERFORMANCE.md.

use criterion::{criterion_group, criterion_main, Criterion};

/// A signed two-dose credential's QR text is ~1,350 base45 characters.
fn text() -> String {
    "DIVOC1:6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDEXWK G2EP4J0B"
        .chars()
        .cycle()
        .take(1350)
        .collect()
}

fn qr(c: &mut Criterion) {
    let text = text();
    let mut g = c.benchmark_group("qr");
    g.bench_function("encode", |b| {
        b.iter(|| divoc_qr::encode(text.as_bytes()).map(|q| q.width()))
    });
    g.bench_function("png_4px", |b| {
        b.iter(|| divoc_qr::encode(text.as_bytes()).and_then(|q| q.to_png(4)))
    });
    g.bench_function("svg", |b| {
        b.iter(|| divoc_qr::encode(text.as_bytes()).map(|q| q.to_svg(256)))
    });
    g.bench_function("qrcode_crate_encode", |b| {
        b.iter(|| {
            qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
                .map(|code| code.to_colors().len())
        })
    });
    g.finish();
}

criterion_group!(benches, qr);
criterion_main!(benches);
