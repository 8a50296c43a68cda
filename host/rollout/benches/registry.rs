//! The registry's speed targets (issue "Rollout I"), measured on the domain
//! service and its SQLite storage (no HTTP):
//!
//! - facility CSV upload, DIVOC's columns: rows/s (target ≥ 50,000);
//! - pre-enrolment CSV upload of 1,000,000 rows: seconds (target ≤ 30) and
//!   the growth of the process's peak RSS (target ≤ 100 MB);
//! - `list` of facilities by district with 100,000 stored: p50/p99 (target
//!   p99 ≤ 5 ms);
//! - how long a small write (as a certificate's) waits while an upload
//!   runs: p50/p99/max (no target; the upload yields to it).
//!
//! `cargo bench -p divoc-rollout --bench registry [-- --enrolments N]
//! [--postgres URL]` (an empty PostgreSQL database instead of a SQLite
//! file); figures in docs/PERFORMANCE.md.

use std::io::Read;
use std::time::Instant;

use divoc_rollout::{Facility, ListFilter, RolloutService, UploadKind, UploadOptions};
use divoc_storage::{Database, DbOptions};

/// A reader that makes a CSV on the fly, so the input costs no memory.
struct Generated<F: FnMut(usize) -> String> {
    row: usize,
    rows: usize,
    header: Option<String>,
    make: F,
    buf: Vec<u8>,
    at: usize,
}

