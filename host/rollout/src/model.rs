//! The registry's records as they are sent, stored and returned, and the
//! rules each must satisfy on its own (references to other records are
//! checked by [`crate::RolloutService`] inside the write).
//!
//! JSON field names are camelCase, like the certificate module's DIVOC
//! payloads; unknown fields are refused, so a misspelt field is an error
//! and not silently dropped.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// A record's state. Vaccines may also be `blocked` (withdrawn for safety:
/// no booking or vaccination may name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// In use.
    #[default]
    Active,
    /// Not in use for now.
    Inactive,
    /// Withdrawn.
    Blocked,
}

impl Status {
    /// The stored and query-string name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Inactive => "inactive",
            Status::Blocked => "blocked",
        }
    }
}

/// How a vaccine is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// By injection.
    Injection,
    /// By mouth.
    Oral,
    /// Through the nose.
    Nasal,
}

/// Days allowed between one dose and the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DoseInterval {
    /// At least this many days after the previous dose.
    pub min_days: u32,
    /// At most this many (none: no upper bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_days: Option<u32>,
}

/// Boosters after the primary series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BoosterRule {
    /// At least this many days after the last dose.
    pub min_days_after_last: u32,
    /// How many boosters a person may get.
    pub max_boosters: u32,
}

/// A price in minor units of a currency (paise, cents): exact, no floats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Price {
    /// Amount in minor units.
    pub amount_minor: u64,
    /// ISO 4217 code, e.g. `INR`.
    pub currency: String,
}

/// A vaccine product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Vaccine {
    /// Unique code.
    pub code: String,
    /// Product name, as printed on certificates.
    pub name: String,
    /// Who makes it.
    pub manufacturer: String,
    /// Who supplies it, when not the manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// How it is given.
    pub mode: Mode,
    /// Doses in the primary series.
    pub doses: u32,
    /// Between dose n and n+1, for n = 1 … doses−1.
    #[serde(default)]
    pub intervals: Vec<DoseInterval>,
    /// Boosters, when the product has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booster: Option<BoosterRule>,
    /// Days the protection is taken to last after the last dose (certificate
    /// validity); none: no end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_days: Option<u32>,
    /// Its state.
    #[serde(default)]
    pub status: Status,
    /// What a dose costs, where it is sold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
}

/// Who is eligible for a programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Eligibility {
    /// The built-in rule.
    Rule(EligibilityRule),
    /// A `rollout-policy` plugin decides.
    Plugin(String),
}

impl Default for Eligibility {
    fn default() -> Self {
        Eligibility::Rule(EligibilityRule::default())
    }
}

/// The built-in eligibility rule: an age range and listed conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EligibilityRule {
    /// Youngest age (years, inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_age: Option<u32>,
    /// Oldest age (years, inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
    /// If not empty, a person must declare one of these conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
}

/// Whether a programme's vaccination is paid for, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Payment {
    /// Free.
    #[default]
    None,
    /// Paid through this payment-provider plugin.
    Plugin(String),
}

/// A vaccination programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Programme {
    /// Unique code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// First day (`YYYY-MM-DD`).
    pub start_date: String,
    /// Last day, when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// Its state.
    #[serde(default)]
    pub status: Status,
    /// Codes of the vaccines it offers.
    pub vaccines: Vec<String>,
    /// Who may take part.
    #[serde(default)]
    pub eligibility: Eligibility,
    /// Whether an enrolment's identity document is checked, at enrolment,
    /// by the identity-provider plugin for its type (and required).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub identity_check: bool,
    /// Whether it is paid.
    #[serde(default)]
    pub payment: Payment,
    /// The credential type its certificates are (`vaccination` or one
    /// defined in `[certificates.types]`).
    #[serde(default = "default_credential_type")]
    pub credential_type: String,
}

fn default_credential_type() -> String {
    "vaccination".to_owned()
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Address {
    /// First line.
    pub line1: String,
    /// Second line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// District.
    pub district: String,
    /// State or province.
    pub state: String,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pincode: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// A point on the map (WGS 84 degrees).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geo {
    /// Latitude, −90 … 90.
    pub lat: f64,
    /// Longitude, −180 … 180.
    pub lon: f64,
}

impl Eq for Geo {}

/// Who runs a facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Run by the government.
    Government,
    /// Run privately.
    Private,
}

