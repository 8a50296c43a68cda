//! The issue pipeline's plugin checks: [`PluginHooks`] implements
//! [`IssueHooks`] over the plugin runtime.
//!
//! - Identity: the `identity-provider` plugin for the request's identity
//!   type checks the number. Which plugin handles a type comes from
//!   `[certificates.identity-providers]`, else from the plugins' own
//!   `identity-types()` (asked once per loaded version). A type no plugin
//!   handles is not checked.
//! - Payment: a program listed in `[certificates.programs.<id>.payment]`
//!   charges; the request's `payment.mode` picks the `payment-provider`
//!   plugin (`[certificates.payment-providers]`, else the plugins'
//!   `modes()`), which authorises the configured amount under the
//!   service's per-dose idempotency reference.
//!
//! A check that cannot be made — the plugin configured for a type is not
//! loaded, is disabled, faults, times out or reports its own dependency
//! down — is [`HookError::Unavailable`] (HTTP 503, nothing stored). It never
//! lets a certificate through unchecked.
//!
//! All calls block; the certificate service runs on the blocking pool.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use crate::hooks::{
    HookError, IdentityCheck, IdentityClaim, PaymentCheck, PaymentClaim, PaymentReceipt,
};
use crate::IssueHooks;
use divoc_runtime::types::identity::{Claim, Verification};
use divoc_runtime::types::payment::{Charge, PaymentStatus};
use divoc_runtime::types::Money;
use divoc_runtime::{GuestErrorKind, PluginError, Runtime, World};
use serde::{Deserialize, Serialize};

/// What the hooks need from `[certificates]`: which plugin handles an
/// identity type or payment mode, and what each program charges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginSettings {
    /// Identity type → `identity-provider` plugin. Types not listed go to
    /// the plugin whose `identity-types()` names them.
    pub identity_providers: BTreeMap<String, String>,
    /// Payment mode → `payment-provider` plugin. Modes not listed go to the
    /// plugin whose `modes()` names them.
    pub payment_providers: BTreeMap<String, String>,
    /// Per-program settings, by program id.
    pub programs: BTreeMap<String, ProgramConfig>,
}

/// `[certificates.programs.<id>]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProgramConfig {
    /// Present: every certificate of the program must be paid for.
    pub payment: Option<PaymentPolicy>,
}

/// `[certificates.programs.<id>.payment]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PaymentPolicy {
    /// Price in the currency's minor unit (paise, cents).
    pub amount_minor_units: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Accepted payment modes; empty = any mode a plugin handles.
    #[serde(default)]
    pub modes: Vec<String>,
}

impl PaymentPolicy {
    /// Refuses a policy that could only fail later, per request; the error
    /// names the setting under `certificates.programs.<program>.payment`.
    pub fn check(&self, program: &str) -> Result<(), String> {
        if self.amount_minor_units <= 0 {
            return Err(format!(
                "certificates.programs.{program}.payment.amount-minor-units must be positive"
            ));
        }
        if !(self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(format!(
                "certificates.programs.{program}.payment.currency must be an ISO 4217 code \
                 such as INR"
            ));
        }
        Ok(())
    }
}

/// What a plugin version said it handles, keyed by plugin name; the digest
/// tells a hot-swapped version from the one that answered.
type Handled = Mutex<HashMap<String, (String, Vec<String>)>>;

/// [`IssueHooks`] over the plugin runtime. See the module docs.
pub struct PluginHooks {
    runtime: Runtime,
    config: PluginSettings,
    identity_types: Handled,
    payment_modes: Handled,
}

impl std::fmt::Debug for PluginHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHooks")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A plugin error as the pipeline's outcome: the plugin's own "no"
/// (invalid input, rejected) is the user's problem and carries a reason
/// that is safe to show; everything else is the system's and retryable.
pub(crate) fn refusal(e: &PluginError) -> Option<String> {
    match e.guest_error() {
        Some(g)
            if matches!(
                g.kind,
                GuestErrorKind::InvalidInput | GuestErrorKind::Rejected
            ) =>
        {
            Some(g.message.clone())
        }
        _ => None,
    }
}

