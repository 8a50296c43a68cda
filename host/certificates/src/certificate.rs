//! A certificate as the module answers it, and the rules of its status:
//! what a stored status means at a given time, and which changes are
//! allowed. Storage keeps rows; these rules exist here once.

use divoc_storage::certificates::{CertStatus, CertificateRecord, StatusRow};
use serde::Serialize;
use serde_json::Value;

/// Whether a certificate is in force, as of a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// In force.
    Valid,
    /// Permanently withdrawn (including superseded by a correction).
    Revoked,
    /// Temporarily withdrawn.
    Suspended,
}

impl Status {
    /// `valid`, `revoked` or `suspended`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Revoked => "revoked",
            Status::Suspended => "suspended",
        }
    }
}

/// The status rule: a suspension whose end has passed reads as valid at
/// once, without a job having to lift it; everything else is as stored.
pub fn effective_status(
    stored: CertStatus,
    suspended_until_ms: Option<i64>,
    now_ms: i64,
) -> Status {
    match (stored, suspended_until_ms) {
        (CertStatus::Suspended, Some(until)) if until <= now_ms => Status::Valid,
        (CertStatus::Suspended, _) => Status::Suspended,
        (CertStatus::Revoked, _) => Status::Revoked,
        (CertStatus::Valid, _) => Status::Valid,
    }
}

/// The status of a stored status row at `now_ms`.
pub(crate) fn row_status(row: &StatusRow, now_ms: i64) -> Status {
    effective_status(row.status, row.suspended_until_ms, now_ms)
}

/// One stored certificate (one version of one dose), read at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    /// Certificate id.
    pub id: String,
    /// Program (`type:<name>` for operator-defined credential types).
    pub program: String,
    /// Recipient reference (DIVOC's pre-enrolment code).
    pub recipient_ref: String,
    /// Dose number.
    pub dose: u32,
    /// Version: 1 for the original, +1 per correction.
    pub version: u32,
    /// The version this one corrects.
    pub previous_id: Option<String>,
    /// Status at the time it was read.
    pub status: Status,
    /// End of a suspension (ms since the epoch); `None` = until reinstated.
    pub suspended_until_ms: Option<i64>,
    /// Why it was revoked (`superseded` for corrected versions).
    pub revoked_reason: Option<String>,
    /// Its global Bitstring Status List index (list × list size + slot).
    pub status_index: u64,
    /// Issuance time, ms since the epoch.
    pub issued_at_ms: i64,
    /// Last status change, ms since the epoch.
    pub updated_at_ms: i64,
    /// Issuing facility.
    pub facility_id: Option<String>,
    /// The signed credential.
    pub credential: Value,
}

impl Certificate {
    /// The certificate a stored row describes, as of `now_ms`.
    pub(crate) fn from_record(r: CertificateRecord, now_ms: i64) -> Certificate {
        Certificate {
            status: effective_status(r.status, r.suspended_until_ms, now_ms),
            suspended_until_ms: r
                .suspended_until_ms
                .filter(|_| r.status == CertStatus::Suspended),
            id: r.id,
            program: r.program,
            recipient_ref: r.recipient_ref,
            dose: r.dose,
            version: r.version,
            previous_id: r.previous_id,
            revoked_reason: r.revoked_reason,
            status_index: r.status_index,
            issued_at_ms: r.issued_at_ms,
            updated_at_ms: r.updated_at_ms,
            facility_id: r.facility_id,
            credential: r.credential,
        }
    }

    /// Whether it is revoked (suspensions are not revocations).
    pub fn is_revoked(&self) -> bool {
        self.status == Status::Revoked
    }
}

/// A requested status change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StatusChange {
    /// Revoke permanently.
    Revoke {
        /// Why.
        reason: String,
    },
    /// Suspend until a time (ms) or until reinstated.
    Suspend {
        /// End of the suspension.
        until_ms: Option<i64>,
    },
    /// Lift a suspension.
    Reinstate,
}