/// Where a facility vaccinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteType {
    /// At its address.
    Fixed,
    /// On the move.
    Mobile,
    /// Both.
    Both,
}

impl SiteType {
    /// The stored and query-string name.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteType::Fixed => "fixed",
            SiteType::Mobile => "mobile",
            SiteType::Both => "both",
        }
    }
}

/// Daily opening hours, local time (`HH:MM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    /// Opens at.
    pub open: String,
    /// Closes at (after `open`).
    pub close: String,
}

/// A facility's part in one programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FacilityProgramme {
    /// The programme's code.
    pub programme: String,
    /// Whether it vaccinates in that programme now.
    #[serde(default)]
    pub status: Status,
    /// The most vaccinations a day it may record in that programme (Rollout
    /// II enforces it); none: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_rate: Option<u32>,
    /// When it vaccinates in that programme; none: its operating hours,
    /// every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Bookable appointment slots, by weekday and time window (none: it
    /// takes no appointments in that programme).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<SlotWindow>,
    /// When it takes people without an appointment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub walk_in: Vec<Schedule>,
}

/// Appointment slots on some weekdays: from `startTime` to `endTime`
/// (local time), one slot every `minutes`, each with `capacity` seats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlotWindow {
    /// The days.
    pub days: Vec<Weekday>,
    /// First slot starts (`HH:MM`).
    pub start_time: String,
    /// Last slot ends by (`HH:MM`, after `startTime`).
    pub end_time: String,
    /// Length of a slot, minutes (5-480).
    pub minutes: u32,
    /// Seats per slot (1-10000).
    pub capacity: u32,
}

impl SlotWindow {
    /// The slots' start times on a day it covers, minutes after midnight.
    pub fn starts(&self) -> Vec<u32> {
        let (Some(start), Some(end)) = (minutes_of(&self.start_time), minutes_of(&self.end_time))
        else {
            return Vec::new();
        };
        if self.minutes == 0 {
            return Vec::new();
        }
        (start..end)
            .step_by(self.minutes as usize)
            .filter(|s| s + self.minutes <= end)
            .collect()
    }
}

/// `HH:MM` as minutes after midnight.
pub fn minutes_of(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Weekday {
    /// 0 = Monday … 6 = Sunday, as [`divoc_time::Date::weekday`].
    pub fn index(self) -> u32 {
        self as u32
    }

    fn name(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// A facility's weekly hours in one programme, local time (as DIVOC's
/// `schedule {days, startTime, endTime}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Schedule {
    /// The days it vaccinates.
    pub days: Vec<Weekday>,
    /// From (`HH:MM`).
    pub start_time: String,
    /// Until (`HH:MM`, after `startTime`).
    pub end_time: String,
}

/// A person who administers a facility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Name.
    pub name: String,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A vaccination facility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Facility {
    /// Unique code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Where it is.
    pub address: Address,
    /// Its location on the map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    /// Its phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Its e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Who runs it.
    pub category: Category,
    /// Where it vaccinates.
    #[serde(rename = "type")]
    pub site_type: SiteType,
    /// When it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_hours: Option<Hours>,
    /// The IANA time zone its slots, days, daily rates and walk-in hours
    /// are in, where it differs from the deployment's (`[locale]`): e.g.
    /// a country spanning zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<divoc_time::Zone>,
    /// Its state.
    #[serde(default)]
    pub status: Status,
    /// The programmes it takes part in.
    #[serde(default)]
    pub programmes: Vec<FacilityProgramme>,
    /// Who administers it.
    #[serde(default)]
    pub admins: Vec<Person>,
}

/// A vaccinator's training for one programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaccinatorProgramme {
    /// The programme's code.
    pub programme: String,
    /// Trained and certified for it.
    #[serde(default)]
    pub certified: bool,
}

/// A person who vaccinates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Vaccinator {
    /// Unique code.
    pub code: String,
    /// National identifier (kept out of events and logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_id: Option<String>,
    /// Name.
    pub name: String,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Codes of the facilities they work at.
    #[serde(default)]
    pub facilities: Vec<String>,
    /// Programmes they are trained for.
    #[serde(default)]
    pub programmes: Vec<VaccinatorProgramme>,
    /// Their state.
    #[serde(default)]
    pub status: Status,
}

