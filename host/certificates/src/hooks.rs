//! Checks the issue pipeline asks for before it signs: the recipient's
//! identity and, for programs that charge, the payment.
//!
//! The certificate module does not know the plugin runtime; the host
//! implements [`IssueHooks`] over its identity and payment plugins and hands
//! it to [`CertificateService::open_with_hooks`](crate::CertificateService::open_with_hooks).
//! [`NoHooks`] checks nothing.
//!
//! The service turns each answer into the request's outcome
//! ([`identity_outcome`], [`payment_outcome`]): a rejection is a validation
//! error naming the request field, a check that could not be made is
//! [`CertError::Unavailable`] (HTTP 503, retryable, nothing stored). There is
//! no "fail open": an error never lets a certificate through unchecked.

use serde::Serialize;

use crate::error::CertError;
use crate::request::Payment;

/// The identity a request claims, as the identity check sees it.
#[derive(Debug, Clone, Copy)]
pub struct IdentityClaim<'a> {
    /// Identity scheme (`recipient.identity.type`).
    pub id_type: &'a str,
    /// Document number as sent (`recipient.identity.value`).
    pub value: &'a str,
    /// Recipient name, for systems that match it.
    pub name: &'a str,
    /// Recipient date of birth, for systems that match it.
    pub dob: Option<&'a str>,
}

/// What the identity check said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityCheck {
    /// No check is configured for this identity type: issue as sent.
    NotConfigured,
    /// Valid; the credential carries the canonical form of the number.
    Verified {
        /// The number as the identity system writes it.
        normalized_id: String,
    },
    /// Not valid; the reason is safe to show to the user.
    Rejected {
        /// Why, without echoing the number.
        reason: String,
    },
    /// The identity system wants an interactive step (e.g. a one-time
    /// password to the recipient's phone), which a server-to-server issue
    /// call cannot give.
    ChallengeRequired,
}

/// The payment question for one request.
#[derive(Debug, Clone, Copy)]
pub struct PaymentClaim<'a> {
    /// Idempotency reference chosen by the service: the same program,
    /// pre-enrolment code and dose always give the same reference, so a
    /// retried or corrected issue never charges twice. It carries no
    /// personal data (a keyed hash).
    pub reference: &'a str,
    /// Program of the vaccination (decides whether payment is required).
    pub program: &'a str,
    /// The payment the request carries, if any.
    pub payment: Option<&'a Payment>,
}

/// A payment authorisation, recorded in the audit log with the certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentReceipt {
    /// The payment plugin that authorised it.
    pub provider: String,
    /// The provider's reference, for capture and refund.
    pub provider_reference: String,
    /// `authorized` or `captured`.
    pub status: String,
    /// Payment mode, e.g. `voucher`.
    pub mode: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Amount in the currency's minor unit.
    pub amount_minor_units: i64,
}

/// What the payment check said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentCheck {
    /// The program takes no payment.
    NotRequired,
    /// Authorised.
    Authorized(PaymentReceipt),
    /// Missing, or refused by the provider; names the request field.
    Rejected {
        /// `payment`, `payment.mode` or `payment.reference`.
        field: String,
        /// Why, safe to show to the user.
        reason: String,
    },
}

/// A check that could not be made. Never a reason to skip the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The plugin is missing, disabled, faulted, timed out or reported its
    /// own dependency unavailable. Retryable.
    #[error("{0}")]
    Unavailable(String),
}

