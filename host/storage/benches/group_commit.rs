//! Group commit throughput: acknowledged one-event writes per second, issued
//! one at a time from a single thread (every write pays its own fsync)
//! versus one write per call from 64 threads (the writer groups them).
//!
//! `certificate_insert` measures what the writer thread spends per issued
//! certificate: 500 full certificate inserts (record, lookups, audit
//! record, event, outbox row; a 2.4 kB credential) queued at once, as a
//! batch issue request does, and waited for.
//!
//! Run: `cargo bench -p divoc-storage --bench group_commit`
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use divoc_storage::certificates::{self, NewCertificate};
use divoc_storage::{events, Database, DbOptions};
use serde_json::{json, Value};

/// Writes per benchmark iteration; a multiple of THREADS.
const WRITES: usize = 256;
const THREADS: usize = 64;

fn write_one(db: &Database, i: usize) {
    db.write(move |tx| events::append_event(tx, "bench", &i.to_string(), &json!({ "i": i })))
        .wait()
        .unwrap();
}

fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("group_commit");
    // fsync-bound: few, long samples are enough and keep the run short.
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(WRITES as u64));

    let seq_db = Database::open(&dir.path().join("seq.db"), DbOptions::default()).unwrap();
    g.bench_function("sequential_1_thread", |b| {
        b.iter(|| {
            for i in 0..WRITES {
                write_one(&seq_db, i);
            }
        })
    });

    let par_db = Database::open(&dir.path().join("par.db"), DbOptions::default()).unwrap();
    g.bench_function("concurrent_64_threads", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let db = &par_db;
                    s.spawn(move || {
                        for i in 0..WRITES / THREADS {
                            write_one(db, t * 1000 + i);
                        }
                    });
                }
            })
        })
    });
    g.finish();

    for (name, db) in [("sequential", &seq_db), ("concurrent_64", &par_db)] {
        let s = db.stats();
        eprintln!(
            "{name}: {} writes in {} commits ({:.1} writes/commit, largest group {})",
            s.writes,
            s.commits,
            s.writes as f64 / s.commits.max(1) as f64,
            s.largest_group
        );
    }
}

/// Certificates per `certificate_insert` iteration (a batch request's worth).
const CERTS: usize = 500;

/// A signed credential of the certificate module's shape and size.
fn credential(id: &str, index: u64) -> Value {
    let list = "http://localhost:8080/v1/status/revocation-0";
    json!({
        "@context": ["https://www.w3.org/ns/credentials/v2", "https://divoc.dev/credentials/vaccination/v1"],
        "id": format!("http://localhost:8080/v1/certificates/{id}"),
        "type": ["VerifiableCredential", "VaccinationCertificate"],
        "issuer": "did:web:localhost%3A8080",
        "validFrom": "2021-03-02T00:00:00Z",
        "validUntil": "2030-03-02T23:59:59Z",
        "credentialSubject": {
            "type": "VaccinationRecipient", "name": "Bhaya Mitra", "birthDate": "1994-11-30",
            "gender": "Male", "nationality": "IN",
            "identity": {"scheme": "in.gov.uidai.aadhaar", "value": "2342343334"},
            "address": {"addressLine1": "no. 23, some lane, some road", "addressLine2": "some nagar",
                        "district": "Bengaluru South", "state": "Karnataka", "postalCode": "560033"},
            "vaccination": {
                "type": "VaccinationEvent", "program": "covid-19", "vaccine": "CoVax",
                "manufacturer": "COVPharma", "batch": "MB3428BX", "date": "2021-03-02T09:21:18Z",
                "dose": 1, "totalDoses": 2, "booster": false,
                "effectiveStart": "2021-03-02", "effectiveUntil": "2030-03-02",
                "facility": {"id": "urn:divoc:facility:FAC-0042", "name": "ABC Medical Center",
                             "address": {"addressLine1": "4th cross", "district": "Bengaluru South",
                                         "state": "Karnataka", "postalCode": "560034"}},
                "vaccinator": {"name": "Sooraj Singh"}
            }
        },
        "credentialStatus": [
            {"id": format!("{list}#{index}"), "type": "BitstringStatusListEntry",
             "statusPurpose": "revocation", "statusListIndex": index.to_string(),
             "statusListCredential": list},
            {"id": format!("http://localhost:8080/v1/status/suspension-0#{index}"),
             "type": "BitstringStatusListEntry", "statusPurpose": "suspension",
             "statusListIndex": index.to_string(),
             "statusListCredential": "http://localhost:8080/v1/status/suspension-0"}
        ],
        "proof": {
            "type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022",
            "created": "2026-11-27T08:00:00Z",
            "verificationMethod": "did:web:localhost%3A8080#z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            "proofPurpose": "assertionMethod",
            "proofValue": "z58DAdFfa9SkqZMVPxAQpic7ndSayn1PzZs6ZjWp1CktyGesjuTSwRdoWhAfGFCF5bppETSTojQCrfFPP2oumHKtz"
        }
    })
}

