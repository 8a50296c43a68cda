//! CSV uploads of facilities, vaccinators and pre-enrolments in DIVOC's
//! column sets, so a ministry's existing files go in unchanged.
//!
//! DIVOC's columns (portal API, `config/application-default.yml`):
//!
//! - facilities: `facilityCode, facilityName, contact, operatingHourStart,
//!   operatingHourEnd, category, type, status, addressLine1, addressLine2,
//!   district, state, pincode, geoLocationLat, geoLocationLon, adminName,
//!   adminMobile` (and, read when present, `email`, `websiteURL`);
//! - vaccinators: `code, name, nationalIdentifier, mobileNumber, email,
//!   status, facilityIds` (`facilityIds` comma-separated in one cell);
//! - pre-enrolments: `phone, identity, nationality, dob, gender, name,
//!   email, addressLine1, addressLine2, district, state, pincode` (and,
//!   from older files, `nationalId`, `enrollmentScopeId`), for the
//!   programme the upload names (DIVOC's `programId`). Each new person gets
//!   a fresh enrolment code; a person already enrolled in the programme is
//!   found by identity (or name, date of birth and phone), not duplicated.
//!
//! As in DIVOC, header names are trimmed and matched exactly, column order
//! does not matter and extra columns are allowed. Unlike DIVOC, every row is
//! checked as a record sent to the API is (formats, enums, references), a
//! bad row is kept with the column it failed on and why (for `errors.csv`)
//! and never stops the good ones, and a re-sent file changes nothing (a row
//! identical to the stored record is `unchanged`; a row that differs makes
//! a new version). DIVOC's files carry no country: the upload names it
//! (`country`), unless the file has a `country` column.
//!
//! Rows are read as a stream: a thread parses them into a small bounded
//! queue and the writer stores them from it, up to [`CHUNK`] rows per
//! transaction, so memory stays bounded whatever the file's size, both
//! cores work, and a write that comes meanwhile (a certificate) goes in
//! between two batches of rows rather than after the whole file.

use std::io::Read;

use serde_json::json;
use sha2::{Digest, Sha256};

use divoc_storage::rollout::{self as store, Update};
use divoc_storage::uploads::{self as history, UploadError, UploadRow};
use divoc_storage::PendingWrite;

use crate::enrolment::{Enrolment, EnrolmentAddress, Gender};
use crate::error::{FieldError, RolloutError};
use crate::model::{Address, Category, Facility, Geo, Hours, Person, SiteType, Status, Vaccinator};
use crate::service::{RecordKind, RolloutService};

/// Rows per write transaction at most. Large, because a pre-enrolment
/// touches three randomly placed index pages (its code, its person key and
/// its phone's key): the fewer commits, the more rows share each page
/// written to the WAL (1,000,000 rows with two such keys: 41 s in
/// transactions of 5,000, 29 s of 20,000, 24 s of 50,000; with three: 30 s
/// of 50,000, 28 s of 100,000; docs/PERFORMANCE.md). Memory does not grow with it (the rows
/// stream through [`FEED`]), and other writes do not wait for a whole
/// transaction (see [`BATCH`]).
pub const CHUNK: usize = 100_000;

/// Rows passed from the parser to the writer at a time, and stored between
/// two looks at the writer's queue: when another write waits, the
/// transaction commits there and the rest goes in the next (about 6 ms of
/// writer time at ~25 µs a row). Rows go in batches because a hand-over
/// per row cost a thread wake-up per row.
const BATCH: usize = 250;

/// Rows into an upload when PostgreSQL's statistics are first refreshed
/// to count them, then again each time the upload's rows double
/// ([`store::refresh_statistics`]: an upload growing a kind from nothing
/// would otherwise be planned as if the kind had one record, in its
/// uncommitted chunk and until autovacuum analyzes the committed ones; a
/// handful of `ANALYZE`s per upload). Nothing on SQLite.
const FIRST_REFRESH: usize = 1_000;

/// An upload's rows so far, and when to refresh the statistics next.
#[derive(Clone, Copy)]
struct Refresh {
    rows: usize,
    at: usize,
}

/// Batches parsed ahead of the writer, at most: with [`BATCH`], what an
/// upload holds in memory whatever its transactions' size.
const FEED: usize = 8;

/// How long the writer waits inside its transaction for the parser's next
/// row before it commits what it has (the rest of the file is coming
/// slowly, and others may want to write).
const FEED_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// What an upload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// Facilities.
    Facilities,
    /// Vaccinators.
    Vaccinators,
    /// Pre-enrolments of one programme.
    Enrolments,
}

impl UploadKind {
    /// The name in routes and the history.
    pub fn name(self) -> &'static str {
        match self {
            UploadKind::Facilities => "facilities",
            UploadKind::Vaccinators => "vaccinators",
            UploadKind::Enrolments => "enrolments",
        }
    }

    /// The kind of a route name.
    pub fn from_name(name: &str) -> Option<UploadKind> {
        match name {
            "facilities" => Some(UploadKind::Facilities),
            "vaccinators" => Some(UploadKind::Vaccinators),
            "enrolments" => Some(UploadKind::Enrolments),
            _ => None,
        }
    }

    /// Columns the header must have (DIVOC's set).
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            UploadKind::Facilities => &[
                "facilityCode",
                "facilityName",
                "contact",
                "operatingHourStart",
                "operatingHourEnd",
                "category",
                "type",
                "status",
                "addressLine1",
                "addressLine2",
                "district",
                "state",
                "pincode",
                "geoLocationLat",
                "geoLocationLon",
                "adminName",
                "adminMobile",
            ],
            UploadKind::Vaccinators => &[
                "code",
                "name",
                "nationalIdentifier",
                "mobileNumber",
                "email",
                "status",
                "facilityIds",
            ],
            UploadKind::Enrolments => &[
                "phone",
                "identity",
                "nationality",
                "dob",
                "gender",
                "name",
                "email",
                "addressLine1",
                "addressLine2",
                "district",
                "state",
                "pincode",
            ],
        }
    }
}

/// Settings of one upload.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// The country of facilities whose file has no `country` column
    /// (ISO 3166-1 alpha-2).
    pub country: Option<String>,
    /// The programme an enrolment upload enrols for (DIVOC's `programId`).
    pub programme: Option<String>,
}

