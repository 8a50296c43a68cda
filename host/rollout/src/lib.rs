//! `divoc-rollout`: the rollout module's programme registry — vaccines,
//! programmes, facilities and vaccinators.
//!
//! - [`model`]: the records and the rules each satisfies on its own;
//! - [`activation`]: a controller's bulk activation of facilities for a
//!   programme, with their daily rate;
//! - [`enrolment`]: pre-enrolments with checksummed codes, one per person
//!   and programme;
//! - [`upload`]: CSV uploads in DIVOC's column sets, with a history and
//!   the refused rows;
//! - [`service`]: versioned create / replace / delete / read / list, with
//!   references checked inside the write and an audit record and an event
//!   for every change in the same transaction.
//!
//! The SQL lives in `divoc_storage::rollout`; the routes in `divoc-api`.

#![deny(missing_docs)]

pub mod activation;
pub mod appointments;
pub mod compat;
pub mod eligibility;
pub mod enrolment;
pub mod error;
pub mod model;
pub mod otp;
pub mod service;
pub mod sync;
pub mod upload;
pub mod vaccination;

pub use activation::{Activation, ActivationReport, FacilityFilter};
pub use appointments::{Appointment, Booking, BookingRules, DayEntry, Reschedule, Slot};
pub use divoc_storage::rollout::ListFilter;
pub use eligibility::{Decision, EligibilityQuery, PolicyPlugins};
pub use enrolment::Enrolment;
pub use error::{FieldError, RolloutError};
pub use model::{Facility, Programme, Status, Vaccinator, Vaccine};
pub use otp::OtpSent;
pub use service::{Page, RecordKind, RolloutService, Stored, Version, MAX_PAGE};
pub use sync::{SyncAnswer, SyncItem, SyncRequest, SyncResult};
pub use upload::{UploadKind, UploadOptions, UploadReport};
pub use vaccination::{
    DistrictProgress, NextDose, Progress, RateMode, RecordingRules, Vaccinate, Vaccinated,
};

/// What the crate's tests share.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_support {
    use crate::{Programme, RolloutService, Vaccine};

    /// A one-dose vaccine `COVAX` and the programme `C19` offering it.
    pub fn seed_c19(svc: &RolloutService) {
        let vaccine: Vaccine = serde_json::from_value(serde_json::json!({
            "code": "COVAX", "name": "CoVax", "manufacturer": "M", "mode": "injection", "doses": 1
        }))
        .unwrap();
        svc.create(vaccine, "ctl").unwrap();
        let programme: Programme = serde_json::from_value(serde_json::json!({
            "code": "C19", "name": "COVID-19", "startDate": "2021-01-16", "vaccines": ["COVAX"]
        }))
        .unwrap();
        svc.create(programme, "ctl").unwrap();
    }
}