impl<F: FnMut(usize) -> String> Read for Generated<F> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
            if let Some(h) = self.header.take() {
                self.buf.extend_from_slice(h.as_bytes());
            }
            while self.buf.len() < 64 * 1024 && self.row < self.rows {
                self.buf.extend_from_slice((self.make)(self.row).as_bytes());
                self.row += 1;
            }
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let enrolments: usize = args
        .iter()
        .position(|a| a == "--enrolments")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // `--postgres URL`: the same on an (empty) PostgreSQL database.
    let postgres = args
        .iter()
        .position(|a| a == "--postgres")
        .and_then(|i| args.get(i + 1));
    let dir = tempfile::tempdir()?;
    let db = match postgres {
        Some(url) => Database::open_postgres(url, DbOptions::default())?,
        None => Database::open(&dir.path().join("bench.db"), DbOptions::default())?,
    };
    let svc = RolloutService::new(db.clone(), divoc_time::SystemClock::shared());
    let rss_idle = peak_rss_kib();
    let india = UploadOptions {
        country: Some("IN".into()),
        programme: Some("C19".into()),
    };

    // 1. 100,000 facilities over 700 districts.
    let facilities = 100_000;
    let header = "facilityCode,facilityName,contact,email,operatingHourStart,operatingHourEnd,category,type,status,addressLine1,addressLine2,district,state,pincode,geoLocationLat,geoLocationLon,websiteURL,adminName,adminMobile\n";
    let input = Generated {
        row: 0,
        rows: facilities,
        header: Some(header.to_owned()),
        make: |i| {
            format!(
                "F{i:07},Primary Health Centre {i},98{i:08},phc{i}@example.org,9,17,GOVT,Fixed location,Active,Road {i},\"Ward {w}, Block {b}\",District {d},State {s},{pin},12.{i},77.{i},,Dr. Admin {i},97{i:08}\n",
                w = i % 40,
                b = i % 7,
                d = i % 700,
                s = i % 30,
                pin = 560_000 + i % 1000
            )
        },
        buf: Vec::new(),
        at: 0,
    };
    let t = Instant::now();
    let r = svc.upload(UploadKind::Facilities, input, &india, "bench")?;
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.created, facilities as i64, "{r:?}");
    println!(
        "facility upload: {facilities} rows in {secs:.2} s = {:.0} rows/s (target >= 50,000); peak RSS {} MB idle -> {} MB",
        facilities as f64 / secs,
        rss_idle / 1024,
        peak_rss_kib() / 1024
    );

    // 2. Lists by district, 100,000 stored (~143 per district; a page of 100).
    let mut times = Vec::new();
    for q in 0..2000 {
        let filter = ListFilter {
            district: Some(format!("District {}", (q * 7) % 700)),
            ..ListFilter::default()
        };
        let t = Instant::now();
        let page = svc.list::<Facility>(&filter, 100)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(page.items.len(), 100);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "list ?district= (page of 100, 100,000 stored): p50 {:.2} ms, p99 {:.2} ms (target p99 <= 5 ms)",
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );

    // 3. Pre-enrolments.
    svc.create(
        serde_json::from_value::<divoc_rollout::Vaccine>(serde_json::json!({
            "code": "COVAX", "name": "CoVax", "manufacturer": "M", "mode": "injection", "doses": 2,
            "intervals": [{"minDays": 28}]
        }))?,
        "bench",
    )?;
    svc.create(
        serde_json::from_value::<divoc_rollout::Programme>(serde_json::json!({
            "code": "C19", "name": "COVID-19", "startDate": "2021-01-16", "vaccines": ["COVAX"]
        }))?,
        "bench",
    )?;
    let rss_before = peak_rss_kib();
    let input = Generated {
        row: 0,
        rows: enrolments,
        header: Some("phone,identity,nationality,dob,gender,name,email,addressLine1,addressLine2,district,state,pincode\n".to_owned()),
        make: |i| {
            format!(
                "9{i:09},did:in.gov.uidai.aadhaar:{i:012},Indian,19{y:02}-0{m}-1{d},{g},Person {i},,House {i},,District {dist},State {s},{pin}\n",
                y = 30 + i % 70,
                m = 1 + i % 9,
                d = i % 9,
                g = ["Male", "Female", "Other"][i % 3],
                dist = i % 700,
                s = i % 30,
                pin = 560_000 + i % 1000
            )
        },
        buf: Vec::new(),
        at: 0,
    };
    let t = Instant::now();
    let r = svc.upload(UploadKind::Enrolments, input, &india, "bench")?;
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.created, enrolments as i64, "{r:?}");
    let rss_after = peak_rss_kib();
    println!(
        "pre-enrolment upload: {enrolments} rows in {secs:.1} s = {:.0} rows/s (target 1,000,000 in <= 30 s); peak RSS {} MB before -> {} MB (+{} MB over idle {} MB; target <= 100 MB extra)",
        enrolments as f64 / secs,
        rss_before / 1024,
        rss_after / 1024,
        rss_after.saturating_sub(rss_idle) / 1024,
        rss_idle / 1024
    );
    if postgres.is_none() {
        let size: u64 = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        println!("database: {} MB", size / (1024 * 1024));
    }

    // 4. Small writes while another 100,000 facilities are uploaded.
    let uploading = {
        let svc = svc.clone();
        std::thread::spawn(move || {
            let input = Generated {
                row: 0,
                rows: 100_000,
                header: Some(header.to_owned()),
                make: |i| {
                    format!(
                        "G{i:07},Sub Centre {i},98{i:08},sc{i}@example.org,9,17,GOVT,Fixed location,Active,Road {i},,District {d},State {s},{pin},,,,Admin {i},97{i:08}\n",
                        d = i % 700,
                        s = i % 30,
                        pin = 560_000 + i % 1000
                    )
                },
                buf: Vec::new(),
                at: 0,
            };
            svc.upload(UploadKind::Facilities, input, &india, "bench")
        })
    };
    let mut waits = Vec::new();
    while !uploading.is_finished() {
        let t = Instant::now();
        db.write(|tx| {
            divoc_storage::events::append_event(tx, "bench.tick", "t", &serde_json::json!({}))
        })
        .wait()?;
        waits.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let r = uploading.join().map_err(|_| "upload thread panicked")??;
    assert_eq!(r.created, 100_000, "{r:?}");
    waits.sort_by(f64::total_cmp);
    println!(
        "a small write during a 100,000-row upload ({} writes): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        waits.len(),
        waits[waits.len() / 2],
        waits[waits.len() * 99 / 100],
        waits[waits.len() - 1]
    );
    Ok(())
}