/// How an upload went (also `GET /v1/uploads/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadReport {
    /// Its id.
    pub id: String,
    /// `facilities` or `vaccinators`.
    pub kind: String,
    /// Who sent it.
    pub actor: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it finished; `None` if it was cut off.
    pub finished_at: Option<String>,
    /// Rows read.
    pub rows: i64,
    /// Records created.
    pub created: i64,
    /// Records changed to a new version.
    pub updated: i64,
    /// Rows identical to the stored record.
    pub unchanged: i64,
    /// Rows refused (see `errors.csv`).
    pub failed: i64,
    /// When the refused rows were erased (they are kept
    /// `rollout.upload-errors-days`), if they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors_erased_at: Option<String>,
}

impl UploadReport {
    /// The report of a stored upload.
    pub fn of(u: &UploadRow) -> UploadReport {
        UploadReport {
            id: u.id.clone(),
            kind: u.kind.clone(),
            actor: u.actor.clone(),
            sha256: u.sha256.clone(),
            started_at: divoc_time::format_millis(u.created_ms),
            finished_at: u.finished_ms.map(divoc_time::format_millis),
            rows: u.rows,
            created: u.created,
            updated: u.updated,
            unchanged: u.unchanged,
            failed: u.failed,
            errors_erased_at: u.errors_erased_ms.map(divoc_time::format_millis),
        }
    }
}

/// Hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// One row, by header name.
struct Cells<'a> {
    header: &'a csv::StringRecord,
    row: &'a csv::StringRecord,
}

impl Cells<'_> {
    /// The trimmed cell of a column; `None` when absent or empty.
    fn get(&self, column: &str) -> Option<&str> {
        let i = self.header.iter().position(|h| h == column)?;
        self.row.get(i).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// A row made into a record, or why not (errors name columns).
type Parsed<T> = Result<T, Vec<FieldError>>;

fn required<'a>(cells: &'a Cells<'_>, column: &str, errors: &mut Vec<FieldError>) -> &'a str {
    cells.get(column).unwrap_or_else(|| {
        errors.push(FieldError::new(column, "is missing"));
        ""
    })
}

fn status(cells: &Cells<'_>, errors: &mut Vec<FieldError>, allowed: &[Status]) -> Status {
    let value = cells.get("status").unwrap_or("Active").to_ascii_lowercase();
    match allowed.iter().find(|s| s.as_str() == value) {
        Some(s) => *s,
        None => {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            errors.push(FieldError::new(
                "status",
                format!("must be one of {} (any case)", names.join(", ")),
            ));
            Status::Active
        }
    }
}

/// DIVOC's hours are whole hours (`9`, `18`); `HH:MM` is taken too.
fn hour(v: &str) -> Option<String> {
    if v.contains(':') {
        return Some(v.to_owned());
    }
    let h: u32 = v.parse().ok()?;
    (h <= 24).then(|| format!("{:02}:00", h.min(23)))
}

/// The CSV column a record's field came from, for errors that name it.
fn facility_column(field: &str) -> String {
    let column = match field {
        "code" => "facilityCode",
        "name" => "facilityName",
        "address.line1" => "addressLine1",
        "address.line2" => "addressLine2",
        "address.district" => "district",
        "address.state" => "state",
        "address.pincode" => "pincode",
        "address.country" => "country",
        "geo.lat" => "geoLocationLat",
        "geo.lon" => "geoLocationLon",
        "operatingHours.open" => "operatingHourStart",
        "operatingHours.close" => "operatingHourEnd",
        "admins[0].name" => "adminName",
        "admins[0].phone" => "adminMobile",
        other => other,
    };
    column.to_owned()
}

fn vaccinator_column(field: &str) -> String {
    if field.starts_with("facilities") {
        return "facilityIds".to_owned();
    }
    match field {
        "nationalId" => "nationalIdentifier",
        "phone" => "mobileNumber",
        other => other,
    }
    .to_owned()
}

fn facility_row(cells: &Cells<'_>, options: &UploadOptions, today: &str) -> Parsed<Facility> {
    let mut errors = Vec::new();
    let code = required(cells, "facilityCode", &mut errors).to_owned();
    let name = required(cells, "facilityName", &mut errors).to_owned();
    let contact = cells.get("contact").map(str::to_owned);
    let category = match cells
        .get("category")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("GOVT" | "GOVERNMENT") => Category::Government,
        Some("PRIVATE") => Category::Private,
        _ => {
            errors.push(FieldError::new("category", "must be GOVT or PRIVATE"));
            Category::Government
        }
    };
    let site_type = match cells.get("type").map(str::to_ascii_lowercase).as_deref() {
        Some("fixed location" | "fixed") => SiteType::Fixed,
        Some("mobile") => SiteType::Mobile,
        Some("both") => SiteType::Both,
        _ => {
            errors.push(FieldError::new(
                "type",
                "must be Fixed location, Mobile or Both",
            ));
            SiteType::Fixed
        }
    };
    let status = status(
        cells,
        &mut errors,
        &[Status::Active, Status::Inactive, Status::Blocked],
    );
    let operating_hours = match (
        cells.get("operatingHourStart"),
        cells.get("operatingHourEnd"),
    ) {
        (None, None) => None,
        (Some(open), Some(close)) => match (hour(open), hour(close)) {
            (Some(open), Some(close)) => Some(Hours { open, close }),
            (open, _) => {
                let column = if open.is_none() {
                    "operatingHourStart"
                } else {
                    "operatingHourEnd"
                };
                errors.push(FieldError::new(column, "must be an hour 0-24 or HH:MM"));
                None
            }
        },
        (None, Some(_)) => {
            errors.push(FieldError::new(
                "operatingHourStart",
                "is missing (operatingHourEnd is given)",
            ));
            None
        }
        (Some(_), None) => {
            errors.push(FieldError::new(
                "operatingHourEnd",
                "is missing (operatingHourStart is given)",
            ));
            None
        }
    };
    let geo = match (cells.get("geoLocationLat"), cells.get("geoLocationLon")) {
        (None, None) => None,
        (Some(lat), Some(lon)) => match (lat.parse::<f64>(), lon.parse::<f64>()) {
            (Ok(lat), Ok(lon)) if lat.is_finite() && lon.is_finite() => Some(Geo { lat, lon }),
            _ => {
                errors.push(FieldError::new(
                    "geoLocationLat",
                    "latitude and longitude must be numbers",
                ));
                None
            }
        },
        _ => {
            errors.push(FieldError::new(
                "geoLocationLat",
                "give both geoLocationLat and geoLocationLon, or neither",
            ));
            None
        }
    };
    let country = cells
        .get("country")
        .map(str::to_owned)
        .or_else(|| options.country.clone())
        .unwrap_or_default();
    let address = Address {
        line1: required(cells, "addressLine1", &mut errors).to_owned(),
        line2: cells.get("addressLine2").map(str::to_owned),
        district: required(cells, "district", &mut errors).to_owned(),
        state: required(cells, "state", &mut errors).to_owned(),
        pincode: cells.get("pincode").map(str::to_owned),
        country,
    };
    let admins = match cells.get("adminName") {
        Some(name) => vec![Person {
            name: name.to_owned(),
            phone: cells.get("adminMobile").map(str::to_owned),
            email: None,
        }],
        None => Vec::new(),
    };
    let facility = Facility {
        code,
        name,
        address,
        geo,
        contact,
        email: cells.get("email").map(str::to_owned),
        category,
        site_type,
        operating_hours,
        time_zone: None,
        status,
        programmes: Vec::new(),
        admins,
    };
    finish_row(facility, errors, facility_column, today)
}

