//! Synthetic issue requests, for benches and for training the stored
//! credentials' compression dictionary: people with different names (in
//! several scripts), birth dates, identity documents, addresses, vaccines,
//! facilities and doses, so that what is measured or learned is not one
//! person repeated.
//!
//! Deterministic: request `i` of seed `s` is always the same JSON, so a
//! bench can be re-run and a dictionary re-trained from the same samples.

use serde_json::{json, Value};

const GIVEN: &[&str] = &[
    "Bhaya",
    "Sooraj",
    "Aarav",
    "Priya",
    "Lakshmi",
    "Mohammed",
    "Fatima",
    "Arjun",
    "Ananya",
    "Ravi",
    "Kavya",
    "Joseph",
    "Mary",
    "Wei",
    "Olumide",
    "Grace",
    "Tenzin",
    "Simran",
    "राजेश",
    "सुनीता",
    "அருண்",
    "মৌমিতা",
    "ಕಿರಣ್",
    "José",
    "Zoë",
];
const FAMILY: &[&str] = &[
    "Mitra",
    "Singh",
    "Sharma",
    "Iyer",
    "Khan",
    "Reddy",
    "Das",
    "Patel",
    "Nair",
    "Fernandes",
    "Gupta",
    "Banerjee",
    "Chen",
    "Adeyemi",
    "Campbell",
    "Dorje",
    "Kaur",
    "शर्मा",
    "குமார்",
    "দত্ত",
    "ಗೌಡ",
    "García-Núñez",
    "O'Brien",
];
const PLACES: &[(&str, &str, &str)] = &[
    ("Bengaluru South", "Karnataka", "5600"),
    ("Pune", "Maharashtra", "4110"),
    ("Chennai", "Tamil Nadu", "6000"),
    ("Kolkata", "West Bengal", "7000"),
    ("Lucknow", "Uttar Pradesh", "2260"),
    ("Jaipur", "Rajasthan", "3020"),
    ("Guwahati", "Assam", "7810"),
    ("Leh", "Ladakh", "1941"),
];
const VACCINES: &[(&str, &str, &str, u32)] = &[
    ("covid-19", "CoVax", "COVPharma", 2),
    ("covid-19", "Covishield", "Serum Institute of India", 2),
    ("covid-19", "Covaxin", "Bharat Biotech", 2),
    ("polio", "bOPV", "Biological E", 3),
    ("measles", "MR", "Serum Institute of India", 2),
];
const IDENTITIES: &[(&str, usize)] = &[
    ("in.gov.uidai.aadhaar", 12),
    ("in.gov.passport", 8),
    ("in.gov.eci.voterid", 10),
    ("in.gov.drivinglicence", 15),
];

/// A small, fast mixer (SplitMix64): enough to vary fields, not for secrets.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        // n is a small table length; the modulo bias is irrelevant here.
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + (self.next() % 10) as u8))
            .collect()
    }
}

/// The `i`th synthetic issue request of `seed`, with pre-enrolment code
/// `{code_prefix}{i}`. Vaccination dates lie in 2021–2024, so they validate
/// against any later clock; protection lasts until 2031 or later.
pub fn issue_request(seed: u64, i: u64, code_prefix: &str) -> Value {
    let mut d = Draw(mix(seed ^ mix(i)));
    let name = format!("{} {}", d.pick(GIVEN), d.pick(FAMILY));
    let (district, state, pin) = *d.pick(PLACES);
    let (program, vaccine, manufacturer, total) = *d.pick(VACCINES);
    let (id_type, id_len) = *d.pick(IDENTITIES);
    let dose = 1 + d.below(total as usize + 1) as u32;
    let year = 1940 + d.below(80);
    let month = 1 + d.below(12);
    let day = 1 + d.below(28);
    let v_year = 2021 + d.below(4);
    let v_month = 1 + d.below(12);
    let v_day = 1 + d.below(28);
    let hour = d.below(24);
    let minute = d.below(60);
    let second = d.below(60);
    let facility = 1 + d.below(5000);
    let gender = *d.pick(&["Male", "Female", "Other"]);
    let phone = format!("tel:9{}", d.digits(9));
    let mut recipient = json!({
        "name": name,
        "dob": format!("{year:04}-{month:02}-{day:02}"),
        "gender": gender,
        "nationality": "IN",
        "identity": { "type": id_type, "value": d.digits(id_len) },
        "contacts": [phone],
        "address": {
            "line1": format!("no. {}, {} cross", 1 + d.below(400), 1 + d.below(40)),
            "district": district,
            "state": state,
            "pincode": format!("{pin}{}", d.digits(2)),
        }
    });
    if d.below(3) == 0 {
        recipient["address"]["line2"] = Value::from(format!("ward {}", 1 + d.below(200)));
    }
    let date = format!("{v_year:04}-{v_month:02}-{v_day:02}");
    // Lots are few next to doses (a lot is tens of thousands of doses):
    // 200 per vaccine, so the live counters by batch stay realistic.
    let lot: String = vaccine.chars().take(2).collect();
    let batch = format!("{}{:04}", lot.to_uppercase(), d.below(200) * 37 + 1000);
    json!({
        "recipient": recipient,
        "vaccination": {
            "program": program,
            "vaccine": vaccine,
            "manufacturer": manufacturer,
            "batch": batch,
            "date": format!("{date}T{hour:02}:{minute:02}:{second:02}Z"),
            "dose": dose,
            "total_doses": total,
            "effective_start": date,
            // Far enough ahead that a verifier finds them in force.
            "effective_until": format!("{:04}-{v_month:02}-{v_day:02}", v_year + 10 + d.below(10)),
        },
        "facility": {
            "id": format!("FAC-{facility:05}"),
            "name": format!("{} {}", ["PHC", "CHC", "District Hospital", "Urban Health Centre"][d.below(4)], district),
            "address": { "district": district, "state": state, "pincode": format!("{pin}{}", d.digits(2)) }
        },
        "vaccinator": { "name": format!("{} {}", d.pick(GIVEN), d.pick(FAMILY)) },
        "pre_enrollment_code": format!("{code_prefix}{i}"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::IssueRequest;

    #[test]
    fn requests_are_valid_varied_and_repeatable() {
        let zone = divoc_time::Zone::utc();
        let now = 1_800_000_000_000;
        let mut names = std::collections::BTreeSet::new();
        for i in 0..500 {
            let v = issue_request(7, i, "SYN-");
            assert_eq!(v, issue_request(7, i, "SYN-"));
            names.insert(v["recipient"]["name"].as_str().unwrap().to_owned());
            let req = IssueRequest::from_json(v).unwrap();
            req.validate_at(now, &zone).unwrap();
        }
        assert!(names.len() > 200, "{} names", names.len());
        assert_ne!(issue_request(7, 1, "S"), issue_request(8, 1, "S"));
    }
}