fn unavailable(what: &str, e: &PluginError) -> HookError {
    tracing::warn!(error = %e, "{what} unavailable");
    HookError::Unavailable(format!("{what} unavailable: {e}"))
}

impl PluginHooks {
    /// Hooks over `runtime` with these settings.
    pub fn new(runtime: Runtime, config: PluginSettings) -> PluginHooks {
        PluginHooks {
            runtime,
            config,
            identity_types: Mutex::default(),
            payment_modes: Mutex::default(),
        }
    }

    /// The plugin of `world` that handles `key`: the configured one, else
    /// the first loaded plugin (by name) whose `ask` answer names `key`.
    /// `Err` when a plugin that might be the one could not be asked.
    fn discover(
        &self,
        world: World,
        key: &str,
        configured: &BTreeMap<String, String>,
        cache: &Handled,
        ask: impl Fn(&str) -> Result<(String, Vec<String>), PluginError>,
    ) -> Result<Option<String>, HookError> {
        if let Some(name) = configured.get(key) {
            return Ok(Some(name.clone()));
        }
        let mut names = self.runtime.plugins_of(world);
        names.sort();
        for name in names {
            let digest = self.runtime.info(&name).map(|i| i.digest);
            let cached = cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&name)
                .filter(|(d, _)| Some(d) == digest.as_ref())
                .map(|(_, handled)| handled.clone());
            let handled = match cached {
                Some(h) => h,
                None => {
                    let (digest, handled) =
                        ask(&name).map_err(|e| unavailable(&format!("{world} `{name}`"), &e))?;
                    cache
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(name.clone(), (digest, handled.clone()));
                    handled
                }
            };
            if handled.iter().any(|h| h == key) {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    fn identity_plugin(&self, id_type: &str) -> Result<Option<String>, HookError> {
        self.discover(
            World::IdentityProvider,
            id_type,
            &self.config.identity_providers,
            &self.identity_types,
            |name| {
                let h = self.runtime.identity_provider(name)?;
                Ok((h.info().digest.clone(), h.identity_types()?))
            },
        )
    }

    fn payment_plugin(&self, mode: &str) -> Result<Option<String>, HookError> {
        self.discover(
            World::PaymentProvider,
            mode,
            &self.config.payment_providers,
            &self.payment_modes,
            |name| {
                let h = self.runtime.payment_provider(name)?;
                Ok((h.info().digest.clone(), h.modes()?))
            },
        )
    }
}

impl IssueHooks for PluginHooks {
    /// Blocks when a plugin may be asked: an identity provider is
    /// configured for the type or any is loaded (it may claim the type),
    /// or the program takes payment (which is refused or authorised
    /// through a plugin). A free program's requests never reach a payment
    /// plugin, whatever other programs charge.
    fn may_block(&self, id_type: &str, program: &str) -> bool {
        self.config.identity_providers.contains_key(id_type)
            || !self.runtime.plugins_of(World::IdentityProvider).is_empty()
            || self
                .config
                .programs
                .get(program)
                .is_some_and(|p| p.payment.is_some())
    }

    fn charges(&self, program: &str) -> bool {
        self.config
            .programs
            .get(program)
            .is_some_and(|p| p.payment.is_some())
    }

    fn check_identity(&self, claim: &IdentityClaim<'_>) -> Result<IdentityCheck, HookError> {
        let Some(name) = self.identity_plugin(claim.id_type)? else {
            return Ok(IdentityCheck::NotConfigured);
        };
        let what = format!("identity provider `{name}` for `{}`", claim.id_type);
        let plugin = self
            .runtime
            .identity_provider(&name)
            .map_err(|e| unavailable(&what, &e))?;
        let answer = plugin.verify(&Claim {
            id_type: claim.id_type.to_owned(),
            value: claim.value.to_owned(),
            name: Some(claim.name.to_owned()),
            dob: claim.dob.map(str::to_owned),
            challenge_id: None,
            challenge_response: None,
        });
        match answer {
            Ok(Verification::Verified(v)) => Ok(IdentityCheck::Verified {
                normalized_id: v.normalized_id,
            }),
            Ok(Verification::Challenge(_)) => Ok(IdentityCheck::ChallengeRequired),
            Ok(Verification::Rejected(reason)) => Ok(IdentityCheck::Rejected { reason }),
            Err(e) => match refusal(&e) {
                Some(reason) => Ok(IdentityCheck::Rejected { reason }),
                None => Err(unavailable(&what, &e)),
            },
        }
    }

    fn check_payment(&self, claim: &PaymentClaim<'_>) -> Result<PaymentCheck, HookError> {
        let Some(policy) = self
            .config
            .programs
            .get(claim.program)
            .and_then(|p| p.payment.as_ref())
        else {
            return Ok(PaymentCheck::NotRequired);
        };
        let rejected = |field: &str, reason: String| {
            Ok(PaymentCheck::Rejected {
                field: field.to_owned(),
                reason,
            })
        };
        let modes = if policy.modes.is_empty() {
            String::new()
        } else {
            format!(" (modes: {})", policy.modes.join(", "))
        };
        let Some(payment) = claim.payment else {
            return rejected(
                "payment",
                format!(
                    "program `{}` requires payment of {} {} minor units{modes}",
                    claim.program, policy.amount_minor_units, policy.currency
                ),
            );
        };
        if !policy.modes.is_empty() && !policy.modes.contains(&payment.mode) {
            return rejected(
                "payment.mode",
                format!(
                    "program `{}` does not accept this mode{modes}",
                    claim.program
                ),
            );
        }
        let Some(name) = self.payment_plugin(&payment.mode)? else {
            // A mode the program names but no plugin serves is the
            // operator's problem (retry once it is deployed); a mode the
            // client made up is the client's.
            if policy.modes.is_empty() {
                return rejected(
                    "payment.mode",
                    "no payment provider handles this mode".into(),
                );
            }
            return Err(HookError::Unavailable(format!(
                "no payment provider is loaded for mode `{}`",
                payment.mode
            )));
        };
        let what = format!("payment provider `{name}`");
        let plugin = self
            .runtime
            .payment_provider(&name)
            .map_err(|e| unavailable(&what, &e))?;
        let amount = Money {
            currency: policy.currency.clone(),
            minor_units: policy.amount_minor_units,
        };
        let receipt = match plugin.authorize(&Charge {
            reference: claim.reference.to_owned(),
            mode: payment.mode.clone(),
            amount: amount.clone(),
            program: claim.program.to_owned(),
            // The mode's own reference (a voucher code) travels as the
            // description, which is where payment plugins read it.
            description: payment.reference.clone(),
        }) {
            Ok(r) => r,
            Err(e) => {
                return match refusal(&e) {
                    Some(reason) => rejected("payment.reference", reason),
                    None => Err(unavailable(&what, &e)),
                }
            }
        };
        let status = match receipt.status {
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Refunded => {
                return rejected(
                    "payment.reference",
                    "the payment for this dose was refunded".into(),
                )
            }
        };
        // Trust, but check: a provider that authorised another amount has
        // not taken the program's price.
        if receipt.amount.currency != amount.currency
            || receipt.amount.minor_units < amount.minor_units
        {
            return Err(HookError::Unavailable(format!(
                "{what} authorised {} {} instead of {} {}",
                receipt.amount.minor_units,
                receipt.amount.currency,
                amount.minor_units,
                amount.currency
            )));
        }
        Ok(PaymentCheck::Authorized(PaymentReceipt {
            provider: name,
            provider_reference: receipt.provider_reference,
            status: status.to_owned(),
            mode: receipt.mode,
            currency: receipt.amount.currency,
            amount_minor_units: receipt.amount.minor_units,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::request::Payment;
    use divoc_runtime::{GuestError, HostServices, RuntimeSettings};

    fn no_plugins() -> Runtime {
        Runtime::new(RuntimeSettings::default(), HostServices::isolated()).unwrap()
    }

    fn paid() -> PluginSettings {
        let mut c = PluginSettings::default();
        c.programs.insert(
            "paid".into(),
            ProgramConfig {
                payment: Some(PaymentPolicy {
                    amount_minor_units: 500,
                    currency: "INR".into(),
                    modes: vec!["voucher".into()],
                }),
            },
        );
        c
    }

    fn claim<'a>(program: &'a str, payment: Option<&'a Payment>) -> PaymentClaim<'a> {
        PaymentClaim {
            reference: "ref",
            program,
            payment,
        }
    }

    #[test]
    fn bad_payment_policies_are_named() {
        let mut policy = paid().programs["paid"].payment.clone().unwrap();
        policy.currency = "rupees".into();
        assert!(policy.check("paid").unwrap_err().contains("ISO 4217"));
        policy.currency = "INR".into();
        policy.amount_minor_units = 0;
        assert!(policy.check("paid").unwrap_err().contains("positive"));
    }

    #[test]
    fn free_programs_and_unchecked_identity_types_need_no_plugin() {
        let hooks = PluginHooks::new(no_plugins(), paid());
        assert_eq!(
            hooks.check_payment(&claim("free", None)).unwrap(),
            PaymentCheck::NotRequired
        );
        let id = IdentityClaim {
            id_type: "passport",
            value: "X1",
            name: "N",
            dob: None,
        };
        assert_eq!(
            hooks.check_identity(&id).unwrap(),
            IdentityCheck::NotConfigured
        );
        // So their requests may be issued on the async runtime; a paid
        // program's, or a type with a configured provider, may not.
        assert!(!hooks.may_block("passport", "free"));
        assert!(hooks.may_block("passport", "paid"));
        let mut config = paid();
        config
            .identity_providers
            .insert("national-id".into(), "id-verhoeff".into());
        let hooks = PluginHooks::new(no_plugins(), config);
        assert!(hooks.may_block("national-id", "free"));
        assert!(!hooks.may_block("passport", "free"));
    }

    #[test]
    fn payment_is_required_by_field_and_mode() {
        let hooks = PluginHooks::new(no_plugins(), paid());
        match hooks.check_payment(&claim("paid", None)).unwrap() {
            PaymentCheck::Rejected { field, reason } => {
                assert_eq!(field, "payment");
                assert!(
                    reason.contains("500 INR") && reason.contains("voucher"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        let card = Payment {
            mode: "card".into(),
            reference: "x".into(),
        };
        match hooks.check_payment(&claim("paid", Some(&card))).unwrap() {
            PaymentCheck::Rejected { field, .. } => assert_eq!(field, "payment.mode"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_configured_check_without_its_plugin_fails_closed() {
        // The program names the mode, but no plugin serves it: 503, not a
        // free certificate.
        let hooks = PluginHooks::new(no_plugins(), paid());
        let voucher = Payment {
            mode: "voucher".into(),
            reference: "DEMO".into(),
        };
        assert!(matches!(
            hooks.check_payment(&claim("paid", Some(&voucher))),
            Err(HookError::Unavailable(_))
        ));
        // An identity type mapped to a plugin that is not loaded: 503.
        let mut config = PluginSettings::default();
        config
            .identity_providers
            .insert("national-id".into(), "id-missing".into());
        let hooks = PluginHooks::new(no_plugins(), config);
        let id = IdentityClaim {
            id_type: "national-id",
            value: "1",
            name: "N",
            dob: None,
        };
        match hooks.check_identity(&id) {
            Err(HookError::Unavailable(m)) => assert!(m.contains("id-missing"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_the_plugins_own_no_is_a_refusal() {
        let returned = |kind| PluginError::Returned {
            plugin: "p".into(),
            version: "1".into(),
            error: GuestError {
                kind,
                message: "why".into(),
            },
        };
        assert_eq!(
            refusal(&returned(GuestErrorKind::Rejected)).as_deref(),
            Some("why")
        );
        assert_eq!(
            refusal(&returned(GuestErrorKind::InvalidInput)).as_deref(),
            Some("why")
        );
        assert_eq!(refusal(&returned(GuestErrorKind::Unavailable)), None);
        assert_eq!(refusal(&returned(GuestErrorKind::Internal)), None);
        let timeout = PluginError::Timeout {
            plugin: "p".into(),
            version: "1".into(),
            deadline_ms: 5,
        };
        assert_eq!(refusal(&timeout), None);
    }
}