/// Collects field errors; each check names its field.
#[derive(Debug, Default)]
pub struct Checks(pub Vec<FieldError>);

impl Checks {
    /// Records an error for `field` unless `ok`.
    pub fn require(&mut self, ok: bool, field: impl Into<String>, message: &str) {
        if !ok {
            self.0.push(FieldError::new(field, message));
        }
    }

    /// A code: 1–32 of `A-Z a-z 0-9 - _`, starting with a letter or digit.
    pub fn code(&mut self, field: impl Into<String>, v: &str) {
        let ok = (1..=32).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        self.require(
            ok,
            field,
            "must be 1-32 characters of A-Z a-z 0-9 - _, starting with a letter or digit",
        );
    }

    /// Free text a person reads: not blank, at most `max` characters, no
    /// control characters.
    pub fn text(&mut self, field: impl Into<String>, v: &str, max: usize) {
        let ok =
            !v.trim().is_empty() && v.chars().count() <= max && !v.chars().any(char::is_control);
        self.require(
            ok,
            field,
            &format!("must be 1-{max} characters, not blank, no control characters"),
        );
    }

    /// Optional free text.
    pub fn opt_text(&mut self, field: impl Into<String>, v: Option<&str>, max: usize) {
        if let Some(v) = v {
            self.text(field, v, max);
        }
    }

    /// An e-mail address (the shape RFC 5321 allows a mailbox, roughly:
    /// one `@`, a dotted domain, at most 254 characters).
    pub fn email(&mut self, field: impl Into<String>, v: Option<&str>) {
        if let Some(v) = v {
            let ok = v.len() <= 254
                && v.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                })
                && !v.chars().any(|c| c.is_whitespace() || c.is_control());
            self.require(ok, field, "must be an e-mail address");
        }
    }

    /// A phone number: an optional `+` and 6–15 digits (E.164's length),
    /// spaces and dashes allowed between digits.
    pub fn phone(&mut self, field: impl Into<String>, v: Option<&str>) {
        if let Some(v) = v {
            let digits = v.bytes().filter(u8::is_ascii_digit).count();
            let rest = v.strip_prefix('+').unwrap_or(v);
            let ok = (6..=15).contains(&digits)
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
                && rest.bytes().next().is_some_and(|b| b.is_ascii_digit());
            self.require(
                ok,
                field,
                "must be a phone number: optional + and 6-15 digits",
            );
        }
    }

    /// A date `YYYY-MM-DD` that exists.
    pub fn date(&mut self, field: impl Into<String>, v: &str) -> Option<divoc_time::Date> {
        let d = divoc_time::parse_date(v);
        self.require(d.is_some(), field, "must be a date YYYY-MM-DD that exists");
        d
    }

    /// Local time of day `HH:MM`; minutes since midnight.
    pub fn time_of_day(&mut self, field: impl Into<String>, v: &str) -> Option<u32> {
        let parsed = v.split_once(':').and_then(|(h, m)| {
            let ok = h.len() == 2 && m.len() == 2;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (ok && h < 24 && m < 60).then_some(h * 60 + m)
        });
        self.require(parsed.is_some(), field, "must be a time HH:MM");
        parsed
    }

    /// Days and a local time window (`{at}.days`, `.startTime`,
    /// `.endTime`): at least one day, none twice, end after start.
    pub fn window(&mut self, at: &str, days: &[Weekday], start: &str, end: &str) {
        self.require(
            !days.is_empty(),
            format!("{at}.days"),
            "must name at least one day",
        );
        self.unique(&format!("{at}.days"), days.iter().map(|d| d.name()));
        let start = self.time_of_day(format!("{at}.startTime"), start);
        let end = self.time_of_day(format!("{at}.endTime"), end);
        if let (Some(s), Some(e)) = (start, end) {
            self.require(e > s, format!("{at}.endTime"), "must be after startTime");
        }
    }

    /// No two entries of `items` share a key.
    pub fn unique<'a>(&mut self, field: &str, items: impl Iterator<Item = &'a str>) {
        let mut seen = std::collections::BTreeSet::new();
        for (i, key) in items.enumerate() {
            if !seen.insert(key) {
                self.0
                    .push(FieldError::new(format!("{field}[{i}]"), "is listed twice"));
            }
        }
    }
}

