//! Pre-enrolment: a person registered for a programme before they turn up
//! (by a ministry's upload or the API), with a random, checksummed
//! enrolment code they quote at the facility.
//!
//! The code is 10 random digits and a Damm check digit: easy to read out
//! and type, any single wrong digit or swap of two neighbouring digits is
//! caught, and it carries nothing about the person (DIVOC's `<phone>-<n>`
//! codes put phone numbers into signed certificates).
//!
//! A person is enrolled once per programme: the same identity number (or,
//! without one, the same name, date of birth and phone) is refused with the
//! code of the existing enrolment. The record holds personal data; events
//! and the audit log carry only the code and version.

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use divoc_storage::rollout::RecordIndex;

use crate::error::{FieldError, RolloutError};
use crate::model::{Checks, Status};
use crate::service::{RecordKind, RolloutService, Stored};

/// Gender as DIVOC records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gender {
    /// Male.
    Male,
    /// Female.
    Female,
    /// Other.
    Other,
}

/// Where a person lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnrolmentAddress {
    /// First line.
    pub line1: String,
    /// Second line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// District.
    pub district: String,
    /// State.
    pub state: String,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pincode: Option<String>,
}

/// A pre-enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Enrolment {
    /// The enrolment code; given by the service when a record is created.
    #[serde(default)]
    pub code: String,
    /// The programme enrolled for.
    pub programme: String,
    /// Name.
    pub name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub dob: String,
    /// Gender.
    pub gender: Gender,
    /// Phone number (also how the code reaches the person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The identity document's number, as DIVOC's `identity` /
    /// `nationalId` (e.g. `did:in.gov.uidai.aadhaar:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Nationality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nationality: Option<String>,
    /// Where they live.
    pub address: EnrolmentAddress,
    /// Conditions the person declares (a programme's built-in rule may
    /// require one of its own list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// The facility they are enrolled at, when there is one (DIVOC's
    /// `enrollmentScopeId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<String>,
    /// Its state.
    #[serde(default)]
    pub status: Status,
    /// The person's key for duplicate detection, set by the service
    /// ([`RecordKind::prepare`]); never sent or stored in the record.
    #[serde(skip)]
    pub(crate) person: String,
    /// The key of the phone number in the programme (the members enrolled
    /// under one number), set like `person`; empty without a phone.
    #[serde(skip)]
    pub(crate) contact: String,
}

/// The last ten digits of a phone number: `+91 98…`, `+9198…` and `98…`
/// alike.
pub(crate) fn phone_digits(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    digits[digits.len().saturating_sub(10)..].to_owned()
}

/// Whether two phone numbers are the same number (their last ten digits).
pub fn same_phone(a: &str, b: &str) -> bool {
    let (a, b) = (phone_digits(a), phone_digits(b));
    !a.is_empty() && a == b
}

