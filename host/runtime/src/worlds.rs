//! Typed handles, one per world, for the rest of the host.
//!
//! A handle pins the plugin version that was serving when it was taken: a
//! hot swap while a caller holds it does not change which version answers.
//! Take a fresh handle per request (it costs an atomic load and a clone).

use std::sync::Arc;

use crate::bindings::{
    certificate_format, distribution_channel, event_subscriber, host, identity_provider,
    payment_provider, rollout_policy,
};
use crate::error::{GuestError, GuestErrorKind, PluginError};
use crate::manifest::World;
use crate::plugin::{LoadedPlugin, PluginInfo, WorldInstance};
use crate::registry::Runtime;

/// Types of the plugin contract, as plain Rust data.
pub mod types {
    pub use crate::bindings::host::divoc::plugin::types::{
        Address, Contact, ContactKind, Facility, Identity, Money, Recipient, VaccinationEvent,
    };
    /// `identity-provider` types.
    pub mod identity {
        pub use crate::bindings::identity_provider::exports::divoc::plugin::identity::{
            Challenge, Claim, Verification, VerifiedIdentity,
        };
    }
    /// `payment-provider` types.
    pub mod payment {
        pub use crate::bindings::payment_provider::exports::divoc::plugin::payment::{
            Charge, PaymentStatus, Receipt,
        };
    }
    /// `certificate-format` types.
    pub mod format {
        pub use crate::bindings::certificate_format::exports::divoc::plugin::format::{
            ArtifactData, ArtifactKind, Credential, Decoded, FormatInfo,
        };
    }
    /// `distribution-channel` types.
    pub mod distribution {
        pub use crate::bindings::distribution_channel::exports::divoc::plugin::distribution::{
            Attachment, ChannelInfo, DeliveryFailure, DeliveryReceipt, Message,
        };
    }
    /// `rollout-policy` types.
    pub mod eligibility {
        pub use crate::bindings::rollout_policy::exports::divoc::plugin::eligibility::{
            Decision, PreviousDose, Query,
        };
    }
    /// `event-subscriber` types.
    pub mod events {
        pub use crate::bindings::event_subscriber::exports::divoc::plugin::events::Event;
    }
}

fn guest_error(e: host::divoc::plugin::types::Error) -> GuestError {
    use host::divoc::plugin::types::Error as E;
    let (kind, message) = match e {
        E::InvalidInput(m) => (GuestErrorKind::InvalidInput, m),
        E::Rejected(m) => (GuestErrorKind::Rejected, m),
        E::Unavailable(m) => (GuestErrorKind::Unavailable, m),
        E::Internal(m) => (GuestErrorKind::Internal, m),
    };
    GuestError { kind, message }
}

fn returned<T>(
    plugin: &LoadedPlugin,
    r: Result<T, host::divoc::plugin::types::Error>,
) -> Result<T, PluginError> {
    r.map_err(|e| PluginError::Returned {
        plugin: plugin.info.name.clone(),
        version: plugin.info.version.clone(),
        error: guest_error(e),
    })
}

fn wrong_instance() -> wasmtime::Error {
    wasmtime::Error::msg("internal error: instance does not match the plugin's world")
}

macro_rules! handle {
    ($(#[$doc:meta])* $handle:ident, $world:expr, $getter:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $handle(Arc<LoadedPlugin>);

        // Handles end up in callers' structs and error paths; naming the
        // pinned plugin version is what a reader of a debug print needs.
        impl std::fmt::Debug for $handle {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($handle))
                    .field("plugin", &self.0.info.name)
                    .field("version", &self.0.info.version)
                    .finish()
            }
        }

        impl $handle {
            /// Facts about the version this handle calls.
            pub fn info(&self) -> &PluginInfo {
                &self.0.info
            }
        }

        impl Runtime {
            #[doc = concat!("A handle on the serving version of a `", stringify!($getter), "` plugin.")]
            pub fn $getter(&self, name: &str) -> Result<$handle, PluginError> {
                self.get(name, $world).map($handle)
            }
        }
    };
}

