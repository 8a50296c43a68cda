//! DIVOC's bulk-upload CSV: one certificate per row, DIVOC's column names.
//!
//! The columns are those of DIVOC's facility-portal certificate upload
//! (`preEnrollmentCode, recipientName, recipientMobileNumber, recipientDOB,
//! …, facilityPincode`). Each row is mapped to DIVOC's `certify` item
//! ([`CertifyRequest`]) and from there to the native [`IssueRequest`], so
//! the CSV, the DIVOC JSON route and the native route share one validation.
//! Errors name the CSV column (and the row), never the value.
//!
//! Two columns are ours: `programId` (DIVOC deployments had one program per
//! install) and `facilityId` (a facility token may only issue for its own
//! facility ids). A column this module does not know is refused rather than
//! silently dropped: a misspelt `vaccinationBatch` would otherwise issue
//! certificates without the batch.

use crate::error::{CertError, FieldError};
use crate::legacy::{
    CertifyRequest, LegacyAddress, LegacyFacility, LegacyRecipient, LegacyVaccination,
    LegacyVaccinator, Loose,
};
use crate::request::IssueRequest;

/// Every column the importer understands, in DIVOC's order.
pub const COLUMNS: &[&str] = &[
    "preEnrollmentCode",
    "recipientName",
    "recipientMobileNumber",
    "recipientEmail",
    "recipientDOB",
    "recipientGender",
    "recipientNationality",
    "recipientIdentity",
    "recipientAge",
    "recipientAddressLine1",
    "recipientAddressLine2",
    "recipientDistrict",
    "recipientState",
    "recipientPincode",
    "vaccinationBatch",
    "vaccinationDate",
    "vaccinationDose",
    "vaccinationTotalDoses",
    "vaccinationEffectiveStart",
    "vaccinationEffectiveEnd",
    "vaccinationManufacturer",
    "vaccinationName",
    "vaccinatorName",
    "facilityName",
    "facilityAddressLine1",
    "facilityAddressLine2",
    "facilityDistrict",
    "facilityState",
    "facilityPincode",
    "programId",
    "facilityId",
];

/// Columns a file must have (`recipientDOB` or `recipientAge` is checked
/// separately: DIVOC accepted either).
const REQUIRED: &[&str] = &[
    "preEnrollmentCode",
    "recipientName",
    "recipientMobileNumber",
    "vaccinationName",
    "vaccinationDate",
    "vaccinationDose",
    "vaccinationTotalDoses",
    "facilityName",
];

/// Native (and DIVOC JSON) field path → CSV column, for error messages.
/// Longest prefixes first.
const FIELD_TO_COLUMN: &[(&str, &str)] = &[
    ("pre_enrollment_code", "preEnrollmentCode"),
    ("preEnrollmentCode", "preEnrollmentCode"),
    ("recipient.name", "recipientName"),
    ("recipient.dob", "recipientDOB"),
    ("recipient.age", "recipientAge"),
    ("recipient.gender", "recipientGender"),
    ("recipient.nationality", "recipientNationality"),
    ("recipient.identity", "recipientIdentity"),
    ("recipient.contacts", "recipientMobileNumber"),
    ("recipient.contact", "recipientMobileNumber"),
    ("recipient.address.line1", "recipientAddressLine1"),
    ("recipient.address.line2", "recipientAddressLine2"),
    ("recipient.address.district", "recipientDistrict"),
    ("recipient.address.state", "recipientState"),
    ("recipient.address.pincode", "recipientPincode"),
    ("vaccination.program", "programId"),
    ("programId", "programId"),
    ("vaccination.vaccine", "vaccinationName"),
    ("vaccination.name", "vaccinationName"),
    ("vaccination.manufacturer", "vaccinationManufacturer"),
    ("vaccination.batch", "vaccinationBatch"),
    ("vaccination.date", "vaccinationDate"),
    ("vaccination.dose", "vaccinationDose"),
    ("vaccination.total_doses", "vaccinationTotalDoses"),
    ("vaccination.totalDoses", "vaccinationTotalDoses"),
    ("vaccination.effective_start", "vaccinationEffectiveStart"),
    ("vaccination.effective_until", "vaccinationEffectiveEnd"),
    ("vaccinator.name", "vaccinatorName"),
    ("facility.id", "facilityId"),
    ("facility.name", "facilityName"),
    ("facility.address.line1", "facilityAddressLine1"),
    ("facility.address.line2", "facilityAddressLine2"),
    ("facility.address.district", "facilityDistrict"),
    ("facility.address.state", "facilityState"),
    ("facility.address.pincode", "facilityPincode"),
];