/// A row's record with the errors of reading it, and the record's own
/// rules (named by column) except on a column already refused.
fn finish_row<T: RecordKind>(
    record: T,
    mut errors: Vec<FieldError>,
    column: fn(&str) -> String,
    today: &str,
) -> Parsed<T> {
    for e in record.check().into_iter().chain(record.check_on(today)) {
        let field = column(&e.field);
        if !errors.iter().any(|have| have.field == field) {
            errors.push(FieldError::new(field, e.message));
        }
    }
    if errors.is_empty() {
        Ok(record)
    } else {
        Err(errors)
    }
}

fn vaccinator_row(cells: &Cells<'_>, today: &str) -> Parsed<Vaccinator> {
    let mut errors = Vec::new();
    let code = required(cells, "code", &mut errors).to_owned();
    let name = required(cells, "name", &mut errors).to_owned();
    let status = status(cells, &mut errors, &[Status::Active, Status::Inactive]);
    let facilities: Vec<String> = required(cells, "facilityIds", &mut errors)
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    let vaccinator = Vaccinator {
        code,
        national_id: cells.get("nationalIdentifier").map(str::to_owned),
        name,
        phone: cells.get("mobileNumber").map(str::to_owned),
        email: cells.get("email").map(str::to_owned),
        facilities,
        programmes: Vec::new(),
        status,
    };
    finish_row(vaccinator, errors, vaccinator_column, today)
}

fn enrolment_column(field: &str) -> String {
    match field {
        "address.line1" => "addressLine1",
        "address.line2" => "addressLine2",
        "address.district" => "district",
        "address.state" => "state",
        "address.pincode" => "pincode",
        "facility" => "enrollmentScopeId",
        other => other,
    }
    .to_owned()
}

/// A DIVOC pre-enrolment row. DIVOC's newest template has `identity` and
/// `nationality`; older files carry `nationalId` and `enrollmentScopeId`
/// (the facility): all are read.
fn enrolment_row(cells: &Cells<'_>, options: &UploadOptions, today: &str) -> Parsed<Enrolment> {
    let mut errors = Vec::new();
    let gender = match cells.get("gender").map(str::to_ascii_lowercase).as_deref() {
        Some("male" | "m") => Gender::Male,
        Some("female" | "f") => Gender::Female,
        Some("other" | "o") => Gender::Other,
        _ => {
            errors.push(FieldError::new("gender", "must be Male, Female or Other"));
            Gender::Other
        }
    };
    let enrolment = Enrolment {
        code: String::new(),
        programme: options.programme.clone().unwrap_or_default(),
        name: required(cells, "name", &mut errors).to_owned(),
        dob: required(cells, "dob", &mut errors).to_owned(),
        gender,
        phone: cells.get("phone").map(str::to_owned),
        email: cells.get("email").map(str::to_owned),
        identity: cells
            .get("identity")
            .or_else(|| cells.get("nationalId"))
            .map(str::to_owned),
        nationality: cells.get("nationality").map(str::to_owned),
        address: EnrolmentAddress {
            line1: required(cells, "addressLine1", &mut errors).to_owned(),
            line2: cells.get("addressLine2").map(str::to_owned),
            district: required(cells, "district", &mut errors).to_owned(),
            state: required(cells, "state", &mut errors).to_owned(),
            pincode: cells.get("pincode").map(str::to_owned),
        },
        conditions: Vec::new(),
        facility: cells.get("enrollmentScopeId").map(str::to_owned),
        status: Status::Active,
        person: String::new(),
        contact: String::new(),
    };
    finish_row(enrolment, errors, enrolment_column, today)
}

/// What a CSV row cannot say and an upload must therefore not erase: a
/// facility's and a vaccinator's programmes (set by activation and
/// training, not by DIVOC's columns).
pub(crate) trait FromCsv: RecordKind {
    /// Takes from the stored record what the row cannot carry.
    fn keep_from(&mut self, stored: Self);
    /// For records a row cannot name by code: the unique link that finds
    /// the stored one.
    fn natural_key(&self) -> Option<(String, String)> {
        None
    }
    /// Sets the code found (or drawn) for a record without one.
    fn set_code(&mut self, _code: String) {}
}

impl FromCsv for Enrolment {
    /// A re-sent row does not reactivate or move an enrolment, nor drop
    /// what the API added.
    fn keep_from(&mut self, stored: Self) {
        self.status = stored.status;
        if self.facility.is_none() {
            self.facility = stored.facility;
        }
        if self.email.is_none() {
            self.email = stored.email;
        }
        if self.conditions.is_empty() {
            self.conditions = stored.conditions;
        }
    }
    fn natural_key(&self) -> Option<(String, String)> {
        self.unique_links()
            .into_iter()
            .next()
            .map(|(rel, key, _)| (rel, key))
    }
    fn set_code(&mut self, code: String) {
        self.code = code;
    }
}

