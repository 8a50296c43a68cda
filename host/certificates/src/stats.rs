//! What an issued certificate adds to the live counters
//! (`divoc_storage::stats`): one count per dimension, moved in the
//! issuing transaction. Dimensions: `total`, `day` (the day of issue in the
//! deployment's time zone), `programme`, `vaccine`, `dose`, `batch` (for
//! side-effect rates per batch), `facility`, `district` and `state` (of the
//! facility, else of the recipient), `gender` and `age` (ten-year bands at
//! the vaccination date). Counts are aggregates, never rows about people.

use divoc_time::{Date, Zone};

use crate::request::IssueRequest;

/// `(dimension, key)` pairs for one vaccination certificate.
pub fn issue_counts(req: &IssueRequest, issued_at_ms: i64, zone: &Zone) -> Vec<(String, String)> {
    let mut out = vec![
        ("total".to_owned(), "all".to_owned()),
        (
            "day".to_owned(),
            Date::in_zone(issued_at_ms, zone).to_string(),
        ),
    ];
    let x = &req.vaccination;
    let mut put = |dimension: &str, key: &str| {
        let key = key.trim();
        if !key.is_empty() {
            out.push((dimension.to_owned(), key.to_owned()));
        }
    };
    put("programme", &x.program);
    put("vaccine", &x.vaccine);
    put("dose", &x.dose.to_string());
    put("batch", &x.batch);
    put(
        "facility",
        req.facility.id.as_deref().unwrap_or(&req.facility.name),
    );
    let (fa, ra) = (&req.facility.address, &req.recipient.address);
    put(
        "district",
        if fa.district.trim().is_empty() {
            &ra.district
        } else {
            &fa.district
        },
    );
    put(
        "state",
        if fa.state.trim().is_empty() {
            &ra.state
        } else {
            &fa.state
        },
    );
    put("gender", &req.recipient.gender);
    if let Some(band) = age_band(req) {
        put("age", &band);
    }
    out
}

/// `(dimension, key)` pairs for a credential of another type.
pub fn typed_counts(kind: &str, issued_at_ms: i64, zone: &Zone) -> Vec<(String, String)> {
    vec![
        ("total".to_owned(), "all".to_owned()),
        (
            "day".to_owned(),
            Date::in_zone(issued_at_ms, zone).to_string(),
        ),
        ("programme".to_owned(), kind.to_owned()),
    ]
}

/// `(dimension, key)` pairs for a status change on `day`.
pub fn status_counts(program: &str, at_ms: i64, zone: &Zone) -> Vec<(String, String)> {
    vec![
        ("total".to_owned(), "all".to_owned()),
        ("day".to_owned(), Date::in_zone(at_ms, zone).to_string()),
        ("programme".to_owned(), program.to_owned()),
    ]
}

/// The recipient's ten-year age band at the vaccination (`30-39`, `80+`),
/// from the date of birth, else the age given.
fn age_band(req: &IssueRequest) -> Option<String> {
    let on = divoc_time::parse_instant(&req.vaccination.date, &Zone::utc())
        .map(|ms| Date::in_zone(ms, &Zone::utc()));
    let age = match (
        req.recipient
            .dob
            .as_deref()
            .and_then(divoc_time::parse_date),
        on,
    ) {
        (Some(dob), Some(on)) => Some(dob.age_on(on)),
        _ => req.recipient.age.map(i64::from),
    }?;
    if age < 0 {
        return None;
    }
    Some(if age >= 80 {
        "80+".to_owned()
    } else {
        let lo = age / 10 * 10;
        format!("{lo}-{}", lo + 9)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_counts_once_per_dimension() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/cases/valid-one-dose/request.json"
        );
        let req: IssueRequest =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let counts = issue_counts(
            &req,
            1_614_676_878_000,
            &Zone::named("Asia/Kolkata").unwrap(),
        );
        let get = |d: &str| counts.iter().find(|(k, _)| k == d).map(|(_, v)| v.as_str());
        assert_eq!(get("total"), Some("all"));
        assert_eq!(get("day"), Some("2021-03-02"));
        assert_eq!(get("vaccine"), Some("CoVax"));
        assert_eq!(get("batch"), Some("MB3428BX"));
        assert_eq!(get("facility"), Some("FAC-0042"));
        assert_eq!(get("gender"), Some("Male"));
        // Born 1994-11-30, vaccinated 2021-03-02: 26.
        assert_eq!(get("age"), Some("20-29"));
        let dims: std::collections::BTreeSet<&str> =
            counts.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(dims.len(), counts.len(), "one count per dimension");
    }
}
