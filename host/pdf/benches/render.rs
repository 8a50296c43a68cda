//! PDFs per second for a typical certificate: two doses, a QR of a signed
//! credential's size (~1,350 base45 characters), in English and Hindi.
//!
//! `cargo bench -p divoc-pdf --bench render`. Throughput is printed as
//! elements (PDFs) per second:
//!
//! - `render/*`: one thread, one PDF after another (latency);
//! - `parallel/*`: every core rendering, as a server under load does (one
//!   long-lived thread per core sharing one `PdfRenderer`, each rendering
//!   its share of the iterations). This is the machine's PDFs/s.
//! - `render/two_doses_hi_devanagari_name`: the recipient's name in
//!   Devanagari, whose glyphs are not in the fonts' ready-made subsets, so
//!   the Devanagari font is subset and compressed for that PDF.
//! - `render/two_doses_en_second_qr`: with a second QR (the template's
//!   `[second_qr]`, an EU DCC).
//!
//! See docs/PERFORMANCE.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use divoc_pdf::{CertificateDocument, PdfRenderer};

fn document() -> CertificateDocument {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/two-doses");
    let credentials: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("credentials.json")).unwrap())
            .unwrap();
    let qr = std::fs::read_to_string(dir.join("qr.txt")).unwrap();
    CertificateDocument::from_credentials(&credentials, qr.trim()).unwrap()
}

fn renderer() -> PdfRenderer {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/templates/pdf");
    PdfRenderer::load(&templates).unwrap()
}

fn render(c: &mut Criterion) {
    let renderer = renderer();
    let doc = document();
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    for lang in ["en", "hi"] {
        group.bench_function(format!("two_doses_{lang}"), |b| {
            b.iter(|| renderer.render(&doc, lang).unwrap())
        });
    }
    let mut devanagari = doc.clone();
    devanagari.recipient.name = "भया मित्र".into();
    group.bench_function("two_doses_hi_devanagari_name", |b| {
        b.iter(|| renderer.render(&devanagari, "hi").unwrap())
    });
    // With the template's second QR (an EU DCC, ~570 characters): one more
    // QR code encoded and embedded.
    let dcc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/two-doses-second-qr/second_qr.txt"),
    )
    .unwrap();
    let mut second = doc.clone();
    second.second_qr = Some(renderer.second_qr("en").unwrap().with_text(dcc.trim()));
    group.bench_function("two_doses_en_second_qr", |b| {
        b.iter(|| renderer.render(&second, "en").unwrap())
    });
    group.finish();
}

/// Long-lived render threads (as a server's workers are), each handed
/// its share of an iteration count; `run` returns when all have finished.
struct Pool {
    jobs: Vec<mpsc::Sender<u64>>,
    done: mpsc::Receiver<()>,
}

impl Pool {
    fn new(
        threads: usize,
        renderer: Arc<PdfRenderer>,
        doc: Arc<CertificateDocument>,
        lang: &'static str,
    ) -> Pool {
        let (done_tx, done) = mpsc::channel();
        let jobs = (0..threads)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<u64>();
                let (renderer, doc, done_tx) = (renderer.clone(), doc.clone(), done_tx.clone());
                std::thread::spawn(move || {
                    for n in rx {
                        for _ in 0..n {
                            std::hint::black_box(renderer.render(&doc, lang).unwrap());
                        }
                        done_tx.send(()).unwrap();
                    }
                });
                tx
            })
            .collect();
        Pool { jobs, done }
    }

    fn run(&self, iters: u64) -> Duration {
        let threads = self.jobs.len() as u64;
        let start = Instant::now();
        for (t, job) in self.jobs.iter().enumerate() {
            job.send(iters / threads + u64::from((t as u64) < iters % threads))
                .unwrap();
        }
        for _ in &self.jobs {
            self.done.recv().unwrap();
        }
        start.elapsed().max(Duration::from_nanos(1))
    }
}

fn parallel(c: &mut Criterion) {
    let renderer = Arc::new(renderer());
    let doc = Arc::new(document());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut group = c.benchmark_group("parallel");
    group.throughput(Throughput::Elements(1));
    for lang in ["en", "hi"] {
        let pool = Pool::new(threads, renderer.clone(), doc.clone(), lang);
        group.bench_function(format!("two_doses_{lang}_{threads}_threads"), |b| {
            b.iter_custom(|iters| pool.run(iters))
        });
    }
    group.finish();
}

criterion_group!(benches, render, parallel);
criterion_main!(benches);