impl Vaccine {
    /// Every rule a vaccine must satisfy on its own.
    pub fn check(&self) -> Vec<FieldError> {
        let mut c = Checks::default();
        c.code("code", &self.code);
        c.text("name", &self.name, 200);
        c.text("manufacturer", &self.manufacturer, 200);
        c.opt_text("provider", self.provider.as_deref(), 200);
        c.require((1..=10).contains(&self.doses), "doses", "must be 1-10");
        let want = self.doses.saturating_sub(1) as usize;
        c.require(
            self.intervals.len() == want,
            "intervals",
            "must list one interval per dose after the first (doses - 1 entries)",
        );
        for (i, iv) in self.intervals.iter().enumerate() {
            c.require(
                iv.min_days <= 3650,
                format!("intervals[{i}].minDays"),
                "must be at most 3650",
            );
            if let Some(max) = iv.max_days {
                c.require(
                    max >= iv.min_days && max <= 3650,
                    format!("intervals[{i}].maxDays"),
                    "must be at least minDays and at most 3650",
                );
            }
        }
        if let Some(b) = &self.booster {
            c.require(
                b.min_days_after_last <= 3650,
                "booster.minDaysAfterLast",
                "must be at most 3650",
            );
            c.require(
                (1..=10).contains(&b.max_boosters),
                "booster.maxBoosters",
                "must be 1-10",
            );
        }
        if let Some(days) = self.validity_days {
            c.require(
                (1..=36500).contains(&days),
                "validityDays",
                "must be 1-36500",
            );
        }
        if let Some(p) = &self.price {
            c.require(
                p.currency.len() == 3 && p.currency.bytes().all(|b| b.is_ascii_uppercase()),
                "price.currency",
                "must be an ISO 4217 code such as INR",
            );
        }
        c.0
    }
}

impl Programme {
    /// Every rule a programme must satisfy on its own.
    pub fn check(&self) -> Vec<FieldError> {
        let mut c = Checks::default();
        c.code("code", &self.code);
        c.text("name", &self.name, 200);
        c.opt_text("description", self.description.as_deref(), 2000);
        let start = c.date("startDate", &self.start_date);
        if let Some(end) = &self.end_date {
            let end = c.date("endDate", end);
            if let (Some(s), Some(e)) = (start, end) {
                c.require(e >= s, "endDate", "must not be before startDate");
            }
        }
        c.require(
            !self.vaccines.is_empty(),
            "vaccines",
            "must name at least one vaccine",
        );
        for (i, v) in self.vaccines.iter().enumerate() {
            c.code(format!("vaccines[{i}]"), v);
        }
        c.unique("vaccines", self.vaccines.iter().map(String::as_str));
        match &self.eligibility {
            Eligibility::Rule(r) => {
                if let (Some(min), Some(max)) = (r.min_age, r.max_age) {
                    c.require(
                        max >= min,
                        "eligibility.rule.maxAge",
                        "must not be below minAge",
                    );
                }
                for (i, cond) in r.conditions.iter().enumerate() {
                    c.text(format!("eligibility.rule.conditions[{i}]"), cond, 200);
                }
            }
            Eligibility::Plugin(name) => c.require(
                plugin_name_ok(name),
                "eligibility.plugin",
                "must be a plugin name: 1-64 of a-z 0-9 -, starting with a letter",
            ),
        }
        if let Payment::Plugin(name) = &self.payment {
            c.require(
                plugin_name_ok(name),
                "payment.plugin",
                "must be a plugin name: 1-64 of a-z 0-9 -, starting with a letter",
            );
        }
        c.code("credentialType", &self.credential_type);
        c.0
    }
}

/// The plugin-name rule of the contract (`divoc-contract`), restated here
/// without the runtime: 1–64 of `a-z 0-9 -`, starting with a letter.
fn plugin_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
}

