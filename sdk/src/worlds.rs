//! One module per plugin world, each behind the cargo feature of the same name.
//!
//! Each world's bindings reuse the host imports from [`crate::bindings`] and
//! define an `export_<world>!` macro at the crate root.

/// Generates one world's bindings with the shared host imports.
macro_rules! world {
    ($feature:tt, $module:ident, $world:tt, $macro:ident, $macro_name:tt, $bindings:tt) => {
        #[cfg(feature = $feature)]
        #[doc(inline)]
        pub use $module::$macro;

        #[cfg(feature = $feature)]
        #[doc = concat!("Raw bindings of the `", $world, "` world.")]
        #[allow(missing_docs)]
        pub mod $module {
            wit_bindgen::generate!({
                path: "../wit",
                world: $world,
                runtime_path: "divoc_sdk::__private::wit_bindgen::rt",
                pub_export_macro: true,
                export_macro_name: $macro_name,
                default_bindings_module: $bindings,
                with: {
                    "divoc:plugin/types@1.2.0": crate::bindings::divoc::plugin::types,
                    "divoc:plugin/log@1.2.0": crate::bindings::divoc::plugin::log,
                    "divoc:plugin/clock@1.2.0": crate::bindings::divoc::plugin::clock,
                    "divoc:plugin/random@1.2.0": crate::bindings::divoc::plugin::random,
                    "divoc:plugin/kv@1.2.0": crate::bindings::divoc::plugin::kv,
                    "divoc:plugin/http@1.2.0": crate::bindings::divoc::plugin::http,
                    "divoc:plugin/signer@1.2.0": crate::bindings::divoc::plugin::signer,
                    "divoc:plugin/config@1.2.0": crate::bindings::divoc::plugin::config,
                    "divoc:plugin/mail@1.2.0": crate::bindings::divoc::plugin::mail,
                },
            });
        }
    };
}

world!(
    "identity-provider",
    identity_provider,
    "divoc:plugin/identity-provider@1.2.0",
    export_identity_provider,
    "export_identity_provider",
    "divoc_sdk::identity_provider"
);
world!(
    "payment-provider",
    payment_provider,
    "divoc:plugin/payment-provider@1.2.0",
    export_payment_provider,
    "export_payment_provider",
    "divoc_sdk::payment_provider"
);
world!(
    "certificate-format",
    certificate_format,
    "divoc:plugin/certificate-format@1.2.0",
    export_certificate_format,
    "export_certificate_format",
    "divoc_sdk::certificate_format"
);
world!(
    "distribution-channel",
    distribution_channel,
    "divoc:plugin/distribution-channel@1.2.0",
    export_distribution_channel,
    "export_distribution_channel",
    "divoc_sdk::distribution_channel"
);
world!(
    "rollout-policy",
    rollout_policy,
    "divoc:plugin/rollout-policy@1.2.0",
    export_rollout_policy,
    "export_rollout_policy",
    "divoc_sdk::rollout_policy"
);
world!(
    "event-subscriber",
    event_subscriber,
    "divoc:plugin/event-subscriber@1.2.0",
    export_event_subscriber,
    "export_event_subscriber",
    "divoc_sdk::event_subscriber"
);

/// The `identity` export: implement [`identity::Guest`] and call
/// [`export_identity_provider!`](crate::export_identity_provider).
#[cfg(feature = "identity-provider")]
pub mod identity {
    pub use crate::identity_provider::exports::divoc::plugin::identity::*;
}

/// The `payment` export: implement [`payment::Guest`] and call
/// [`export_payment_provider!`](crate::export_payment_provider).
#[cfg(feature = "payment-provider")]
pub mod payment {
    pub use crate::payment_provider::exports::divoc::plugin::payment::*;
}

/// The `format` export: implement [`format::Guest`] and call
/// [`export_certificate_format!`](crate::export_certificate_format).
#[cfg(feature = "certificate-format")]
pub mod format {
    pub use crate::certificate_format::exports::divoc::plugin::format::*;
}

/// The `distribution` export: implement [`distribution::Guest`] and call
/// [`export_distribution_channel!`](crate::export_distribution_channel).
#[cfg(feature = "distribution-channel")]
pub mod distribution {
    pub use crate::distribution_channel::exports::divoc::plugin::distribution::*;
}

/// The `eligibility` export: implement [`eligibility::Guest`] and call
/// [`export_rollout_policy!`](crate::export_rollout_policy).
#[cfg(feature = "rollout-policy")]
pub mod eligibility {
    pub use crate::rollout_policy::exports::divoc::plugin::eligibility::*;
}

/// The `events` export: implement [`events::Guest`] and call
/// [`export_event_subscriber!`](crate::export_event_subscriber).
#[cfg(feature = "event-subscriber")]
pub mod events {
    pub use crate::event_subscriber::exports::divoc::plugin::events::*;
}