/// The CSV column a request field came from (the field itself when the
/// CSV has no such column, e.g. `recipient.address.country`).
pub fn column_of(field: &str) -> String {
    FIELD_TO_COLUMN
        .iter()
        .find(|(f, _)| {
            field == *f
                || field.starts_with(&format!("{f}."))
                || field.starts_with(&format!("{f}["))
        })
        .map(|(_, c)| (*c).to_owned())
        .unwrap_or_else(|| field.to_owned())
}

/// One data row.
#[derive(Debug)]
pub struct Row {
    /// Line number in the file (the header is line 1).
    pub line: u64,
    /// The row's pre-enrolment code, as given (may be empty).
    pub pre_enrollment_code: String,
    /// The parsed and validated request, or its errors by column.
    pub request: Result<IssueRequest, CertError>,
}

/// Parses a DIVOC CSV (UTF-8, with a header line; a UTF-8 byte-order mark
/// is ignored). A bad header is an error for the whole file, naming the
/// column; bad rows are reported per row, validated as of `now_ms`
/// with local date-times read in `zone`. At most `max_rows` data rows are
/// accepted.
pub fn parse(
    data: &[u8],
    default_program: &str,
    max_rows: usize,
    now_ms: i64,
    zone: &divoc_time::Zone,
) -> Result<Vec<Row>, CertError> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(data);
    let headers = reader
        .headers()
        .map_err(|_| CertError::field("header", "the first line is not a CSV header"))?
        .clone();
    let mut errors = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if !COLUMNS.contains(&h) {
            errors.push(FieldError::new(h, "unknown column"));
        } else if index.insert(h.to_owned(), i).is_some() {
            errors.push(FieldError::new(h, "column appears twice"));
        }
    }
    for c in REQUIRED {
        if !index.contains_key(*c) {
            errors.push(FieldError::new(*c, "required column is missing"));
        }
    }
    if !index.contains_key("recipientDOB") && !index.contains_key("recipientAge") {
        errors.push(FieldError::new(
            "recipientDOB",
            "give a recipientDOB or a recipientAge column",
        ));
    }
    if !errors.is_empty() {
        return Err(CertError::Validation(errors));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            CertError::field(
                format!("line {line}"),
                "malformed CSV (wrong number of fields or invalid UTF-8)",
            )
        })?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        if rows.len() == max_rows {
            return Err(CertError::field(
                "rows",
                format!("at most {max_rows} rows per import"),
            ));
        }
        let get = |c: &str| {
            index
                .get(c)
                .and_then(|&i| record.get(i))
                .unwrap_or_default()
                .to_owned()
        };
        let line = record.position().map_or(0, |p| p.line());
        let code = get("preEnrollmentCode");
        rows.push(Row {
            line,
            pre_enrollment_code: code,
            request: row_request(&get, default_program, now_ms, zone),
        });
    }
    Ok(rows)
}

/// `tel:` for a bare number; `tel:`/`mailto:` values are kept.
fn contact(scheme: &str, value: String) -> Option<String> {
    if value.is_empty() {
        None
    } else if value.starts_with("tel:") || value.starts_with("mailto:") {
        Some(value)
    } else {
        Some(format!("{scheme}:{value}"))
    }
}

