//! DIVOC's certify route (`POST /divoc/api/v1/certify`) names no enrolment
//! the registry must know: a ministry's existing integrations keep sending
//! it. When the certificate's programme is one of the registry's, the same
//! rules hold as for a vaccination recorded here: the programme's policy
//! decides on the vaccination date, and a later dose waits for its
//! interval since the previous one (found among the certificates already
//! issued for the pre-enrolment code).

use divoc_certificates::request::IssueRequest;
use divoc_certificates::{CertificateService, Status as CertificateStatus};
use divoc_time::Date;

use crate::enrolment::{Enrolment, EnrolmentAddress, Gender};
use crate::error::{FieldError, RolloutError};
use crate::model::{Programme, Status, Vaccine};
use crate::service::RolloutService;

impl RolloutService {
    /// The rollout's checks of a certificate asked for through DIVOC's
    /// certify route; `Ok` when its programme is not the registry's.
    /// Refusals name the payload's fields (`vaccination.date`).
    pub fn check_certify(
        &self,
        certificates: &CertificateService,
        req: &IssueRequest,
    ) -> Result<(), RolloutError> {
        let programme = match self.get::<Programme>(&req.vaccination.program) {
            Ok(p) => p.record,
            Err(RolloutError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        // Validated already by the pipeline; a date it cannot read here is
        // refused, not let through unchecked.
        let Some(given) = divoc_time::parse_instant(&req.vaccination.date, self.zone()) else {
            return Err(RolloutError::Validation(vec![FieldError::new(
                "vaccination.date",
                "must be a date-time",
            )]));
        };
        // The vaccine, by the name (or code) the payload gives: one the
        // programme offers, whose intervals the dose must keep.
        let vaccine = programme
            .vaccines
            .iter()
            .filter_map(|v| self.get::<Vaccine>(v).ok())
            .map(|v| v.record)
            .find(|v| v.name == req.vaccination.vaccine || v.code == req.vaccination.vaccine)
            .ok_or_else(|| {
                RolloutError::Validation(vec![FieldError::new(
                    "vaccination.name",
                    format!("programme {} does not offer this vaccine", programme.code),
                )])
            })?;
        let date = Date::in_zone(given, self.zone());
        let dose = req.vaccination.dose;
        let code = &req.pre_enrollment_code;
        let previous = if code.is_empty() {
            Vec::new()
        } else {
            certificates
                .by_pre_enrollment(code)
                .map_err(RolloutError::Certificate)?
        };
        // The doses certified before this one: (vaccine, dose, date).
        let earlier: Vec<(String, u32, Date)> = previous
            .iter()
            .filter(|c| {
                c.program == programme.code
                    && c.dose < dose
                    && c.status != CertificateStatus::Revoked
            })
            .map(|c| {
                let v = &c.credential["credentialSubject"]["vaccination"];
                // Our own credentials carry the date; the issue time stands
                // in if one did not, so no earlier dose is left out.
                let ms = v["date"]
                    .as_str()
                    .and_then(|d| divoc_time::parse_instant(d, &divoc_time::Zone::utc()))
                    .unwrap_or(c.issued_at_ms);
                let vaccine = v["vaccine"].as_str().unwrap_or_default().to_owned();
                (vaccine, c.dose, Date::in_zone(ms, self.zone()))
            })
            .collect();
        let last = earlier.iter().map(|(_, d, on)| (*d, *on)).max();
        if let Some((_, last_date)) = last {
            if let Some(earliest) =
                crate::vaccination::earliest_after(&vaccine, dose, &last_date.to_string())
            {
                if date < earliest {
                    return Err(RolloutError::Validation(vec![FieldError::new(
                        "vaccination.date",
                        format!("dose {dose} is possible from {earliest}"),
                    )]));
                }
            }
        }
        let person = match self.get::<Enrolment>(code) {
            Ok(e) if e.record.programme == programme.code => e.record,
            _ => as_enrolment(req, &programme.code),
        };
        self.check_eligible_with(&programme, &person, dose, date, earlier)
    }
}

/// The person a DIVOC certify item describes, as an enrolment (for the
/// policy's question only; nothing is stored).
fn as_enrolment(req: &IssueRequest, programme: &str) -> Enrolment {
    let r = &req.recipient;
    let gender = match r.gender.to_ascii_lowercase().chars().next() {
        Some('m') => Gender::Male,
        Some('f') => Gender::Female,
        _ => Gender::Other,
    };
    let phone = r
        .contacts
        .iter()
        .find_map(|c| c.strip_prefix("tel:"))
        .map(str::to_owned);
    Enrolment {
        code: req.pre_enrollment_code.clone(),
        programme: programme.to_owned(),
        name: r.name.clone(),
        dob: r.dob.clone().unwrap_or_default(),
        gender,
        phone,
        email: None,
        identity: Some(r.identity.value.clone()).filter(|v| !v.is_empty()),
        nationality: Some(r.nationality.clone()).filter(|n| !n.is_empty()),
        address: EnrolmentAddress {
            line1: r.address.line1.clone(),
            line2: None,
            district: r.address.district.clone(),
            state: r.address.state.clone(),
            pincode: None,
        },
        conditions: Vec::new(),
        facility: req.facility.id.clone(),
        status: Status::Active,
        person: String::new(),
        contact: String::new(),
    }
}