impl FromCsv for Facility {
    /// DIVOC's columns carry no programmes, one admin without e-mail, and
    /// optional e-mail, hours and location: an empty cell keeps what the
    /// API stored.
    fn keep_from(&mut self, stored: Self) {
        self.programmes = stored.programmes;
        if self.email.is_none() {
            self.email = stored.email;
        }
        if self.geo.is_none() {
            self.geo = stored.geo;
        }
        if self.operating_hours.is_none() {
            self.operating_hours = stored.operating_hours;
        }
        // DIVOC's file has no time zone column.
        self.time_zone = stored.time_zone;
        let mut stored_admins = stored.admins.into_iter();
        if let (Some(first), Some(was)) = (self.admins.first_mut(), stored_admins.next()) {
            if first.email.is_none() {
                first.email = was.email;
            }
        }
        self.admins.extend(stored_admins);
    }
}

impl FromCsv for Vaccinator {
    fn keep_from(&mut self, stored: Self) {
        self.programmes = stored.programmes;
    }
}

/// One row waiting for its chunk's transaction.
struct Pending<T> {
    row_no: i64,
    cells: String,
    parsed: Parsed<T>,
}

/// Counts of one chunk.
#[derive(Default)]
struct Counts {
    rows: i64,
    created: i64,
    updated: i64,
    unchanged: i64,
    failed: i64,
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads rows after the header into `feed` until the end of the file
/// (`Ok`), the file stops arriving (`Err`, after what came is queued), or
/// the writer's side is gone (`Ok`: the writer's error is the one to tell).
fn parse_rows<T, R: Read>(
    reader: &mut csv::Reader<R>,
    header: &csv::StringRecord,
    parse: impl Fn(&Cells<'_>) -> Parsed<T>,
    feed: &std::sync::mpsc::SyncSender<Vec<Pending<T>>>,
) -> Result<(), RolloutError> {
    let mut row_no = 0i64;
    let mut record = csv::StringRecord::new();
    let mut batch = Vec::with_capacity(BATCH);
    // What came is handed over before the end is told.
    let end = |batch: Vec<Pending<T>>, result| {
        if !batch.is_empty() {
            let _ = feed.send(batch);
        }
        result
    };
    loop {
        let pending = match reader.read_record(&mut record) {
            Ok(false) => return end(batch, Ok(())),
            Ok(true) => {
                row_no += 1;
                let cells = serde_json::to_string(&record.iter().collect::<Vec<_>>())
                    .map_err(|e| RolloutError::Internal(e.to_string()))?;
                let parsed = parse(&Cells {
                    header,
                    row: &record,
                });
                Pending {
                    row_no,
                    cells,
                    parsed,
                }
            }
            // The file stopped arriving: what came is stored, and the
            // upload stays unfinished.
            Err(e) if e.is_io_error() => {
                return end(batch, Err(RolloutError::Input(e.to_string())))
            }
            // A row csv cannot read (bad UTF-8, a stray quote): refused on
            // its own, the rest goes on.
            Err(e) => {
                row_no += 1;
                Pending {
                    row_no,
                    cells: "[]".to_owned(),
                    parsed: Err(vec![FieldError::new(
                        "row",
                        format!("not readable as CSV: {e}"),
                    )]),
                }
            }
        };
        batch.push(pending);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if feed.send(full).is_err() {
                return Ok(());
            }
        }
    }
}

/// Stores one row of an upload inside the writer's transaction: a refused
/// row goes to the upload's errors, a good one creates or updates its
/// record (with its audit record and event), or leaves it unchanged.
#[allow(clippy::too_many_arguments)]
fn store_row<T: FromCsv>(
    tx: &divoc_storage::Tx<'_>,
    row: Pending<T>,
    n: &mut Counts,
    upload: &str,
    actor: &str,
    person_key: &[u8],
    now: i64,
    column: fn(&str) -> String,
) -> divoc_storage::Result<()> {
    n.rows += 1;
    let record = match row.parsed {
        Ok(record) => record,
        Err(errors) => {
            n.failed += 1;
            let e = UploadError {
                row_no: row.row_no,
                cells: row.cells,
                errors: join(&errors),
            };
            history::add_error(tx, upload, &e)?;
            return Ok(());
        }
    };
    let missing = RolloutService::missing_references_in(tx, &record)?;
    if !missing.is_empty() {
        n.failed += 1;
        let errors: Vec<FieldError> = missing
            .into_iter()
            .map(|e| FieldError::new(column(&e.field), e.message))
            .collect();
        let e = UploadError {
            row_no: row.row_no,
            cells: row.cells,
            errors: join(&errors),
        };
        history::add_error(tx, upload, &e)?;
        return Ok(());
    }
    let mut record = record;
    record.prepare(person_key);
    // A record the file cannot name by code (an enrolment)
    // is found by what it is: the same person again; a new
    // person gets a code no record has or had.
    let mut fresh = false;
    if let Some((rel, key)) = record.natural_key() {
        let found = store::referrers(&tx.reader(), &rel, &key, 8)?;
        match found.into_iter().find(|(kind, _)| kind == T::KIND) {
            Some((_, code)) => record.set_code(code),
            None => {
                let mut code = crate::enrolment::new_code();
                while store::code_used(&tx.reader(), T::KIND, &code)? {
                    code = crate::enrolment::new_code();
                }
                record.set_code(code);
                fresh = true;
            }
        }
    }
    let code = record.code().to_owned();
    let stored = if fresh {
        None
    } else {
        store::get(&tx.reader(), T::KIND, &code)?
    };
    if let Some(stored) = &stored {
        let previous: T = serde_json::from_str(&stored.body)
            .map_err(|e| divoc_storage::StorageError::InvalidArgument(e.to_string()))?;
        record.keep_from(previous);
    }
    let body = serde_json::to_string(&record)
        .map_err(|e| divoc_storage::StorageError::InvalidArgument(e.to_string()))?;
    let index = record.index();
    match stored {
        None => {
            // Looked up in this same write: only a bug
            // could find the code taken now.
            let stored_ok = store::insert(tx, T::KIND, &code, &index, &body, actor, now)?;
            if let Some(version) = stored_ok {
                RolloutService::log_change(tx, actor, T::KIND, "created", &code, version)?;
                n.created += 1;
            } else {
                n.failed += 1;
                let errors = [FieldError::new("code", "a record with this code exists")];
                let e = UploadError {
                    row_no: row.row_no,
                    cells: row.cells,
                    errors: join(&errors),
                };
                history::add_error(tx, upload, &e)?;
            }
        }
        Some(stored) if stored.body == body => n.unchanged += 1,
        Some(_) => {
            if let Update::Updated(v) =
                store::update(tx, T::KIND, &code, None, &index, &body, actor, now)?
            {
                RolloutService::log_change(tx, actor, T::KIND, "updated", &code, v)?;
            }
            n.updated += 1;
        }
    }
    Ok(())
}

impl RolloutService {
    /// Reads a CSV upload and stores its good rows, chunk by chunk; the
    /// refused rows are kept for `errors.csv`. A header without one of
    /// DIVOC's columns is refused whole (422 naming the column), as is an
    /// upload of facilities with no country.
    pub fn upload(
        &self,
        kind: UploadKind,
        input: impl Read + Send,
        options: &UploadOptions,
        actor: &str,
    ) -> Result<UploadReport, RolloutError> {
        let mut hashing = Hashing {
            inner: input,
            hash: Sha256::new(),
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::Headers)
            .from_reader(&mut hashing);
        let header = reader
            .headers()
            .map_err(|e| {
                RolloutError::Validation(vec![FieldError::new("file", format!("not CSV: {e}"))])
            })?
            .clone();
        let missing: Vec<FieldError> = kind
            .columns()
            .iter()
            .filter(|c| !header.iter().any(|h| h == **c))
            .map(|c| FieldError::new(*c, "column missing from the header"))
            .collect();
        if !missing.is_empty() {
            return Err(RolloutError::Validation(missing));
        }
        if kind == UploadKind::Facilities && !header.iter().any(|h| h == "country") {
            let ok = options
                .country
                .as_deref()
                .is_some_and(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()));
            if !ok {
                return Err(RolloutError::Validation(vec![FieldError::new(
                    "country",
                    "the file has no country column: name the country (ISO 3166-1 alpha-2, e.g. IN)",
                )]));
            }
        }
        if kind == UploadKind::Enrolments {
            let programme = options.programme.as_deref().unwrap_or_default();
            let exists =
                !programme.is_empty() && self.get::<crate::model::Programme>(programme).is_ok();
            if !exists {
                return Err(RolloutError::Validation(vec![FieldError::new(
                    "programme",
                    "name the programme the file enrols for (an existing programme code)",
                )]));
            }
        }
        let now = self.clock().now_ms();
        let mut id_bytes = [0u8; 8];
        rand_id(&mut id_bytes);
        let id = format!("upl_{}", hex::encode(id_bytes));
        let started = UploadRow {
            id: id.clone(),
            kind: kind.name().to_owned(),
            actor: actor.to_owned(),
            header: serde_json::to_string(&header.iter().collect::<Vec<_>>())
                .map_err(|e| RolloutError::Internal(e.to_string()))?,
            created_ms: now,
            ..UploadRow::default()
        };
        self.db()
            .write(move |tx| history::start(tx, &started))
            .wait()?;