impl Facility {
    /// Every rule a facility must satisfy on its own.
    pub fn check(&self) -> Vec<FieldError> {
        let mut c = Checks::default();
        c.code("code", &self.code);
        c.text("name", &self.name, 200);
        let a = &self.address;
        c.text("address.line1", &a.line1, 200);
        c.opt_text("address.line2", a.line2.as_deref(), 200);
        c.text("address.district", &a.district, 100);
        c.text("address.state", &a.state, 100);
        if let Some(pin) = &a.pincode {
            c.require(
                (3..=10).contains(&pin.len())
                    && pin
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-'),
                "address.pincode",
                "must be 3-10 letters, digits, spaces or dashes",
            );
        }
        c.require(
            a.country.len() == 2 && a.country.bytes().all(|b| b.is_ascii_uppercase()),
            "address.country",
            "must be an ISO 3166-1 alpha-2 code such as IN",
        );
        if let Some(g) = self.geo {
            c.require(
                (-90.0..=90.0).contains(&g.lat),
                "geo.lat",
                "must be -90 to 90",
            );
            c.require(
                (-180.0..=180.0).contains(&g.lon),
                "geo.lon",
                "must be -180 to 180",
            );
        }
        c.phone("contact", self.contact.as_deref());
        c.email("email", self.email.as_deref());
        if let Some(h) = &self.operating_hours {
            let open = c.time_of_day("operatingHours.open", &h.open);
            let close = c.time_of_day("operatingHours.close", &h.close);
            if let (Some(o), Some(cl)) = (open, close) {
                c.require(cl > o, "operatingHours.close", "must be after open");
            }
        }
        for (i, p) in self.programmes.iter().enumerate() {
            c.code(format!("programmes[{i}].programme"), &p.programme);
            if let Some(rate) = p.daily_rate {
                c.require(
                    (1..=1_000_000).contains(&rate),
                    format!("programmes[{i}].dailyRate"),
                    "must be 1-1000000",
                );
            }
            if let Some(sch) = &p.schedule {
                c.window(
                    &format!("programmes[{i}].schedule"),
                    &sch.days,
                    &sch.start_time,
                    &sch.end_time,
                );
            }
            for (j, w) in p.walk_in.iter().enumerate() {
                c.window(
                    &format!("programmes[{i}].walkIn[{j}]"),
                    &w.days,
                    &w.start_time,
                    &w.end_time,
                );
            }
            for (j, w) in p.slots.iter().enumerate() {
                let at = format!("programmes[{i}].slots[{j}]");
                c.window(&at, &w.days, &w.start_time, &w.end_time);
                c.require(
                    (5..=480).contains(&w.minutes),
                    format!("{at}.minutes"),
                    "must be 5-480",
                );
                c.require(
                    (1..=10_000).contains(&w.capacity),
                    format!("{at}.capacity"),
                    "must be 1-10000",
                );
            }
        }
        c.unique(
            "programmes",
            self.programmes.iter().map(|p| p.programme.as_str()),
        );
        for (i, p) in self.admins.iter().enumerate() {
            c.text(format!("admins[{i}].name"), &p.name, 200);
            c.phone(format!("admins[{i}].phone"), p.phone.as_deref());
            c.email(format!("admins[{i}].email"), p.email.as_deref());
        }
        c.0
    }
}

