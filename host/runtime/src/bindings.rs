//! Host-side bindings for the `divoc:plugin` WIT package (`wit/`).
//!
//! The host imports (capabilities) are generated once from the `host` world and
//! reused by every plugin world through `with`, so the six worlds share one set
//! of capability implementations.

/// Capability interfaces (`log`, `clock`, `random`, `kv`, `http`, `signer`,
/// `config`) and the shared `types`.
// Generated from wit/ by `bindgen!`; the WIT `///` comments are the documentation.
#[allow(missing_docs)]
pub mod host {
    wasmtime::component::bindgen!({
        world: "host",
        path: "../../wit",
        additional_derives: [serde::Serialize],
    });
}

macro_rules! world_bindings {
    ($module:ident, $world:literal) => {
        #[doc = concat!("Bindings for the `", $world, "` world.")]
        // Generated from wit/ by `bindgen!`; the WIT `///` comments are the documentation.
        #[allow(missing_docs)]
        pub mod $module {
            wasmtime::component::bindgen!({
                world: $world,
                path: "../../wit",
                additional_derives: [serde::Serialize],
                with: {
                    "divoc:plugin/types": crate::bindings::host::divoc::plugin::types,
                    "divoc:plugin/log": crate::bindings::host::divoc::plugin::log,
                    "divoc:plugin/clock": crate::bindings::host::divoc::plugin::clock,
                    "divoc:plugin/random": crate::bindings::host::divoc::plugin::random,
                    "divoc:plugin/kv": crate::bindings::host::divoc::plugin::kv,
                    "divoc:plugin/http": crate::bindings::host::divoc::plugin::http,
                    "divoc:plugin/signer": crate::bindings::host::divoc::plugin::signer,
                    "divoc:plugin/config": crate::bindings::host::divoc::plugin::config,
                },
            });
        }
    };
}

world_bindings!(identity_provider, "identity-provider");
world_bindings!(payment_provider, "payment-provider");
world_bindings!(certificate_format, "certificate-format");
world_bindings!(distribution_channel, "distribution-channel");
world_bindings!(rollout_policy, "rollout-policy");
world_bindings!(event_subscriber, "event-subscriber");