/// What an issued certificate counts (`divoc_certificates::stats`): eleven
/// dimensions. `spread`: every certificate of a group from another
/// facility, batch and district (the worst case: each a counter of its
/// own); otherwise as batch requests come, a facility's 500 at a time.
fn counts(n: u64, spread: bool) -> Vec<(String, String)> {
    let site = if spread { n } else { n / 500 };
    [
        ("total", "all".to_owned()),
        ("day", format!("2026-12-{:02}", 1 + site % 28)),
        ("programme", "C19".to_owned()),
        ("vaccine", format!("VAX-{}", site % 4)),
        ("dose", (1 + n % 3).to_string()),
        ("batch", format!("LOT-{}", site % 500)),
        ("facility", format!("FAC-{:05}", (site * 7919) % 30_000)),
        ("district", format!("D-{}", site % 700)),
        ("state", format!("S-{}", site % 36)),
        (
            "gender",
            ["Female", "Male", "Other"][(n % 3) as usize].to_owned(),
        ),
        ("age", format!("{}-{}", n % 9 * 10, n % 9 * 10 + 9)),
    ]
    .into_iter()
    .map(|(d, k)| (d.to_owned(), k))
    .collect()
}

/// A certificate as the service would insert it; `n` makes it unique.
fn new_certificate(n: u64) -> NewCertificate {
    // Random-looking ids, as real ones are: inserts land all over the index.
    let id = format!("{:020X}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    NewCertificate {
        credential: credential(&id, n),
        id,
        program: "covid-19".into(),
        recipient_ref: format!("BENCH-{n:010}"),
        dose: 1,
        facility_id: Some("FAC-0042".into()),
        payload_hash: format!("{:064x}", n),
        status_index: n,
        lookup_hashes: vec![format!("{:064x}", n + 1), format!("{:064x}", n + 2)],
        contacts: vec!["tel:9880414888".into(), "mailto:bhaya@example.org".into()],
        channels: Vec::new(),
        actor: "bench".into(),
        issued_at_ms: 1_700_000_000_000,
        counts: Vec::new(),
    }
}

/// `counted`: with the live counters an issuance moves (issue 13's
/// "keeping stats current costs ≤ 5 % of issuance"), as batch requests
/// bring them or spread over every facility (`Some(true)`), or without.
fn certificate_insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("certificate_insert");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(CERTS as u64));
    for (name, counted) in [
        ("batch_of_500", None),
        ("batch_of_500_counted", Some(false)),
        ("batch_of_500_counted_spread", Some(true)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("certs.db"), DbOptions::default()).unwrap();
        insert_batches(&mut g, name, &db, counted);
        let s = db.stats();
        eprintln!(
            "{name}: {} certificates in {} commits ({:.1} per commit)",
            s.writes,
            s.commits,
            s.writes as f64 / s.commits.max(1) as f64
        );
    }
    g.finish();
}

fn insert_batches(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    db: &Database,
    counted: Option<bool>,
) {
    let mut n = 0u64;
    g.bench_function(name, |b| {
        b.iter_batched(
            || {
                let batch: Vec<_> = (n..n + CERTS as u64)
                    .map(|i| NewCertificate {
                        counts: counted.map(|spread| counts(i, spread)).unwrap_or_default(),
                        ..new_certificate(i)
                    })
                    .collect();
                n += CERTS as u64;
                batch
            },
            |batch| {
                let pending: Vec<_> = batch
                    .into_iter()
                    .map(|c| db.write(move |tx| certificates::insert(tx, &c)))
                    .collect();
                for p in pending {
                    p.wait().unwrap();
                }
            },
            criterion::BatchSize::PerIteration,
        )
    });
}

criterion_group!(benches, group_commit, certificate_insert);
criterion_main!(benches);