/// HMAC-SHA256 of `parts` under `key`, 128 bits in hex.
pub(crate) fn keyed(key: &[u8], parts: &[&str]) -> String {
    use hmac::Mac as _;
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(parts.join("\u{1f}").as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// The key linking the enrolments of one phone number in one programme.
pub(crate) fn contact_key(key: &[u8], programme: &str, phone: &str) -> String {
    let digits = phone_digits(phone);
    if digits.is_empty() {
        return String::new();
    }
    keyed(key, &["contact", programme, &digits])
}

/// Damm's quasigroup of order 10 (H. M. Damm, 2004): the check digit makes
/// the interim digit of the whole code 0.
const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

fn damm(digits: &str) -> Option<u8> {
    digits.bytes().try_fold(0u8, |interim, b| {
        b.is_ascii_digit()
            .then(|| DAMM[usize::from(interim)][usize::from(b - b'0')])
    })
}

/// A fresh enrolment code: 10 random digits and their Damm check digit.
pub fn new_code() -> String {
    // The thread's CSPRNG (ChaCha, seeded from the OS): the OS source itself
    // costs a system call per digit, which dominated a large upload.
    let mut rng = rand::thread_rng();
    let body: String = (0..10)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    let check = damm(&body).unwrap_or(0);
    format!("{body}{check}")
}

/// Whether `code` is 11 digits whose Damm check holds.
pub fn valid_code(code: &str) -> bool {
    code.len() == 11 && damm(code) == Some(0)
}

impl Enrolment {
    /// Every rule an enrolment must satisfy on its own (the code is checked
    /// once the service has given it).
    pub fn check(&self) -> Vec<FieldError> {
        let mut c = Checks::default();
        if !self.code.is_empty() {
            c.require(
                valid_code(&self.code),
                "code",
                "must be an enrolment code: 11 digits with a valid check digit",
            );
        }
        c.code("programme", &self.programme);
        c.text("name", &self.name, 200);
        if let Some(dob) = c.date("dob", &self.dob) {
            let year = dob.year();
            c.require(
                (1900..=2200).contains(&year),
                "dob",
                "must be a date of birth after 1900",
            );
        }
        c.phone("phone", self.phone.as_deref());
        c.email("email", self.email.as_deref());
        c.opt_text("identity", self.identity.as_deref(), 128);
        c.opt_text("nationality", self.nationality.as_deref(), 64);
        let a = &self.address;
        c.text("address.line1", &a.line1, 200);
        c.opt_text("address.line2", a.line2.as_deref(), 200);
        c.text("address.district", &a.district, 100);
        c.text("address.state", &a.state, 100);
        c.opt_text("address.pincode", a.pincode.as_deref(), 10);
        if let Some(f) = &self.facility {
            c.code("facility", f);
        }
        c.require(
            self.status != Status::Blocked,
            "status",
            "must be active or inactive",
        );
        c.0
    }

    /// What makes two enrolments the same person in the same programme,
    /// as HMAC-SHA256 (RFC 2104) under the service's person key: the same
    /// identity number; without one, the same name, year of birth and
    /// gender under the same phone number (a family enrolling its members
    /// under one number, as DIVOC's registration did). The link table holds
    /// no personal data, and a copy of the database alone does not let one
    /// test identity numbers against it (the key is kept outside the
    /// database, `<data-dir>/keys/person-key`).
    pub(crate) fn person_key(&self, key: &[u8]) -> String {
        match &self.identity {
            Some(id) => {
                let id = id.split_whitespace().collect::<String>().to_lowercase();
                keyed(key, &[&self.programme, "id", &id])
            }
            None => {
                let name = self
                    .name
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase();
                let year = self.dob.get(..4).unwrap_or_default();
                let gender = match self.gender {
                    Gender::Male => "m",
                    Gender::Female => "f",
                    Gender::Other => "o",
                };
                let phone = phone_digits(self.phone.as_deref().unwrap_or(""));
                keyed(key, &[&self.programme, "nyg", &name, year, gender, &phone])
            }
        }
    }
}

impl RecordKind for Enrolment {
    const KIND: &'static str = "enrolment";
    const PERSONAL: bool = true;
    fn prepare(&mut self, person_key: &[u8]) {
        self.person = self.person_key(person_key);
        self.contact = contact_key(
            person_key,
            &self.programme,
            self.phone.as_deref().unwrap_or(""),
        );
    }
    fn code(&self) -> &str {
        &self.code
    }
    fn check(&self) -> Vec<FieldError> {
        Enrolment::check(self)
    }
    fn check_on(&self, today: &str) -> Vec<FieldError> {
        // Both are ISO 8601 dates: they order as text. A malformed date
        // of birth is named by `check`.
        if self.dob.len() == 10 && self.dob.as_str() > today {
            vec![FieldError::new("dob", "must not be in the future")]
        } else {
            Vec::new()
        }
    }
    fn index(&self) -> RecordIndex {
        let mut links = vec![
            ("programme".to_owned(), self.programme.clone()),
            ("person".to_owned(), self.person.clone()),
        ];
        if let Some(f) = &self.facility {
            links.push(("facility".to_owned(), f.clone()));
        }
        if !self.contact.is_empty() {
            links.push(("contact".to_owned(), self.contact.clone()));
        }
        RecordIndex {
            status: self.status.as_str().to_owned(),
            district: Some(self.address.district.clone()),
            state: Some(self.address.state.clone()),
            kind_of_site: None,
            links,
        }
    }
    fn unique_links(&self) -> Vec<(String, String, &'static str)> {
        vec![(
            "person".to_owned(),
            self.person.clone(),
            "an enrolment of this person in this programme",
        )]
    }
    fn references(&self) -> Vec<(String, &'static str, String)> {
        let mut refs = vec![("programme".to_owned(), "programme", self.programme.clone())];
        if let Some(f) = &self.facility {
            refs.push(("facility".to_owned(), "facility", f.clone()));
        }
        refs
    }
}

impl RolloutService {
    /// The identity document of an enrolment, checked by the identity
    /// provider for its type (DIVOC's `did:<type>:<number>`; a bare number
    /// is a `national-id`).
    fn check_identity_of(&self, e: &Enrolment) -> Result<(), RolloutError> {
        let invalid = |m: String| RolloutError::Validation(vec![FieldError::new("identity", m)]);
        let Some(identity) = e.identity.as_deref() else {
            return Err(invalid(
                "this programme checks the identity document: give it".into(),
            ));
        };
        let (id_type, value) = match identity
            .strip_prefix("did:")
            .and_then(|r| r.rsplit_once(':'))
        {
            Some((t, v)) => (t, v),
            None => ("national-id", identity),
        };
        let Some(certificates) = self.identity_checks() else {
            return Err(RolloutError::Unavailable(
                "this programme checks identity documents, and no identity provider is wired"
                    .into(),
            ));
        };
        let claim = divoc_certificates::hooks::IdentityClaim {
            id_type,
            value,
            name: &e.name,
            dob: Some(&e.dob),
        };
        match certificates.check_identity(&claim) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(invalid(format!(
                "this programme checks identity documents, and no identity provider handles \
                 the type {id_type}"
            ))),
            Err(divoc_certificates::CertError::Validation(fields)) => {
                Err(RolloutError::Validation(
                    fields
                        .into_iter()
                        .map(|f| FieldError::new("identity", f.message))
                        .collect(),
                ))
            }
            Err(e) => Err(RolloutError::Certificate(e)),
        }
    }

    /// The enrolments, in every programme, under a phone number.
    pub fn enrolments_of_phone(&self, phone: &str) -> Result<Vec<Stored<Enrolment>>, RolloutError> {
        let mut out = Vec::new();
        let mut programmes = crate::ListFilter::default();
        loop {
            let page = self.list::<crate::model::Programme>(&programmes, crate::MAX_PAGE)?;
            for p in &page.items {
                let key = contact_key(&self.person_key()[..], &p.record.code, phone);
                if key.is_empty() {
                    continue;
                }
                let filter = crate::ListFilter {
                    link: Some(("contact".to_owned(), key)),
                    ..crate::ListFilter::default()
                };
                out.extend(self.list::<Enrolment>(&filter, crate::MAX_PAGE)?.items);
            }
            match page.next_cursor.and_then(|c| c.parse().ok()) {
                Some(after) => programmes.after = Some(after),
                None => break,
            }
        }
        Ok(out)
    }

    /// Enrols a person: gives the record a fresh code and stores it;
    /// [`RolloutError::Duplicate`] with the existing code if the person is
    /// enrolled in the programme (checked inside the write).
    pub fn enrol(
        &self,
        mut record: Enrolment,
        actor: &str,
    ) -> Result<Stored<Enrolment>, RolloutError> {
        if !record.code.is_empty() {
            return Err(RolloutError::Validation(vec![FieldError::new(
                "code",
                "is given by the service; leave it out",
            )]));
        }
        // The programme's policy, for a vaccination today (an unknown
        // programme is named by the create below).
        if let Ok(programme) = self.get::<crate::model::Programme>(&record.programme) {
            let today = divoc_time::Date::in_zone(self.clock().now_ms(), self.zone());
            self.check_eligible(&programme.record, &record, 1, today)?;
            if programme.record.identity_check {
                self.check_identity_of(&record)?;
            }
        }
        // 10 random digits: a collision is rare; the table refuses one. A
        // code an enrolment had before its deletion is not given again
        // (papers and certificates may still carry it).
        for _ in 0..5 {
            record.code = new_code();
            let code = record.code.clone();
            if self
                .db()
                .read(|r| divoc_storage::rollout::code_used(r, Enrolment::KIND, &code))?
            {
                continue;
            }
            let most = self.members_per_contact();
            let caps = match contact_key(
                &self.person_key()[..],
                &record.programme,
                record.phone.as_deref().unwrap_or(""),
            ) {
                key if key.is_empty() || most == 0 => Vec::new(),
                key => vec![(
                    "contact".to_owned(),
                    key,
                    most,
                    format!(
                        "{most} people are enrolled in this programme with this phone number: \
                         the most one number may enrol"
                    ),
                )],
            };
            match self.create_capped(record.clone(), actor, caps) {
                // A code taken meanwhile: draw another. The cap's refusal
                // is a conflict too, and final.
                Err(RolloutError::Conflict(m)) if m.contains("exists") => continue,
                other => return other,
            }
        }
        Err(RolloutError::Internal(
            "no free enrolment code after 5 tries".into(),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use divoc_storage::{Database, DbOptions};
    use divoc_time::ManualClock;
    use serde_json::json;

    #[test]
    fn codes_are_checksummed_and_catch_typos() {
        for _ in 0..200 {
            let code = new_code();
            assert!(valid_code(&code), "{code}");
            let digits: Vec<u8> = code.bytes().collect();
            for i in 0..11 {
                let mut typo = digits.clone();
                typo[i] = b'0' + (typo[i] - b'0' + 1) % 10;
                assert!(!valid_code(std::str::from_utf8(&typo).unwrap()));
                if i < 10 && digits[i] != digits[i + 1] {
                    let mut swapped = digits.clone();
                    swapped.swap(i, i + 1);
                    assert!(!valid_code(std::str::from_utf8(&swapped).unwrap()));
                }
            }
        }
        // Damm's published example: 572 has check digit 4.
        assert_eq!(damm("572"), Some(4));
        assert!(!valid_code("1234567890"));
    }

    fn enrolment(name: &str, identity: Option<&str>) -> Enrolment {
        serde_json::from_value(json!({
            "programme": "C19", "name": name, "dob": "1961-04-02", "gender": "Female",
            "phone": "+919876543210", "identity": identity,
            "address": {"line1": "12 MG Road", "district": "Bengaluru Urban", "state": "Karnataka"}
        }))
        .unwrap()
    }

    #[test]
    fn the_person_hash_is_keyed() {
        let e = enrolment("Asha Rao", Some("AADHAAR-1234"));
        let (a, b) = (e.person_key(&[1; 32]), e.person_key(&[2; 32]));
        assert_eq!(a.len(), 32);
        assert_ne!(a, b, "a copy of the database without the key tests nothing");
        // Spacing and case of the identity number do not make another person.
        for written in ["aadhaar - 1234", " AADHAAR-1234 "] {
            let same = enrolment("asha rao", Some(written));
            assert_eq!(same.person_key(&[1; 32]), a, "{written}");
        }
        assert_ne!(
            enrolment("Asha Rao", Some("AADHAAR-1235")).person_key(&[1; 32]),
            a
        );
        // Without an identity number: name, year of birth and gender under
        // one phone number.
        let key = |f: &dyn Fn(&mut Enrolment)| {
            let mut e = enrolment("Ravi Rao", None);
            f(&mut e);
            e.person_key(&[1; 32])
        };
        let ravi = key(&|_| {});
        assert_eq!(key(&|e| e.dob = "1961-12-31".into()), ravi, "same year");
        assert_eq!(key(&|e| e.phone = Some("98765 43210".into())), ravi);
        assert_ne!(key(&|e| e.dob = "1962-04-02".into()), ravi);
        assert_ne!(key(&|e| e.gender = Gender::Male), ravi);
        assert_ne!(key(&|e| e.phone = Some("+919876543211".into())), ravi);
        assert_ne!(key(&|e| e.name = "Ravi Raon".into()), ravi);
    }

    #[test]
    fn one_phone_number_enrols_at_most_four_people_in_a_programme() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let svc = RolloutService::new(db, ManualClock::new(1_700_000_000_000));
        crate::test_support::seed_c19(&svc);
        for name in ["A", "B", "C", "D"] {
            svc.enrol(enrolment(name, None), "ctl").unwrap();
        }
        let e = svc.enrol(enrolment("E", None), "ctl").unwrap_err();
        assert!(
            matches!(&e, RolloutError::Conflict(m) if m.contains("4 people")),
            "{e}"
        );
        let mut other = enrolment("E", None);
        other.phone = Some("+919876500000".into());
        svc.enrol(other, "ctl").unwrap();
        // Set to 0: no limit.
        let unlimited = svc.clone().with_members_per_contact(0);
        unlimited.enrol(enrolment("F", None), "ctl").unwrap();
    }

    #[test]
    fn a_person_is_enrolled_once_per_programme() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let svc = RolloutService::new(db, ManualClock::new(1_700_000_000_000));
        let e = svc.enrol(enrolment("Asha Rao", None), "ctl").unwrap_err();
        assert!(
            matches!(&e, RolloutError::Validation(f) if f[0].field == "programme"),
            "{e}"
        );
        crate::test_support::seed_c19(&svc);
        let first = svc
            .enrol(enrolment("Asha Rao", Some("AADHAAR-1234")), "ctl")
            .unwrap();
        assert!(valid_code(&first.record.code));
        assert!(!first.record.code.contains("9876543210"));
        // Same identity number, other spelling of the name: the same person.
        let e = svc
            .enrol(enrolment("ASHA  RAO", Some("aadhaar-1234")), "ctl")
            .unwrap_err();
        assert!(
            matches!(&e, RolloutError::Duplicate { existing, .. } if *existing == first.record.code),
            "{e}"
        );
        // Without an identity number: name, date of birth and phone.
        let second = svc.enrol(enrolment("Ravi Rao", None), "ctl").unwrap();
        assert_ne!(second.record.code, first.record.code);
        assert!(matches!(
            svc.enrol(enrolment("Ravi Rao", None), "ctl"),
            Err(RolloutError::Duplicate { .. })
        ));
        let mut coded = enrolment("Mohan", None);
        coded.code = new_code();
        assert!(matches!(
            svc.enrol(coded, "ctl"),
            Err(RolloutError::Validation(_))
        ));
        let mut bad = enrolment("", None);
        bad.dob = "1961-02-30".into();
        bad.phone = Some("x".into());
        let RolloutError::Validation(f) = svc.enrol(bad, "ctl").unwrap_err() else {
            panic!()
        };
        let fields: Vec<&str> = f.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "dob", "phone"]);
        // The service's clock is 2023-11-14: born the next day is refused,
        // that day is not.
        let mut unborn = enrolment("Tara Rao", None);
        unborn.dob = "2023-11-15".into();
        let RolloutError::Validation(f) = svc.enrol(unborn.clone(), "ctl").unwrap_err() else {
            panic!()
        };
        assert_eq!((f[0].field.as_str(), f.len()), ("dob", 1), "{f:?}");
        unborn.dob = "2023-11-14".into();
        svc.enrol(unborn, "ctl").unwrap();
    }
}