impl Vaccinator {
    /// Every rule a vaccinator must satisfy on their own.
    pub fn check(&self) -> Vec<FieldError> {
        let mut c = Checks::default();
        c.code("code", &self.code);
        c.opt_text("nationalId", self.national_id.as_deref(), 64);
        c.text("name", &self.name, 200);
        c.phone("phone", self.phone.as_deref());
        c.email("email", self.email.as_deref());
        for (i, f) in self.facilities.iter().enumerate() {
            c.code(format!("facilities[{i}]"), f);
        }
        c.unique("facilities", self.facilities.iter().map(String::as_str));
        for (i, p) in self.programmes.iter().enumerate() {
            c.code(format!("programmes[{i}].programme"), &p.programme);
        }
        c.unique(
            "programmes",
            self.programmes.iter().map(|p| p.programme.as_str()),
        );
        c.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_vaccine_needs_an_interval_per_later_dose() {
        let v: Vaccine = serde_json::from_value(json!({
            "code": "COVAX", "name": "CoVax", "manufacturer": "COVPharma", "mode": "injection",
            "doses": 2, "intervals": [{"minDays": 28, "maxDays": 84}],
            "booster": {"minDaysAfterLast": 180, "maxBoosters": 1},
            "validityDays": 365, "price": {"amountMinor": 78000, "currency": "INR"}
        }))
        .unwrap();
        assert!(v.check().is_empty(), "{:?}", v.check());
        let mut bad = v.clone();
        bad.doses = 3;
        bad.intervals[0].max_days = Some(7);
        bad.price = Some(Price {
            amount_minor: 1,
            currency: "inr".into(),
        });
        bad.code = "-x".into();
        assert_eq!(
            fields(&bad.check()),
            [
                "code",
                "intervals",
                "intervals[0].maxDays",
                "price.currency"
            ]
        );
        let unknown = serde_json::from_value::<Vaccine>(json!({
            "code": "X", "name": "X", "manufacturer": "M", "mode": "spray", "doses": 1
        }));
        assert!(unknown.unwrap_err().to_string().contains("spray"));
    }

    #[test]
    fn a_programme_is_checked_field_by_field() {
        let p: Programme = serde_json::from_value(json!({
            "code": "C19", "name": "COVID-19", "startDate": "2021-01-16", "endDate": "2021-01-15",
            "vaccines": ["COVAX", "COVAX"],
            "eligibility": {"rule": {"minAge": 60, "maxAge": 18, "conditions": [" "]}},
            "payment": {"plugin": "Pay"}
        }))
        .unwrap();
        assert_eq!(p.credential_type, "vaccination");
        assert_eq!(
            fields(&p.check()),
            [
                "endDate",
                "vaccines[1]",
                "eligibility.rule.maxAge",
                "eligibility.rule.conditions[0]",
                "payment.plugin"
            ]
        );
        let plugin: Programme = serde_json::from_value(json!({
            "code": "C19", "name": "COVID-19", "startDate": "2021-01-16",
            "vaccines": ["COVAX"], "eligibility": {"plugin": "policy-age-interval"}, "payment": "none"
        }))
        .unwrap();
        assert!(plugin.check().is_empty());
        assert_eq!(serde_json::to_value(&plugin).unwrap()["payment"], "none");
    }

    #[test]
    fn a_facility_is_checked_field_by_field() {
        let f: Facility = serde_json::from_value(json!({
            "code": "FAC-1", "name": "PHC Jayanagar",
            "address": {"line1": "4th Block", "district": "Bengaluru Urban", "state": "Karnataka",
                        "pincode": "560011", "country": "IN"},
            "geo": {"lat": 12.93, "lon": 77.58}, "contact": "+91 80 2345 6789",
            "email": "phc@example.org", "category": "government", "type": "fixed",
            "operatingHours": {"open": "09:00", "close": "17:00"},
            "programmes": [{"programme": "C19", "dailyRate": 100}],
            "admins": [{"name": "Dr. Rao", "phone": "+919876543210"}]
        }))
        .unwrap();
        assert!(f.check().is_empty(), "{:?}", f.check());
        let mut bad = f.clone();
        bad.address.country = "India".into();
        bad.geo = Some(Geo {
            lat: 91.0,
            lon: 0.0,
        });
        bad.contact = Some("call me".into());
        bad.email = Some("a@b".into());
        bad.operating_hours = Some(Hours {
            open: "17:00".into(),
            close: "09:00".into(),
        });
        bad.programmes.push(FacilityProgramme {
            programme: "C19".into(),
            status: Status::Active,
            daily_rate: Some(0),
            schedule: Some(Schedule {
                days: vec![Weekday::Mon, Weekday::Mon],
                start_time: "18:00".into(),
                end_time: "09:00".into(),
            }),
            slots: Vec::new(),
            walk_in: Vec::new(),
        });
        assert_eq!(
            fields(&bad.check()),
            [
                "address.country",
                "geo.lat",
                "contact",
                "email",
                "operatingHours.close",
                "programmes[1].dailyRate",
                "programmes[1].schedule.days[1]",
                "programmes[1].schedule.endTime",
                "programmes[1]"
            ]
        );
    }

    #[test]
    fn a_vaccinator_is_checked_field_by_field() {
        let v: Vaccinator = serde_json::from_value(json!({
            "code": "VAC-1", "name": "Asha", "facilities": ["FAC-1", "FAC-1"],
            "programmes": [{"programme": "C19", "certified": true}], "email": "x"
        }))
        .unwrap();
        assert_eq!(fields(&v.check()), ["email", "facilities[1]"]);
    }
}