/// Checks run by [`CertificateService`](crate::CertificateService) while it
/// prepares a certificate, before signing. Implementations may block (they
/// call plugins) unless [`may_block`](Self::may_block) says otherwise.
pub trait IssueHooks: Send + Sync {
    /// Checks the recipient's identity claim.
    fn check_identity(&self, claim: &IdentityClaim<'_>) -> Result<IdentityCheck, HookError>;

    /// Decides whether the program requires payment and, if so, authorises
    /// the request's payment.
    fn check_payment(&self, claim: &PaymentClaim<'_>) -> Result<PaymentCheck, HookError>;

    /// Whether a check of a request with this identity type and program
    /// may block (call a plugin, which may wait on the network). When it
    /// cannot, the service may issue on an async runtime's thread
    /// ([`CertificateService::issue_async`](crate::CertificateService::issue_async))
    /// instead of handing the request to a blocking thread. Asked per
    /// request, so plugins loaded later count, and a paid program does not
    /// send free ones to blocking threads.
    fn may_block(&self, _id_type: &str, _program: &str) -> bool {
        true
    }

    /// Whether `program`'s certificates are charged for (a price is
    /// configured): a registry programme that says it is paid is refused
    /// when nothing would charge.
    fn charges(&self, _program: &str) -> bool {
        false
    }
}

/// Checks nothing: every identity is unchecked, no program charges.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl IssueHooks for NoHooks {
    fn check_identity(&self, _: &IdentityClaim<'_>) -> Result<IdentityCheck, HookError> {
        Ok(IdentityCheck::NotConfigured)
    }

    fn check_payment(&self, _: &PaymentClaim<'_>) -> Result<PaymentCheck, HookError> {
        Ok(PaymentCheck::NotRequired)
    }

    fn may_block(&self, _id_type: &str, _program: &str) -> bool {
        false
    }
}

impl From<HookError> for CertError {
    fn from(e: HookError) -> CertError {
        match e {
            HookError::Unavailable(m) => CertError::Unavailable(m),
        }
    }
}

/// The longest normalised id accepted from an identity provider (the
/// request's own limit for the field).
const MAX_ID_LEN: usize = 256;

/// The identity check's answer as the request's outcome: `Ok(Some(id))`
/// replaces the number in the credential, `Ok(None)` keeps it as sent.
pub fn identity_outcome(
    check: Result<IdentityCheck, HookError>,
    id_type: &str,
) -> Result<Option<String>, CertError> {
    match check? {
        IdentityCheck::NotConfigured => Ok(None),
        IdentityCheck::Verified { normalized_id } => {
            // A provider that answers "verified" with an unusable id is
            // broken; issuing with it would put garbage into a signed
            // credential, so this is a failed check, not a pass.
            if normalized_id.trim().is_empty()
                || normalized_id.chars().count() > MAX_ID_LEN
                || normalized_id.chars().any(char::is_control)
            {
                return Err(CertError::Unavailable(format!(
                    "the identity provider for `{id_type}` returned an unusable normalised id"
                )));
            }
            Ok(Some(normalized_id))
        }
        IdentityCheck::Rejected { reason } => {
            Err(CertError::field("recipient.identity.value", reason))
        }
        IdentityCheck::ChallengeRequired => Err(CertError::field(
            "recipient.identity.type",
            format!(
                "identity type `{id_type}` needs an interactive check (such as a one-time \
                 password sent to the recipient) and cannot be verified in a server-to-server \
                 issue call; use another identity document"
            ),
        )),
    }
}

/// The payment check's answer as the request's outcome: the receipt to
/// record, if a payment was authorised.
pub fn payment_outcome(
    check: Result<PaymentCheck, HookError>,
) -> Result<Option<PaymentReceipt>, CertError> {
    match check? {
        PaymentCheck::NotRequired => Ok(None),
        PaymentCheck::Authorized(r) => Ok(Some(r)),
        PaymentCheck::Rejected { field, reason } => Err(CertError::field(field, reason)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn field_of(e: CertError) -> (String, String) {
        match e {
            CertError::Validation(f) => (f[0].field.clone(), f[0].message.clone()),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn identity_answers_map_to_outcomes() {
        assert_eq!(
            identity_outcome(Ok(IdentityCheck::NotConfigured), "t").unwrap(),
            None
        );
        assert_eq!(
            identity_outcome(
                Ok(IdentityCheck::Verified {
                    normalized_id: "123".into()
                }),
                "t"
            )
            .unwrap(),
            Some("123".into())
        );
        let (field, message) = field_of(
            identity_outcome(
                Ok(IdentityCheck::Rejected {
                    reason: "check digit".into(),
                }),
                "t",
            )
            .unwrap_err(),
        );
        assert_eq!(field, "recipient.identity.value");
        assert_eq!(message, "check digit");
        let (field, message) =
            field_of(identity_outcome(Ok(IdentityCheck::ChallengeRequired), "otp-id").unwrap_err());
        assert_eq!(field, "recipient.identity.type");
        assert!(message.contains("`otp-id`") && message.contains("interactive"));
    }

    #[test]
    fn an_unavailable_or_broken_check_is_a_503_never_a_pass() {
        let e = identity_outcome(Err(HookError::Unavailable("down".into())), "t").unwrap_err();
        assert_eq!(e.http_status(), 503);
        for bad in ["", "  ", "a\u{0}b"] {
            let e = identity_outcome(
                Ok(IdentityCheck::Verified {
                    normalized_id: bad.into(),
                }),
                "t",
            )
            .unwrap_err();
            assert_eq!(e.http_status(), 503, "{bad:?}");
        }
        let e = payment_outcome(Err(HookError::Unavailable("timeout".into()))).unwrap_err();
        assert_eq!(e.http_status(), 503);
    }

    #[test]
    fn payment_answers_map_to_outcomes() {
        assert_eq!(
            payment_outcome(Ok(PaymentCheck::NotRequired)).unwrap(),
            None
        );
        let receipt = PaymentReceipt {
            provider: "pay".into(),
            provider_reference: "r".into(),
            status: "authorized".into(),
            mode: "voucher".into(),
            currency: "INR".into(),
            amount_minor_units: 100,
        };
        assert_eq!(
            payment_outcome(Ok(PaymentCheck::Authorized(receipt.clone()))).unwrap(),
            Some(receipt)
        );
        let (field, _) = field_of(
            payment_outcome(Ok(PaymentCheck::Rejected {
                field: "payment".into(),
                reason: "required".into(),
            }))
            .unwrap_err(),
        );
        assert_eq!(field, "payment");
    }

    /// The service with scripted hooks over a real database: what the
    /// pipeline does with each answer.
    mod service {
        use std::sync::{Arc, Mutex};

        use divoc_crypto::keys::{IssuerConfig, Keyring};
        use divoc_storage::{Database, DbOptions, OutboxStatus};

        use super::super::*;
        use super::field_of;
        use crate::request::Payment;
        use crate::{CertificateService, IssueRequest, IssueStatus, ServiceConfig};

        #[derive(Default)]
        struct Scripted {
            identity: Mutex<Option<Result<IdentityCheck, HookError>>>,
            payment: Mutex<Option<Result<PaymentCheck, HookError>>>,
            /// Every payment question asked: (reference, program, mode).
            asked: Mutex<Vec<(String, String, Option<String>)>>,
        }

        impl IssueHooks for Scripted {
            fn check_identity(&self, _: &IdentityClaim<'_>) -> Result<IdentityCheck, HookError> {
                self.identity
                    .lock()
                    .unwrap()
                    .clone()
                    .unwrap_or(Ok(IdentityCheck::NotConfigured))
            }
            fn check_payment(&self, c: &PaymentClaim<'_>) -> Result<PaymentCheck, HookError> {
                self.asked.lock().unwrap().push((
                    c.reference.to_owned(),
                    c.program.to_owned(),
                    c.payment.map(|p| p.mode.clone()),
                ));
                self.payment
                    .lock()
                    .unwrap()
                    .clone()
                    .unwrap_or(Ok(PaymentCheck::NotRequired))
            }
        }

        struct Env {
            _tmp: tempfile::TempDir,
            db: Database,
            svc: CertificateService,
            hooks: Arc<Scripted>,
        }

        fn env(channels: &[&str]) -> Env {
            let tmp = tempfile::tempdir().unwrap();
            let db = Database::open_test(&tmp.path().join("d.db"), DbOptions::default()).unwrap();
            let keyring = Keyring::open_or_create(
                &tmp.path().join("keys"),
                &IssuerConfig::new("did:web:example.org"),
            )
            .unwrap();
            let hooks = Arc::new(Scripted::default());
            let mut cfg = ServiceConfig::new("https://example.org");
            cfg.distribution_channels = channels.iter().map(|c| c.to_string()).collect();
            let svc = CertificateService::open_with_hooks(db.clone(), keyring, cfg, hooks.clone())
                .unwrap();
            Env {
                _tmp: tmp,
                db,
                svc,
                hooks,
            }
        }

        fn sample() -> IssueRequest {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/cases/valid-one-dose/request.json");
            IssueRequest::from_json(
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap(),
            )
            .unwrap()
        }

        fn nothing_stored(e: &Env) {
            assert!(e.db.events_after(0, 10).unwrap().is_empty());
            assert!(e.db.audit_head().unwrap().is_none());
            assert_eq!(e.db.outbox_counts().unwrap(), Default::default());
        }

        #[test]
        fn plugin_hooks_keep_issuance_off_the_async_runtime() {
            // Hooks that may call plugins (the default) keep the blocking
            // path; without hooks the service may issue inline.
            assert!(Scripted::default().may_block("national-id", "covid-19"));
            assert!(!NoHooks.may_block("national-id", "covid-19"));
            assert!(!env(&[]).svc.issues_inline(&sample()));
        }

        #[test]
        fn identity_refusals_and_outages_store_nothing() {
            let e = env(&[]);
            for (answer, status, field) in [
                (
                    Ok(IdentityCheck::Rejected {
                        reason: "bad check digit".into(),
                    }),
                    422,
                    Some("recipient.identity.value"),
                ),
                (
                    Ok(IdentityCheck::ChallengeRequired),
                    422,
                    Some("recipient.identity.type"),
                ),
                (Err(HookError::Unavailable("down".into())), 503, None),
            ] {
                *e.hooks.identity.lock().unwrap() = Some(answer);
                let err = e.svc.issue(&sample(), "t").unwrap_err();
                assert_eq!(err.http_status(), status, "{err}");
                if let Some(f) = field {
                    assert_eq!(field_of(err).0, f);
                }
            }
            nothing_stored(&e);
            // A refused identity never reaches payment.
            assert!(e.hooks.asked.lock().unwrap().is_empty());
        }

        #[test]
        fn the_normalised_identity_is_certified_and_identifies_resends() {
            let e = env(&[]);
            *e.hooks.identity.lock().unwrap() = Some(Ok(IdentityCheck::Verified {
                normalized_id: "2342343334".into(),
            }));
            let mut spaced = sample();
            spaced.recipient.identity.value = "2342 343 334".into();
            let first = e.svc.issue(&spaced, "t").unwrap();
            let rec = e.svc.get(&first.id).unwrap();
            assert_eq!(
                rec.credential["credentialSubject"]["identity"]["value"],
                "2342343334"
            );
            // The same person written without spaces is a re-send.
            let again = e.svc.issue(&sample(), "t").unwrap();
            assert_eq!((again.id, again.status), (first.id, IssueStatus::Existing));
        }

        #[test]
        fn payment_is_asked_once_per_dose_and_its_receipt_audited() {
            let e = env(&[]);
            *e.hooks.payment.lock().unwrap() = Some(Ok(PaymentCheck::Rejected {
                field: "payment".into(),
                reason: "required".into(),
            }));
            let err = e.svc.issue(&sample(), "t").unwrap_err();
            assert_eq!(field_of(err).0, "payment");
            *e.hooks.payment.lock().unwrap() = Some(Err(HookError::Unavailable("x".into())));
            assert_eq!(e.svc.issue(&sample(), "t").unwrap_err().http_status(), 503);
            nothing_stored(&e);

            let receipt = PaymentReceipt {
                provider: "pay-voucher".into(),
                provider_reference: "prov-1".into(),
                status: "authorized".into(),
                mode: "voucher".into(),
                currency: "INR".into(),
                amount_minor_units: 10_000,
            };
            *e.hooks.payment.lock().unwrap() = Some(Ok(PaymentCheck::Authorized(receipt)));
            let mut req = sample();
            req.payment = Some(Payment {
                mode: "voucher".into(),
                reference: "SECRET-VOUCHER".into(),
            });
            let issued = e.svc.issue(&req, "t").unwrap();
            // A re-send, even with another voucher, is the same
            // certificate and is not charged again.
            req.payment = Some(Payment {
                mode: "voucher".into(),
                reference: "OTHER".into(),
            });
            assert_eq!(e.svc.issue(&req, "t").unwrap().id, issued.id);

            let asked = e.hooks.asked.lock().unwrap().clone();
            assert_eq!(asked.len(), 3, "{asked:?}");
            // One idempotency reference per dose, without the code in it.
            assert!(asked.iter().all(|a| a.0 == asked[0].0 && a.1 == "covid-19"));
            assert!(asked[0].0.starts_with("divoc-") && !asked[0].0.contains("PEC"));
            let mut dose2 = sample();
            dose2.vaccination.dose = 2;
            e.svc.issue(&dose2, "t").unwrap();
            assert_ne!(e.hooks.asked.lock().unwrap()[3].0, asked[0].0);

            let audit = e.db.audit_after(0, 10).unwrap();
            let payment = audit
                .iter()
                .find(|a| a.action == "certificate.payment")
                .expect("payment audited");
            assert_eq!(payment.subject, issued.id);
            let text = format!("{payment:?}");
            assert!(
                text.contains("prov-1") && !text.contains("SECRET-VOUCHER"),
                "{text}"
            );
        }

        #[test]
        fn one_outbox_row_per_configured_channel() {
            let e = env(&["sms", "webhook"]);
            let issued = e.svc.issue(&sample(), "t").unwrap();
            let rows = e.db.outbox_list(OutboxStatus::Pending, 10).unwrap();
            let targets: Vec<_> = rows.iter().map(|r| r.target.as_str()).collect();
            assert_eq!(targets, vec!["sms", "webhook"]);
            assert!(rows
                .iter()
                .all(|r| r.payload["certificate_id"] == issued.id.as_str()));
        }
    }
}