        let today = self.today();
        match kind {
            UploadKind::Facilities => self.stream(
                &mut reader,
                &header,
                &id,
                actor,
                |c| facility_row(c, options, &today),
                facility_column,
            )?,
            UploadKind::Vaccinators => self.stream(
                &mut reader,
                &header,
                &id,
                actor,
                |c| vaccinator_row(c, &today),
                vaccinator_column,
            )?,
            UploadKind::Enrolments => self.stream(
                &mut reader,
                &header,
                &id,
                actor,
                |c| enrolment_row(c, options, &today),
                enrolment_column,
            )?,
        }
        drop(reader);
        let sha256 = hex::encode(hashing.hash.finalize());
        let finished = self.clock().now_ms();
        let (upload_id, actor_name) = (id.clone(), actor.to_owned());
        self.db()
            .write(move |tx| {
                history::finish(tx, &upload_id, &sha256, finished)?;
                let u = history::get(&tx.reader(), &upload_id)?;
                let detail = u.map_or(json!({}), |u| {
                    json!({"kind": u.kind, "rows": u.rows, "created": u.created, "updated": u.updated,
                           "unchanged": u.unchanged, "failed": u.failed})
                });
                divoc_storage::audit::append_audit(tx, &actor_name, "upload.finish", &upload_id, &detail)?;
                divoc_storage::events::append_event(tx, "rollout.upload.finished", &upload_id, &detail)?;
                Ok(())
            })
            .wait()?;
        self.upload_report(&id)
    }