handle!(
    /// An `identity-provider` plugin.
    IdentityProvider, World::IdentityProvider, identity_provider
);
handle!(
    /// A `payment-provider` plugin.
    PaymentProvider, World::PaymentProvider, payment_provider
);
handle!(
    /// A `certificate-format` plugin.
    CertificateFormat, World::CertificateFormat, certificate_format
);
handle!(
    /// A `distribution-channel` plugin.
    DistributionChannel, World::DistributionChannel, distribution_channel
);
handle!(
    /// A `rollout-policy` plugin.
    RolloutPolicy, World::RolloutPolicy, rollout_policy
);
handle!(
    /// An `event-subscriber` plugin.
    EventSubscriber, World::EventSubscriber, event_subscriber
);

use types::{distribution, eligibility, events, format, identity, payment};

impl IdentityProvider {
    /// Identity types this provider handles, e.g. `["national-id"]`.
    pub fn identity_types(&self) -> Result<Vec<String>, PluginError> {
        self.0.call(|store, instance| match instance {
            WorldInstance::Identity(b) => b.divoc_plugin_identity().call_identity_types(store),
            _ => Err(wrong_instance()),
        })
    }

    /// Checks an identity claim. The answer is verified, rejected, or a
    /// challenge (e.g. an OTP) to be answered by calling `verify` again with
    /// `challenge-id` and `challenge-response` set.
    pub fn verify(&self, claim: &identity::Claim) -> Result<identity::Verification, PluginError> {
        let r = self.0.call(|store, instance| match instance {
            WorldInstance::Identity(b) => b.divoc_plugin_identity().call_verify(store, claim),
            _ => Err(wrong_instance()),
        })?;
        returned(&self.0, r)
    }
}

impl PaymentProvider {
    /// Payment modes this provider handles, e.g. `["voucher"]`.
    pub fn modes(&self) -> Result<Vec<String>, PluginError> {
        self.0.call(|store, instance| match instance {
            WorldInstance::Payment(b) => b.divoc_plugin_payment().call_modes(store),
            _ => Err(wrong_instance()),
        })
    }

    /// Authorises a charge. `charge.reference` is an idempotency key: the same
    /// reference must never be charged twice.
    pub fn authorize(&self, charge: &payment::Charge) -> Result<payment::Receipt, PluginError> {
        let r = self.0.call(|store, instance| match instance {
            WorldInstance::Payment(b) => b.divoc_plugin_payment().call_authorize(store, charge),
            _ => Err(wrong_instance()),
        })?;
        returned(&self.0, r)
    }

    /// Captures `amount` of an authorised payment, named by the provider's
    /// reference from its receipt.
    pub fn capture(
        &self,
        provider_reference: &str,
        amount: &types::Money,
    ) -> Result<payment::Receipt, PluginError> {
        let r = self.0.call(|store, instance| match instance {
            WorldInstance::Payment(b) => {
                b.divoc_plugin_payment()
                    .call_capture(store, provider_reference, amount)
            }
            _ => Err(wrong_instance()),
        })?;
        returned(&self.0, r)
    }

    /// Refunds `amount` of a payment, named by the provider's reference, for
    /// the given reason.
    pub fn refund(
        &self,
        provider_reference: &str,
        amount: &types::Money,
        reason: &str,
    ) -> Result<payment::Receipt, PluginError> {
        let r = self.0.call(|store, instance| match instance {
            WorldInstance::Payment(b) => {
                b.divoc_plugin_payment()
                    .call_refund(store, provider_reference, amount, reason)
            }
            _ => Err(wrong_instance()),
        })?;
        returned(&self.0, r)
    }
}

impl CertificateFormat {
    /// The format's stable id, media type and artifact kind.
    pub fn format_info(&self) -> Result<format::FormatInfo, PluginError> {
        self.0.call(|store, instance| match instance {
            WorldInstance::Format(b) => b.divoc_plugin_format().call_info(store),
            _ => Err(wrong_instance()),
        })
    }