/// DIVOC's upload accepted `2006-01-02` and `02-Jan-2006` dates of birth.
fn normalize_dob(s: String) -> String {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let parts: Vec<&str> = s.split('-').collect();
    if let [d, m, y] = parts.as_slice() {
        let month = MONTHS
            .iter()
            .position(|x| x.eq_ignore_ascii_case(m))
            .map(|i| i + 1);
        if let (Some(month), Ok(day), Ok(year)) = (month, d.parse::<u32>(), y.parse::<u32>()) {
            if y.len() == 4 {
                return format!("{year:04}-{month:02}-{day:02}");
            }
        }
    }
    s
}

fn loose(s: String) -> Loose {
    if s.is_empty() {
        Loose::None
    } else {
        Loose::Text(s)
    }
}

fn row_request(
    get: &dyn Fn(&str) -> String,
    default_program: &str,
    now_ms: i64,
    zone: &divoc_time::Zone,
) -> Result<IssueRequest, CertError> {
    let address = |prefix: &str| LegacyAddress {
        address_line1: get(&format!("{prefix}AddressLine1")),
        address_line2: get(&format!("{prefix}AddressLine2")),
        district: get(&format!("{prefix}District")),
        state: get(&format!("{prefix}State")),
        pincode: loose(get(&format!("{prefix}Pincode"))),
    };
    let item = CertifyRequest {
        pre_enrollment_code: get("preEnrollmentCode"),
        recipient: LegacyRecipient {
            name: get("recipientName"),
            dob: Some(normalize_dob(get("recipientDOB"))),
            age: loose(get("recipientAge")),
            gender: get("recipientGender"),
            nationality: get("recipientNationality"),
            identity: get("recipientIdentity"),
            contact: [
                contact("tel", get("recipientMobileNumber")),
                contact("mailto", get("recipientEmail")),
            ]
            .into_iter()
            .flatten()
            .collect(),
            address: address("recipient"),
        },
        vaccination: LegacyVaccination {
            name: get("vaccinationName"),
            batch: get("vaccinationBatch"),
            manufacturer: get("vaccinationManufacturer"),
            date: get("vaccinationDate"),
            effective_start: get("vaccinationEffectiveStart"),
            effective_until: get("vaccinationEffectiveEnd"),
            dose: loose(get("vaccinationDose")),
            total_doses: loose(get("vaccinationTotalDoses")),
        },
        vaccinator: LegacyVaccinator {
            name: get("vaccinatorName"),
        },
        facility: LegacyFacility {
            name: get("facilityName"),
            address: address("facility"),
        },
        program_id: Some(get("programId")).filter(|p| !p.is_empty()),
        meta: None,
    };
    let by_column = |e: CertError| match e {
        CertError::Validation(fields) => CertError::Validation(
            fields
                .into_iter()
                .map(|mut f| {
                    f.field = column_of(&f.field);
                    f
                })
                .collect(),
        ),
        other => other,
    };
    let mut req = item
        .into_issue_request(default_program)
        .map_err(by_column)?;
    let facility_id = get("facilityId");
    if !facility_id.is_empty() {
        req.facility.id = Some(facility_id);
    }
    req.validate_at(now_ms, zone)
        .map_err(|e| by_column(CertError::Validation(e)))?;
    req.normalize(zone);
    Ok(req)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// 2026-12-01T00:00:00Z.
    const NOW: i64 = 1_796_083_200_000;

    const HEADER: &str = "preEnrollmentCode,recipientName,recipientMobileNumber,recipientDOB,recipientGender,recipientNationality,recipientIdentity,vaccinationBatch,vaccinationDate,vaccinationDose,vaccinationTotalDoses,vaccinationManufacturer,vaccinationName,vaccinatorName,facilityName,facilityAddressLine1,facilityDistrict,facilityState,facilityPincode";

    fn fields(e: &CertError) -> Vec<String> {
        match e {
            CertError::Validation(f) => f.iter().map(|f| f.field.clone()).collect(),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn divoc_rows_map_to_requests() {
        let csv = format!(
            "\u{FEFF}{HEADER}\n\
             P-1,Asha Rao,9876543210,12-Mar-1985,Female,IN,did:in.gov.uidai.aadhaar:2342343334,B-7,2021-05-01T10:00:00Z,1,2,Serum Institute,COVISHIELD,Dr. Rao,PHC Anekal,Main Road,Bengaluru,Karnataka,560001\n\
             \n"
        );
        let rows = parse(
            csv.as_bytes(),
            "covid-19",
            10,
            NOW,
            &divoc_time::Zone::utc(),
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].line, 2);
        let req = rows[0].request.as_ref().unwrap();
        assert_eq!(req.recipient.dob.as_deref(), Some("1985-03-12"));
        assert_eq!(req.recipient.contacts, vec!["tel:9876543210"]);
        assert_eq!(req.recipient.identity.kind, "in.gov.uidai.aadhaar");
        assert_eq!(req.vaccination.program, "covid-19");
        assert_eq!(req.vaccination.dose, 1);
        assert_eq!(req.facility.address.pincode, "560001");
    }

    #[test]
    fn bad_rows_name_their_columns() {
        let csv = format!(
            "{HEADER}\n\
             P-2,,9876543210,1985-13-40,Female,IN,id1,B,2021-05-01,x,2,M,V,Dr,F,L,D,S,1\n"
        );
        let rows = parse(
            csv.as_bytes(),
            "covid-19",
            10,
            NOW,
            &divoc_time::Zone::utc(),
        )
        .unwrap();
        let e = rows[0].request.as_ref().unwrap_err();
        assert_eq!(fields(e), vec!["vaccinationDose"]);
        let csv = format!(
            "{HEADER}\n\
             P-2,,9876543210,1985-13-40,Female,IN,id1,B,2021-05-01,1,2,M,V,Dr,F,L,D,S,1\n"
        );
        let rows = parse(
            csv.as_bytes(),
            "covid-19",
            10,
            NOW,
            &divoc_time::Zone::utc(),
        )
        .unwrap();
        let f = fields(rows[0].request.as_ref().unwrap_err());
        assert!(f.contains(&"recipientName".to_owned()), "{f:?}");
        assert!(f.contains(&"recipientDOB".to_owned()), "{f:?}");
    }

    #[test]
    fn bad_headers_are_refused_naming_the_column() {
        let e = parse(
            b"preEnrollmentCode,recipientNmae\nx,y\n",
            "p",
            10,
            NOW,
            &divoc_time::Zone::utc(),
        )
        .unwrap_err();
        let f = fields(&e);
        assert!(f.contains(&"recipientNmae".to_owned()));
        assert!(f.contains(&"recipientName".to_owned()));
        assert!(f.contains(&"recipientDOB".to_owned()));
        // Ragged rows are a file error naming the line.
        let csv = format!("{HEADER}\na,b\n");
        assert_eq!(
            fields(&parse(csv.as_bytes(), "p", 10, NOW, &divoc_time::Zone::utc()).unwrap_err()),
            vec!["line 2"]
        );
        // Too many rows.
        let row = "P,N,1,1985-01-01,F,IN,i,B,2021-05-01,1,2,M,V,Dr,F,L,D,S,1\n";
        let csv = format!("{HEADER}\n{row}{row}{row}");
        assert_eq!(
            fields(&parse(csv.as_bytes(), "p", 2, NOW, &divoc_time::Zone::utc()).unwrap_err()),
            vec!["rows"]
        );
    }

    #[test]
    fn columns_of_fields() {
        assert_eq!(column_of("recipient.contacts[0]"), "recipientMobileNumber");
        assert_eq!(
            column_of("vaccination.total_doses"),
            "vaccinationTotalDoses"
        );
        assert_eq!(column_of("facility.address.line1"), "facilityAddressLine1");
        assert_eq!(
            column_of("recipient.address.country"),
            "recipient.address.country"
        );
    }
}