    /// Reads the rows after the header and stores them. A thread of the
    /// upload's own parses rows into a small bounded queue; the writer
    /// takes them from it inside one transaction of up to [`CHUNK`] rows
    /// (see [`write_rows`](Self::write_rows)). So the file is stored in
    /// its order, parsing and storing use both cores, at most [`FEED`] ×
    /// [`BATCH`] rows wait in memory whatever the transaction's size, and a slow client
    /// never holds the writer (it waits for the first row outside).
    fn stream<T: FromCsv, R: Read + Send>(
        &self,
        reader: &mut csv::Reader<R>,
        header: &csv::StringRecord,
        id: &str,
        actor: &str,
        parse: impl Fn(&Cells<'_>) -> Parsed<T> + Send,
        column: fn(&str) -> String,
    ) -> Result<(), RolloutError> {
        let (feed, rows) = std::sync::mpsc::sync_channel::<Vec<Pending<T>>>(FEED);
        std::thread::scope(|scope| {
            let parser = scope.spawn(move || parse_rows(reader, header, parse, &feed));
            let mut rows = rows;
            let mut refresh = Refresh {
                rows: 0,
                at: FIRST_REFRESH,
            };
            let stored = loop {
                // Outside the writer: a file that comes slowly holds no lock.
                let Ok(first) = rows.recv() else {
                    break Ok(());
                };
                match self
                    .write_rows(id, first, rows, refresh, actor, column)
                    .wait()
                {
                    Ok((back, counted)) => (rows, refresh) = (back, counted),
                    // The queue went with the failed write: the parser
                    // stops at its next row.
                    Err(e) => break Err(RolloutError::from(e)),
                }
            };
            let parsed = parser
                .join()
                .unwrap_or_else(|_| Err(RolloutError::Internal("the CSV parser panicked".into())));
            // A failed write explains more than the parser's "stopped".
            stored.and(parsed)
        })
    }

    /// Queues one transaction that stores the batch `first` and the
    /// batches after it from `rows`, until [`CHUNK`] rows, the end of the
    /// file, a pause in it, or a write waiting behind (looked at between
    /// batches: a certificate being issued waits for milliseconds, not a
    /// chunk). Answers the queue, for the next transaction.
    fn write_rows<T: FromCsv>(
        &self,
        upload: &str,
        first: Vec<Pending<T>>,
        rows: std::sync::mpsc::Receiver<Vec<Pending<T>>>,
        mut refresh: Refresh,
        actor: &str,
        column: fn(&str) -> String,
    ) -> PendingWrite<(std::sync::mpsc::Receiver<Vec<Pending<T>>>, Refresh)> {
        let (upload, actor) = (upload.to_owned(), actor.to_owned());
        let person_key = self.person_key();
        let now = self.clock().now_ms();
        self.db().write_alone(move |tx| {
            let mut n = Counts::default();
            let mut batch = first;
            loop {
                refresh.rows += batch.len();
                for row in batch {
                    store_row(
                        tx,
                        row,
                        &mut n,
                        &upload,
                        &actor,
                        &person_key[..],
                        now,
                        column,
                    )?;
                }
                if refresh.rows >= refresh.at {
                    store::refresh_statistics(tx)?;
                    refresh.at = refresh.rows.saturating_mul(2);
                }
                if n.rows as usize >= CHUNK || tx.others_waiting() {
                    break;
                }
                match rows.recv_timeout(FEED_PAUSE) {
                    Ok(next) => batch = next,
                    Err(_) => break,
                }
            }
            history::add_counts(
                tx,
                &upload,
                n.rows,
                n.created,
                n.updated,
                n.unchanged,
                n.failed,
            )?;
            Ok((rows, refresh))
        })
    }

    /// The report of an upload.
    pub fn upload_report(&self, id: &str) -> Result<UploadReport, RolloutError> {
        let u = self
            .db()
            .read(|r| history::get(r, id))?
            .ok_or_else(|| RolloutError::NotFound(format!("upload {id}")))?;
        Ok(UploadReport::of(&u))
    }

    /// Erases the refused rows of uploads started more than `keep_days`
    /// days ago (they hold the cells as sent: personal data of people who
    /// were not enrolled), a thousand rows per write so that other writes
    /// go in between. The number of uploads whose rows are now erased.
    pub fn erase_old_upload_errors(&self, keep_days: u32) -> Result<u64, RolloutError> {
        let now = self.clock().now_ms();
        let before = now - i64::from(keep_days) * 86_400_000;
        let mut erased = 0;
        while let Some(finished) = self
            .db()
            .write(move |tx| history::erase_errors(tx, before, now, 1000))
            .wait()?
        {
            erased += u64::from(finished);
        }
        Ok(erased)
    }

    /// Uploads, newest first (of one kind if given), before `before_ms`.
    pub fn uploads(
        &self,
        kind: Option<UploadKind>,
        before_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<UploadReport>, RolloutError> {
        let rows = self
            .db()
            .read(|r| history::list(r, kind.map(UploadKind::name), before_ms, limit))?;
        Ok(rows.iter().map(UploadReport::of).collect())
    }

    /// The refused rows of an upload as CSV: its header and an `errors`
    /// column naming each bad column and why. Whole, in memory: for tests
    /// and small uploads; the API streams [`RolloutService::write_upload_errors`].
    pub fn upload_errors_csv(&self, id: &str) -> Result<Vec<u8>, RolloutError> {
        let mut out = Vec::new();
        self.write_upload_errors(id, |chunk| {
            out.extend_from_slice(&chunk);
            true
        })?;
        Ok(out)
    }

    /// Writes the refused rows of an upload as CSV to `sink`, one chunk
    /// per page of 1,000 rows (the header first), so a large list is never
    /// held whole; stops early when `sink` answers `false` (the client
    /// went away). 404 before anything is written if there is no upload.
    pub fn write_upload_errors(
        &self,
        id: &str,
        mut sink: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<(), RolloutError> {
        let u = self
            .db()
            .read(|r| history::get(r, id))?
            .ok_or_else(|| RolloutError::NotFound(format!("upload {id}")))?;
        if let Some(at) = u.errors_erased_ms {
            return Err(RolloutError::Erased(format!(
                "the refused rows of upload {id} were erased at {} (they are kept for \
                 rollout.upload-errors-days); the counts remain in its report",
                divoc_time::format_millis(at)
            )));
        }
        let header: Vec<String> =
            serde_json::from_str(&u.header).map_err(|e| RolloutError::Internal(e.to_string()))?;
        let write_err = |e: csv::Error| RolloutError::Internal(e.to_string());
        let finish = |w: csv::Writer<Vec<u8>>| {
            w.into_inner()
                .map_err(|e| RolloutError::Internal(e.to_string()))
        };
        let mut out = csv::Writer::from_writer(Vec::new());
        let mut head = header.clone();
        head.push("row".into());
        head.push("errors".into());
        out.write_record(&head).map_err(write_err)?;
        if !sink(finish(out)?) {
            return Ok(());
        }
        let mut after = 0;
        loop {
            let page = self.db().read(|r| history::errors(r, id, after, 1000))?;
            let Some(last) = page.last() else { break };
            after = last.row_no;
            let mut out = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new());
            for e in &page {
                let mut cells: Vec<String> = serde_json::from_str(&e.cells).unwrap_or_default();
                // The file's own cells go back to a spreadsheet: one that
                // starts like a formula is given as text (OWASP, CSV
                // injection).
                for cell in &mut cells {
                    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                        cell.insert(0, '\'');
                    }
                }
                cells.resize(header.len(), String::new());
                cells.push(e.row_no.to_string());
                cells.push(e.errors.clone());
                out.write_record(&cells).map_err(write_err)?;
            }
            if !sink(finish(out)?) {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn rand_id(bytes: &mut [u8]) {
    use rand::RngCore;
    rand::rngs::OsRng.fill_bytes(bytes);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use divoc_storage::{Database, DbOptions};
    use divoc_time::ManualClock;

    fn testdata(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata")
                .join(name),
        )
        .unwrap()
    }

    fn service() -> (tempfile::TempDir, RolloutService) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        (
            dir,
            RolloutService::new(db, ManualClock::new(1_700_000_000_000)),
        )
    }

    fn india() -> UploadOptions {
        UploadOptions {
            country: Some("IN".into()),
            programme: None,
        }
    }

    #[test]
    fn divoc_files_go_in_and_bad_rows_come_back_named() {
        let (_d, svc) = service();
        let facilities = testdata("divoc-facilities.csv");
        let r = svc
            .upload(
                UploadKind::Facilities,
                facilities.as_slice(),
                &india(),
                "ctl",
            )
            .unwrap();
        assert_eq!(
            (r.rows, r.created, r.updated, r.unchanged, r.failed),
            (5, 4, 0, 0, 1)
        );
        assert_eq!(r.sha256, hex::encode(Sha256::digest(&facilities)));
        let del = svc.get::<Facility>("DEL010").unwrap().record;
        assert_eq!(
            del.operating_hours,
            Some(Hours {
                open: "09:00".into(),
                close: "18:00".into()
            })
        );
        assert_eq!(
            (del.site_type, del.category, del.address.country.as_str()),
            (SiteType::Fixed, Category::Government, "IN")
        );
        assert_eq!(del.address.line2.as_deref(), Some("Road, NIBM Road"));
        assert_eq!(del.admins[0].phone.as_deref(), Some("1111111111"));
        let errors = String::from_utf8(svc.upload_errors_csv(&r.id).unwrap()).unwrap();
        let lines: Vec<&str> = errors.lines().collect();
        assert_eq!(lines.len(), 2, "{errors}");
        assert!(lines[0].ends_with(",adminName,adminMobile,row,errors"));
        assert!(lines[1].starts_with("BAD001,Broken Clinic,not-a-phone,"));
        assert!(lines[1].contains(",5,"), "{errors}");
        for column in [
            "category: must be GOVT or PRIVATE",
            "contact: must be a phone number",
            "adminMobile: must be a phone number",
        ] {
            assert!(lines[1].contains(column), "{column} in {errors}");
        }

        // Vaccinators name facilities of the registry; an unknown one is named.
        let r = svc
            .upload(
                UploadKind::Vaccinators,
                testdata("divoc-vaccinators.csv").as_slice(),
                &UploadOptions::default(),
                "ctl",
            )
            .unwrap();
        assert_eq!((r.created, r.failed), (2, 1));
        assert_eq!(
            svc.get::<Vaccinator>("A1").unwrap().record.facilities,
            ["DEL010", "BLR311"]
        );
        let errors = String::from_utf8(svc.upload_errors_csv(&r.id).unwrap()).unwrap();
        assert!(
            errors.contains("A3,Anthony")
                && errors.contains("facilityIds: no facility with this code"),
            "{errors}"
        );

        // Sent again: nothing new, nothing duplicated.
        let again = svc
            .upload(
                UploadKind::Facilities,
                facilities.as_slice(),
                &india(),
                "ctl",
            )
            .unwrap();
        assert_eq!(
            (again.created, again.updated, again.unchanged, again.failed),
            (0, 0, 4, 1)
        );
        assert_eq!(svc.get::<Facility>("DEL010").unwrap().version, 1);
        // A re-upload keeps what the file cannot say (the programmes).
        let mut del = svc.get::<Facility>("DEL010").unwrap().record;
        crate::test_support::seed_c19(&svc);
        del.programmes = vec![crate::model::FacilityProgramme {
            programme: "C19".into(),
            status: Status::Active,
            daily_rate: Some(100),
            schedule: None,
            slots: Vec::new(),
            walk_in: Vec::new(),
        }];
        svc.replace("DEL010", del, Some(1), "ctl").unwrap();
        let again = svc
            .upload(
                UploadKind::Facilities,
                facilities.as_slice(),
                &india(),
                "ctl",
            )
            .unwrap();
        assert_eq!((again.updated, again.unchanged), (0, 4));
        // A changed row is a new version.
        let changed = String::from_utf8(facilities)
            .unwrap()
            .replace("Final Destination", "Final Destination PHC");
        let r = svc
            .upload(UploadKind::Facilities, changed.as_bytes(), &india(), "ctl")
            .unwrap();
        assert_eq!((r.created, r.updated, r.unchanged), (0, 1, 3));
        let del = svc.get::<Facility>("DEL010").unwrap();
        assert_eq!((del.version, del.record.programmes.len()), (3, 1));
        assert_eq!(
            svc.uploads(Some(UploadKind::Facilities), None, 10)
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn refused_cells_that_look_like_formulas_come_back_as_text() {
        let (_d, svc) = service();
        let csv = "code,name,nationalIdentifier,mobileNumber,email,status,facilityIds\n\
                   V1,=HYPERLINK(\"http://x.test\"),N1,9812345678,a@b.org,Active,NOPE\n";
        let r = svc
            .upload(
                UploadKind::Vaccinators,
                csv.as_bytes(),
                &UploadOptions::default(),
                "ctl",
            )
            .unwrap();
        assert_eq!(r.failed, 1);
        let errors = String::from_utf8(svc.upload_errors_csv(&r.id).unwrap()).unwrap();
        assert!(errors.contains("'=HYPERLINK"), "{errors}");
    }

    #[test]
    fn a_wrong_header_or_no_country_refuses_the_whole_file() {
        let (_d, svc) = service();
        let e = svc
            .upload(
                UploadKind::Vaccinators,
                "code,name\nA1,Amar\n".as_bytes(),
                &UploadOptions::default(),
                "ctl",
            )
            .unwrap_err();
        let RolloutError::Validation(fields) = e else {
            panic!("{e}")
        };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "nationalIdentifier",
                "mobileNumber",
                "email",
                "status",
                "facilityIds"
            ]
        );
        let e = svc
            .upload(
                UploadKind::Facilities,
                testdata("divoc-facilities.csv").as_slice(),
                &UploadOptions::default(),
                "ctl",
            )
            .unwrap_err();
        assert!(
            matches!(&e, RolloutError::Validation(f) if f[0].field == "country"),
            "{e}"
        );
        assert!(svc.uploads(None, None, 10).unwrap().is_empty());
    }

    #[test]
    fn refused_rows_are_erased_after_the_retention_days() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let clock = ManualClock::new(1_700_000_000_000);
        let svc = RolloutService::new(db, clock.clone());
        let file = testdata("divoc-facilities.csv");
        let old = svc
            .upload(UploadKind::Facilities, file.as_slice(), &india(), "ctl")
            .unwrap();
        clock.advance(2 * 86_400_000);
        let recent = svc
            .upload(UploadKind::Facilities, file.as_slice(), &india(), "ctl")
            .unwrap();
        assert_eq!((old.failed, recent.failed), (1, 1));

        // 31 days after the first upload, 29 after the second.
        clock.advance(29 * 86_400_000);
        assert_eq!(svc.erase_old_upload_errors(30).unwrap(), 1);
        assert_eq!(svc.erase_old_upload_errors(30).unwrap(), 0, "done once");
        let e = svc.upload_errors_csv(&old.id).unwrap_err();
        assert!(
            matches!(&e, RolloutError::Erased(m) if m.contains("upload-errors-days")),
            "{e}"
        );
        let report = svc.upload_report(&old.id).unwrap();
        assert_eq!(report.failed, 1, "the counts stay");
        assert!(report.errors_erased_at.is_some());
        let kept = String::from_utf8(svc.upload_errors_csv(&recent.id).unwrap()).unwrap();
        assert_eq!(kept.lines().count(), 2, "{kept}");
        assert!(svc
            .upload_report(&recent.id)
            .unwrap()
            .errors_erased_at
            .is_none());
    }

    #[test]
    fn more_rows_than_a_chunk_are_all_stored() {
        let (_d, svc) = service();
        let mut csv = String::from(
            "facilityCode,facilityName,contact,operatingHourStart,operatingHourEnd,category,type,status,addressLine1,addressLine2,district,state,pincode,geoLocationLat,geoLocationLon,adminName,adminMobile\n",
        );
        let n = CHUNK * 2 + 7;
        for i in 0..n {
            csv.push_str(&format!("F{i:05},Facility {i},,9,17,GOVT,Fixed location,Active,Road {i},,D{},S,560001,,,,\n", i % 7));
        }
        let r = svc
            .upload(UploadKind::Facilities, csv.as_bytes(), &india(), "ctl")
            .unwrap();
        assert_eq!((r.rows, r.created, r.failed), (n as i64, n as i64, 0));
    }

    #[test]
    fn an_upload_yields_to_other_writes_and_keeps_file_order() {
        let (_d, svc) = service();
        let mut csv = String::from(
            "facilityCode,facilityName,contact,operatingHourStart,operatingHourEnd,category,type,status,addressLine1,addressLine2,district,state,pincode,geoLocationLat,geoLocationLon,adminName,adminMobile\n",
        );
        let n = 3000;
        for i in 0..n - 1 {
            csv.push_str(&format!(
                "F{i:05},Facility {i},,9,17,GOVT,Fixed location,Active,Road {i},,D,S,560001,,,,\n"
            ));
        }
        // The last row names the first facility again: it must win.
        csv.push_str("F00000,Renamed,,9,17,GOVT,Fixed location,Active,Road 0,,D,S,560001,,,,\n");

        // Another writer keeps the queue busy, and notes how far the upload
        // had got each time one of its writes was done.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let other = {
            let (svc, stop) = (svc.clone(), std::sync::Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    svc.db()
                        .write(|tx| {
                            divoc_storage::events::append_event(tx, "test.tick", "t", &json!({}))
                        })
                        .wait()
                        .unwrap();
                    if let Some(u) = svc.uploads(None, None, 1).unwrap().first() {
                        seen.push(u.rows);
                    }
                }
                seen
            })
        };
        let r = svc
            .upload(UploadKind::Facilities, csv.as_bytes(), &india(), "ctl")
            .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = other.join().unwrap();
        assert_eq!(
            (r.rows, r.created, r.updated, r.failed),
            (n, n - 1, 1, 0),
            "{r:?}"
        );
        assert!(
            seen.iter().any(|&rows| rows > 0 && rows < n),
            "another write committed in the middle of the chunk: {seen:?}"
        );
        let first: crate::service::Stored<Facility> = svc.get("F00000").unwrap();
        assert_eq!((first.version, first.record.name.as_str()), (2, "Renamed"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod enrolment_tests {
    use super::*;
    use divoc_storage::{Database, DbOptions};
    use divoc_time::ManualClock;

    #[test]
    fn divoc_pre_enrolments_get_codes_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let svc = RolloutService::new(db, ManualClock::new(1_700_000_000_000));
        let csv = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/divoc-enrolments.csv"),
        )
        .unwrap();
        let c19 = UploadOptions {
            country: None,
            programme: Some("C19".into()),
        };
        let e = svc
            .upload(UploadKind::Enrolments, csv.as_slice(), &c19, "ctl")
            .unwrap_err();
        assert!(
            matches!(&e, RolloutError::Validation(f) if f[0].field == "programme"),
            "{e}"
        );
        crate::test_support::seed_c19(&svc);
        let r = svc
            .upload(UploadKind::Enrolments, csv.as_slice(), &c19, "ctl")
            .unwrap();
        assert_eq!((r.created, r.failed), (2, 1));
        let errors = String::from_utf8(svc.upload_errors_csv(&r.id).unwrap()).unwrap();
        assert!(
            errors.contains("gender: must be Male") && errors.contains("dob: must be a date"),
            "{errors}"
        );
        // Born after the service's today (2023-11-14): refused, named.
        let unborn = "phone,identity,nationality,dob,gender,name,email,addressLine1,addressLine2,district,state,pincode\n9000000001,,Indian,2030-01-01,Female,Not Yet,,Road,,Mysuru,Karnataka,570001\n";
        let u = svc
            .upload(UploadKind::Enrolments, unborn.as_bytes(), &c19, "ctl")
            .unwrap();
        assert_eq!((u.created, u.failed), (0, 1));
        let errors = String::from_utf8(svc.upload_errors_csv(&u.id).unwrap()).unwrap();
        assert!(
            errors.contains("dob: must not be in the future"),
            "{errors}"
        );
        let page = svc
            .list::<Enrolment>(&divoc_storage::rollout::ListFilter::default(), 10)
            .unwrap();
        assert_eq!(page.items.len(), 2);
        for item in &page.items {
            assert!(crate::enrolment::valid_code(&item.record.code));
            assert!(
                !item.record.code.contains("9090909090")
                    && !item.record.code.contains("9876543210")
            );
        }
        // Sent again: the same people, no new codes.
        let again = svc
            .upload(UploadKind::Enrolments, csv.as_slice(), &c19, "ctl")
            .unwrap();
        assert_eq!((again.created, again.unchanged, again.failed), (0, 2, 1));
        let codes_after: Vec<String> = svc
            .list::<Enrolment>(&divoc_storage::rollout::ListFilter::default(), 10)
            .unwrap()
            .items
            .into_iter()
            .map(|i| i.record.code)
            .collect();
        let codes_before: Vec<String> = page.items.into_iter().map(|i| i.record.code).collect();
        assert_eq!(codes_after, codes_before);
    }
}
