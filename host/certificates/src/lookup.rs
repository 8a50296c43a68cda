//! Finding certificates by who they are for, and acting on a recipient's
//! doses: the operations behind DIVOC's pre-enrolment-code routes and the
//! recipient lookups.
//!
//! A pre-enrolment code can have several certificates: one per dose, each
//! with versions (corrections). "Current" means the newest version of each
//! (program, dose); older versions are revoked as `superseded`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::certificate::Certificate;
use crate::credential::certificate_id_of;
use crate::error::CertError;
use crate::request::IssueRequest;
use crate::service::{CertificateService, Issued};

/// Which doses of a pre-enrolment code a revocation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoseSelection<'a> {
    /// Every dose.
    All,
    /// These doses: consecutive, ending at the latest.
    Doses(&'a [u32]),
}

/// DIVOC's rule for revoking named doses: at least one, each once,
/// consecutive, and the last one the latest dose issued.
pub fn check_dose_selection(doses: &[u32], latest: u32) -> Result<(), CertError> {
    let mut sorted = doses.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.is_empty() || sorted.len() != doses.len() {
        return Err(CertError::field("doses", "name each dose once"));
    }
    if sorted.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err(CertError::field("doses", "doses must be consecutive"));
    }
    if sorted.last() != Some(&latest) {
        return Err(CertError::field(
            "doses",
            format!("doses must include the latest dose issued ({latest})"),
        ));
    }
    Ok(())
}

/// Keeps the newest version of each (program, dose), ordered by program
/// then dose.
pub fn current_versions(records: Vec<Certificate>) -> Vec<Certificate> {
    let mut newest: BTreeMap<(String, u32), Certificate> = BTreeMap::new();
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
    pub fn current_by_pre_enrollment(&self, code: &str) -> Result<Vec<Certificate>, CertError> {
        Ok(current_versions(self.by_pre_enrollment(code)?))
    }

    /// The current certificates of the recipient with this contact and
    /// date of birth.
    pub fn current_by_contact(
        &self,
        contact: &str,
        dob: &str,
    ) -> Result<Vec<Certificate>, CertError> {
        Ok(current_versions(self.by_contact(contact, dob)?))
    }

    /// Whether `record` was issued to someone reachable at one of
    /// `contacts`: the stored lookup hashes are keyed on contact + date of
    /// birth, and the date of birth is in the credential.
    pub fn belongs_to(&self, record: &Certificate, contacts: &[String]) -> Result<bool, CertError> {
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

    /// Revokes the current certificates of a pre-enrolment code: every
    /// dose, or the doses named. Named doses must be consecutive and end
    /// at the latest dose issued (DIVOC's rule: a later dose cannot stand
    /// on a revoked earlier one). Certificates already revoked are left as
    /// they are. Returns the certificates changed. `NotFound` when the code
    /// has no certificate, or a named dose none.
    pub fn revoke_doses(
        &self,
        code: &str,
        selection: DoseSelection<'_>,
        reason: &str,
        actor: &str,
    ) -> Result<Vec<Certificate>, CertError> {
        let current = self.current_by_pre_enrollment(code)?;
        let Some(latest) = current.iter().map(|r| r.dose).max() else {
            return Err(CertError::NotFound(
                "certificates for that pre-enrolment code".into(),
            ));
        };
        if let DoseSelection::Doses(doses) = selection {
            check_dose_selection(doses, latest)?;
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
            let named = match selection {
                DoseSelection::All => true,
                DoseSelection::Doses(d) => d.contains(&r.dose),
            };
            if !named || r.is_revoked() {
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
    pub fn revocation_of(&self, credential: &Value) -> Result<Option<Certificate>, CertError> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn named_doses_are_consecutive_and_end_at_the_latest() {
        assert!(check_dose_selection(&[3], 3).is_ok());
        assert!(check_dose_selection(&[2, 3], 3).is_ok());
        assert!(check_dose_selection(&[3, 2, 1], 3).is_ok());
        for bad in [&[][..], &[1, 3], &[1, 2], &[2, 2, 3], &[4]] {
            let e = check_dose_selection(bad, 3).unwrap_err();
            assert!(
                matches!(&e, CertError::Validation(f) if f[0].field == "doses"),
                "{bad:?}: {e:?}"
            );
        }
    }
}