    /// Turns a host-signed credential into this format's artifact.
    pub fn encode(
        &self,
        credential: &format::Credential,
    ) -> Result<format::ArtifactData, PluginError> {
        let r = self.0.call(|store, instance| match instance {
            WorldInstance::Format(b) => b.divoc_plugin_format().call_encode(store, credential),
            _ => Err(wrong_instance()),
        })?;
        returned(&self.0, r)
    }

    /// Reads an artifact back: its claims, the key that signed it and whether
    /// the signature verified.
    pub fn decode(&self, artifact: &format::ArtifactData) -> Result<format::Decoded, PluginError> {
        let r = self.0.call(|store, instance| match instance {
            WorldInstance::Format(b) => b.divoc_plugin_format().call_decode(store, artifact),
            _ => Err(wrong_instance()),
        })?;
        returned(&self.0, r)
    }
}

/// The outcome of a delivery attempt.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The channel accepted the message; holds its receipt.
    Delivered(distribution::DeliveryReceipt),
    /// Delivery failed but may succeed later: try again with backoff.
    Retryable(GuestError),
    /// Delivery failed for good (bad address, opted out, ...): do not retry.
    Permanent(GuestError),
}

impl DistributionChannel {
    /// The channel's id and the contact kinds it can reach.
    pub fn channel_info(&self) -> Result<distribution::ChannelInfo, PluginError> {
        self.0.call(|store, instance| match instance {
            WorldInstance::Distribution(b) => b.divoc_plugin_distribution().call_info(store),
            _ => Err(wrong_instance()),
        })
    }

    /// Sends a message; `message.id` is an idempotency key. The plugin's own
    /// failures come back as [`Delivery`] outcomes; `Err` means the call itself
    /// failed (a fault, or the plugin is disabled).
    pub fn deliver(&self, message: &distribution::Message) -> Result<Delivery, PluginError> {
        let r = self.0.call(|store, instance| match instance {
            WorldInstance::Distribution(b) => {
                b.divoc_plugin_distribution().call_deliver(store, message)
            }
            _ => Err(wrong_instance()),
        })?;
        Ok(match r {
            Ok(receipt) => Delivery::Delivered(receipt),
            Err(distribution::DeliveryFailure::Retryable(e)) => Delivery::Retryable(guest_error(e)),
            Err(distribution::DeliveryFailure::Permanent(e)) => Delivery::Permanent(guest_error(e)),
        })
    }
}

impl RolloutPolicy {
    /// Decides whether the recipient may have the dose asked about: allow, or
    /// deny with reasons that are safe to show to the recipient.
    pub fn evaluate(
        &self,
        query: &eligibility::Query,
    ) -> Result<eligibility::Decision, PluginError> {
        let r = self.0.call(|store, instance| match instance {
            WorldInstance::Policy(b) => b.divoc_plugin_eligibility().call_evaluate(store, query),
            _ => Err(wrong_instance()),
        })?;
        returned(&self.0, r)
    }
}

impl EventSubscriber {
    /// Event kind prefixes this subscriber wants; empty means all events.
    pub fn interests(&self) -> Result<Vec<String>, PluginError> {
        self.0.call(|store, instance| match instance {
            WorldInstance::Events(b) => b.divoc_plugin_events().call_interests(store),
            _ => Err(wrong_instance()),
        })
    }

    /// Delivers a batch; returns the highest sequence the plugin acknowledged.
    pub fn deliver(&self, batch: &[events::Event]) -> Result<u64, PluginError> {
        let r = self.0.call(|store, instance| match instance {
            WorldInstance::Events(b) => b.divoc_plugin_events().call_deliver(store, batch),
            _ => Err(wrong_instance()),
        })?;
        returned(&self.0, r)
    }
}

// Silence "unused" for modules only referenced through re-exports.
#[allow(unused_imports)]
use {
    certificate_format as _, distribution_channel as _, event_subscriber as _,
    identity_provider as _, payment_provider as _, rollout_policy as _,
};