/// What a change should write, or why it may not happen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Write this status.
    Write {
        /// The stored status.
        status: CertStatus,
        /// End of a suspension.
        until_ms: Option<i64>,
        /// Why, for revocations.
        reason: Option<String>,
        /// Audit action and event kind.
        action: &'static str,
        /// Audit and event detail.
        detail: Value,
    },
    /// Nothing to write (revoking twice); answer the record as it is.
    Unchanged,
    /// Not allowed in the current state; why, for people.
    NotAllowed(String),
}

/// The rules of status changes: revocation is final (revoking twice is a
/// no-op), only a suspended certificate can be reinstated.
pub(crate) fn decide(id: &str, current: Status, change: &StatusChange) -> Decision {
    match change {
        StatusChange::Revoke { .. } if current == Status::Revoked => Decision::Unchanged,
        _ if current == Status::Revoked => {
            Decision::NotAllowed("certificate is revoked; revocation is final".into())
        }
        StatusChange::Revoke { reason } => Decision::Write {
            status: CertStatus::Revoked,
            until_ms: None,
            reason: Some(reason.clone()),
            action: "certificate.revoked",
            detail: serde_json::json!({ "id": id, "reason": reason }),
        },
        StatusChange::Suspend { until_ms } => Decision::Write {
            status: CertStatus::Suspended,
            until_ms: *until_ms,
            reason: None,
            action: "certificate.suspended",
            detail: serde_json::json!({ "id": id, "until_ms": until_ms }),
        },
        StatusChange::Reinstate if current != Status::Suspended => {
            Decision::NotAllowed("certificate is not suspended".into())
        }
        StatusChange::Reinstate => Decision::Write {
            status: CertStatus::Valid,
            until_ms: None,
            reason: None,
            action: "certificate.reinstated",
            detail: serde_json::json!({ "id": id }),
        },
    }
}

/// Whether `old` (the version being corrected) may be corrected into a
/// new version for `(program, recipient_ref, dose)`: only the current,
/// unrevoked version, keeping its dose, at most `max_corrections` times.
pub(crate) fn may_correct(
    old: &Certificate,
    program: &str,
    recipient_ref: &str,
    dose: u32,
    max_corrections: u32,
) -> Result<(), String> {
    if old.status == Status::Revoked {
        return Err(format!(
            "certificate is revoked ({}); only the current version can be corrected",
            old.revoked_reason.as_deref().unwrap_or("no reason")
        ));
    }
    if (old.program.as_str(), old.recipient_ref.as_str(), old.dose)
        != (program, recipient_ref, dose)
    {
        return Err("a correction keeps the program, pre-enrolment code and dose".into());
    }
    if old.version > max_corrections {
        return Err(format!(
            "the limit of {max_corrections} corrections is reached"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_suspension_lifts_at_its_end() {
        let s = |until, now| effective_status(CertStatus::Suspended, until, now);
        assert_eq!(s(Some(100), 99), Status::Suspended);
        assert_eq!(s(Some(100), 100), Status::Valid);
        assert_eq!(s(None, i64::MAX), Status::Suspended);
        assert_eq!(
            effective_status(CertStatus::Revoked, Some(1), 5),
            Status::Revoked
        );
        assert_eq!(effective_status(CertStatus::Valid, None, 5), Status::Valid);
    }

    #[test]
    fn revocation_is_final_and_only_suspensions_are_reinstated() {
        let revoke = StatusChange::Revoke { reason: "x".into() };
        assert_eq!(decide("A", Status::Revoked, &revoke), Decision::Unchanged);
        assert!(matches!(
            decide("A", Status::Revoked, &StatusChange::Reinstate),
            Decision::NotAllowed(_)
        ));
        assert!(matches!(
            decide(
                "A",
                Status::Revoked,
                &StatusChange::Suspend { until_ms: None }
            ),
            Decision::NotAllowed(_)
        ));
        assert!(matches!(
            decide("A", Status::Valid, &StatusChange::Reinstate),
            Decision::NotAllowed(_)
        ));
        assert!(matches!(
            decide("A", Status::Suspended, &StatusChange::Reinstate),
            Decision::Write {
                status: CertStatus::Valid,
                ..
            }
        ));
        assert!(matches!(
            decide("A", Status::Valid, &revoke),
            Decision::Write {
                status: CertStatus::Revoked,
                ..
            }
        ));
    }
}
