//! Finding certificates by who they are for, and acting on a recipient's
//! doses: the operations behind DIVOC's pre-enrolment-code routes and the
//! recipient lookups.
//!
//! A pre-enrolment code can have several certificates: one per dose, each
//! with versions (corrections). "Current" means the newest version of each
//! (program, dose); older versions are revoked as `superseded`.

use std::collections::BTreeMap;

use divoc_storage::certificates::{CertStatus, CertificateRecord};
use serde_json::Value;

use crate::credential::certificate_id_of;
use crate::dates;
use crate::error::CertError;
use crate::request::IssueRequest;
use crate::service::{CertificateService, Issued};

/// Keeps the newest version of each (program, dose), ordered by program
/// then dose.
pub fn current_versions(records: Vec<CertificateRecord>) -> Vec<CertificateRecord> {
    let mut newest: BTreeMap<(String, u32), CertificateRecord> = BTreeMap::new();
    for r in records {
        let key = (r.program.clone(), r.dose);
        match newest.get(&key) {
            Some(have) if have.version >= r.version => {}
            _ => {
                newest.insert(key, r);
            }
        }
    }
    newest.into_values().collect()
}

impl CertificateService {
    /// The current certificate of every dose of a pre-enrolment code.
    pub fn current_by_pre_enrollment(
        &self,
        code: &str,
    ) -> Result<Vec<CertificateRecord>, CertError> {
        Ok(current_versions(self.by_pre_enrollment(code)?))
    }

    /// The current certificates of the recipient with this contact and
    /// date of birth.
    pub fn current_by_contact(
        &self,
        contact: &str,
        dob: &str,
    ) -> Result<Vec<CertificateRecord>, CertError> {
        Ok(current_versions(self.by_contact(contact, dob)?))
    }

    /// Whether `record` was issued to someone reachable at one of
    /// `contacts`: the stored lookup hashes are keyed on contact + date of
    /// birth, and the date of birth is in the credential.
    pub fn belongs_to(
        &self,
        record: &CertificateRecord,
        contacts: &[String],
    ) -> Result<bool, CertError> {
        let Some(dob) = record
            .credential
            .pointer("/credentialSubject/birthDate")
            .and_then(Value::as_str)
        else {
            return Ok(false);
        };
        for c in contacts {
            if self
                .by_contact(c, dob)?
                .iter()
                .any(|r| r.recipient_ref == record.recipient_ref && r.program == record.program)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Revokes the current certificates of a pre-enrolment code: the given
    /// doses, or every dose when `doses` is `None`. Certificates already
    /// revoked are left as they are. Returns the records changed.
    /// `NotFound` when the code has no certificate, or a named dose none.
    pub fn revoke_doses(
        &self,
        code: &str,
        doses: Option<&[u32]>,
        reason: &str,
        actor: &str,
    ) -> Result<Vec<CertificateRecord>, CertError> {
        let current = self.current_by_pre_enrollment(code)?;
        if current.is_empty() {
            return Err(CertError::NotFound(
                "certificates for that pre-enrolment code".into(),
            ));
        }
        if let Some(doses) = doses {
            if let Some(missing) = doses
                .iter()
                .find(|d| !current.iter().any(|r| r.dose == **d))
            {
                return Err(CertError::NotFound(format!(
                    "dose {missing} for that pre-enrolment code"
                )));
            }
        }
        let mut changed = Vec::new();
        for r in current {
            if doses.is_some_and(|d| !d.contains(&r.dose)) || r.status == CertStatus::Revoked {
                continue;
            }
            changed.push(self.revoke(&r.id, reason, actor)?);
        }
        Ok(changed)
    }

    /// Corrects the current certificate of the request's program,
    /// pre-enrolment code and dose (DIVOC's `PUT /v1/certificate`, which
    /// names no certificate id).
    pub fn correct_dose(&self, req: &IssueRequest, actor: &str) -> Result<Issued, CertError> {
        let current = self
            .current_by_pre_enrollment(&req.pre_enrollment_code)?
            .into_iter()
            .find(|r| r.program == req.vaccination.program && r.dose == req.vaccination.dose)
            .ok_or_else(|| {
                CertError::NotFound("a certificate for that pre-enrolment code and dose".into())
            })?;
        self.correct(&current.id, req, actor)
    }

    /// Whether the certificate a presented credential names is revoked
    /// here (DIVOC's `certificate/revoked` check). `None` when this service
    /// holds no such certificate.
    pub fn revocation_of(
        &self,
        credential: &Value,
    ) -> Result<Option<CertificateRecord>, CertError> {
        let Some(id) = certificate_id_of(credential) else {
            return Ok(None);
        };
        match self.get(id) {
            Ok(r) => Ok(Some(r)),
            Err(CertError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether a record counts as revoked now (suspensions are not
/// revocations).
pub fn is_revoked(record: &CertificateRecord) -> bool {
    record.effective_status(dates::now_ms()) == CertStatus::Revoked
}
