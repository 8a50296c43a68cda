//! `divoc plugin new`: a plugin crate for a world that builds right away.

use std::path::{Path, PathBuf};

use crate::manifest::{sdk_feature, World};
use crate::ToolchainError;

/// Creates a plugin crate named `name` for `world` in `dest` (created; must be
/// empty or absent): `Cargo.toml` (depending on the SDK by absolute path, with
/// its own `[workspace]` and the shared release profile), `src/lib.rs` with
/// working placeholder logic, and `plugin.toml`.
///
/// The SDK path is `<repo>/sdk` as seen when this crate was compiled, or
/// `$DIVOC_SDK_PATH`.
pub fn scaffold(name: &str, world: &str, dest: &Path) -> Result<(), ToolchainError> {
    if !divoc_contract::valid_plugin_name(name) {
        return Err(ToolchainError::Scaffold(format!(
            "plugin name `{name}` must be {}",
            divoc_contract::PLUGIN_NAME_RULE
        )));
    }
    let world: World = world.parse().map_err(ToolchainError::Scaffold)?;
    if dest.exists() {
        let mut entries = std::fs::read_dir(dest).map_err(|source| ToolchainError::Io {
            what: "cannot read",
            path: dest.to_path_buf(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(ToolchainError::Scaffold(format!(
                "{} exists and is not empty",
                dest.display()
            )));
        }
    }
    let sdk = sdk_path();
    let files = [
        (PathBuf::from("Cargo.toml"), cargo_toml(name, world, &sdk)),
        (PathBuf::from("plugin.toml"), plugin_toml(name, world)),
        (
            PathBuf::from("src/lib.rs"),
            lib_rs(world).replace("__NAME__", name),
        ),
        (
            PathBuf::from(".gitignore"),
            "/target\nCargo.lock\n".to_string(),
        ),
    ];
    for (rel, text) in files {
        let path = dest.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ToolchainError::Io {
                what: "cannot create",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| ToolchainError::Io {
            what: "cannot write",
            path,
            source,
        })?;
    }
    Ok(())
}

fn sdk_path() -> PathBuf {
    match std::env::var_os("DIVOC_SDK_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::repo_root().join("sdk"),
    }
}

fn cargo_toml(name: &str, world: World, sdk: &Path) -> String {
    // TOML basic strings: escape backslashes and quotes in the path.
    let sdk = sdk
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
divoc-sdk = {{ path = "{sdk}", features = ["{feature}"] }}

# A plugin crate is its own workspace; build it with `divoc plugin build .`
[workspace]

# The profile every DIVOC guest uses, so all share one guest target dir.
[profile.release]
panic = "abort"
opt-level = "s"
lto = true
codegen-units = 1
"#,
        feature = sdk_feature(world),
    )
}

fn plugin_toml(name: &str, world: World) -> String {
    format!(
        r#"[plugin]
name = "{name}"
version = "0.1.0"
world = "{world}"
wit = "{wit}"
description = "A new {world} plugin"

[capabilities]
log = true

[limits]
deadline-ms = 200
"#,
        wit = crate::WIT_PACKAGE,
    )
}

fn lib_rs(world: World) -> &'static str {
    match world {
        World::IdentityProvider => IDENTITY,
        World::PaymentProvider => PAYMENT,
        World::CertificateFormat => FORMAT,
        World::DistributionChannel => DISTRIBUTION,
        World::RolloutPolicy => ROLLOUT,
        World::EventSubscriber => EVENTS,
    }
}

const IDENTITY: &str = r#"//! __NAME__: an identity provider.

use divoc_sdk::identity::{Claim, Guest, Verification, VerifiedIdentity};
use divoc_sdk::Error;

/// Longest identifier accepted.
const MAX_LEN: usize = 64;

struct Plugin;

impl Guest for Plugin {
    fn identity_types() -> Vec<String> {
        vec!["national-id".to_string()]
    }

    fn verify(claim: Claim) -> Result<Verification, Error> {
        if !Self::identity_types().contains(&claim.id_type) {
            return Err(Error::invalid_input(format!("unsupported identity type {:?}", claim.id_type)));
        }
        // Canonical form: no spaces or hyphens, upper case.
        let normalized: String = claim
            .value
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if normalized.is_empty() {
            return Ok(Verification::Rejected("the identifier is empty".to_string()));
        }
        if normalized.len() > MAX_LEN || !normalized.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(Verification::Rejected(format!(
                "the identifier must be 1 to {MAX_LEN} letters or digits"
            )));
        }
        // TODO: check the identifier against the country's ID system.
        Ok(Verification::Verified(VerifiedIdentity {
            id_type: claim.id_type,
            normalized_id: normalized,
            attributes: Vec::new(),
        }))
    }
}

divoc_sdk::export_identity_provider!(Plugin);
"#;

const PAYMENT: &str = r#"//! __NAME__: a payment provider.

use divoc_sdk::payment::{Charge, Guest, PaymentStatus, Receipt};
use divoc_sdk::{Error, Money};

const MODE: &str = "__NAME__";
const PREFIX: &str = "__NAME__:";

struct Plugin;

impl Guest for Plugin {
    fn modes() -> Vec<String> {
        vec![MODE.to_string()]
    }

    fn authorize(charge: Charge) -> Result<Receipt, Error> {
        if charge.mode != MODE {
            return Err(Error::invalid_input(format!("unsupported payment mode {:?}", charge.mode)));
        }
        check_amount(&charge.amount)?;
        // TODO: reserve the amount with the payment system. The host's
        // reference is the idempotency key, so the same charge maps to the
        // same provider reference.
        Ok(Receipt {
            provider_reference: format!("{PREFIX}{}", charge.reference),
            status: PaymentStatus::Authorized,
            amount: charge.amount,
            mode: charge.mode,
        })
    }

    fn capture(provider_reference: String, amount: Money) -> Result<Receipt, Error> {
        receipt(provider_reference, amount, PaymentStatus::Captured)
    }

    fn refund(provider_reference: String, amount: Money, _reason: String) -> Result<Receipt, Error> {
        receipt(provider_reference, amount, PaymentStatus::Refunded)
    }
}

fn check_amount(amount: &Money) -> Result<(), Error> {
    if amount.minor_units < 0 {
        return Err(Error::invalid_input("the amount must not be negative"));
    }
    if amount.currency.len() != 3 || !amount.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(Error::invalid_input("the currency must be an ISO 4217 code"));
    }
    Ok(())
}

fn receipt(provider_reference: String, amount: Money, status: PaymentStatus) -> Result<Receipt, Error> {
    if !provider_reference.starts_with(PREFIX) {
        return Err(Error::invalid_input(format!("unknown provider reference {provider_reference:?}")));
    }
    check_amount(&amount)?;
    Ok(Receipt { provider_reference, status, amount, mode: MODE.to_string() })
}

divoc_sdk::export_payment_provider!(Plugin);
"#;

const FORMAT: &str = r#"//! __NAME__: a certificate format. This placeholder carries the host-signed
//! credential JSON unchanged; a real format wraps or transcodes it.

use divoc_sdk::format::{ArtifactData, ArtifactKind, Credential, Decoded, FormatInfo, Guest};
use divoc_sdk::Error;

struct Plugin;

impl Guest for Plugin {
    fn info() -> FormatInfo {
        FormatInfo {
            id: "__NAME__".to_string(),
            media_type: "application/vc+ld+json".to_string(),
            kind: ArtifactKind::Json,
        }
    }

    fn encode(credential: Credential) -> Result<ArtifactData, Error> {
        let trimmed = credential.json.trim();
        if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
            return Err(Error::invalid_input("the credential must be a JSON object"));
        }
        Ok(ArtifactData::Text(credential.json))
    }

    fn decode(artifact: ArtifactData) -> Result<Decoded, Error> {
        let text = match artifact {
            ArtifactData::Text(text) => text,
            ArtifactData::Bytes(bytes) => {
                String::from_utf8(bytes).map_err(|_| Error::invalid_input("the artifact is not UTF-8"))?
            }
        };
        let trimmed = text.trim();
        if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
            return Err(Error::invalid_input("the artifact is not a JSON object"));
        }
        // The credential's own proof is checked by the host; this format adds
        // no envelope signature of its own.
        Ok(Decoded { claims_json: text, key_id: String::new(), signature_valid: false })
    }
}

divoc_sdk::export_certificate_format!(Plugin);
"#;

const DISTRIBUTION: &str = r#"//! __NAME__: a distribution channel. This placeholder only logs (without
//! personal data); a real channel calls its gateway through `divoc_sdk::http`.

use divoc_sdk::distribution::{ChannelInfo, DeliveryFailure, DeliveryReceipt, Guest, Message};
use divoc_sdk::{ContactKind, Error};

struct Plugin;

impl Guest for Plugin {
    fn info() -> ChannelInfo {
        ChannelInfo { id: "__NAME__".to_string(), contact_kinds: vec![ContactKind::Email, ContactKind::Phone] }
    }

    fn deliver(message: Message) -> Result<DeliveryReceipt, DeliveryFailure> {
        let Some(contact) = message
            .contacts
            .iter()
            .find(|c| matches!(c.kind, ContactKind::Email | ContactKind::Phone) && !c.value.trim().is_empty())
        else {
            return Err(DeliveryFailure::Permanent(Error::invalid_input("no email or phone contact")));
        };
        divoc_sdk::info!("delivering message {} (template {})", message.id, message.template);
        Ok(DeliveryReceipt { channel_reference: message.id, delivered_to: contact.value.clone() })
    }
}

divoc_sdk::export_distribution_channel!(Plugin);
"#;

const ROLLOUT: &str = r#"//! __NAME__: a rollout policy.

use divoc_sdk::eligibility::{Decision, Guest, Query};
use divoc_sdk::Error;

/// Youngest eligible age, in years.
const MIN_AGE: u32 = 18;

struct Plugin;

impl Guest for Plugin {
    fn evaluate(query: Query) -> Result<Decision, Error> {
        if query.dose == 0 {
            return Err(Error::invalid_input("doses are numbered from 1"));
        }
        let mut reasons = Vec::new();
        if let Some(age) = query.recipient.age {
            if age < MIN_AGE {
                reasons.push(format!("recipients must be at least {MIN_AGE} years old"));
            }
        }
        let previous = query.previous_doses.iter().map(|d| d.dose).max().unwrap_or(0);
        if query.dose != previous + 1 {
            reasons.push(format!("the next dose for this recipient is dose {}", previous + 1));
        }
        Ok(if reasons.is_empty() { Decision::Allow } else { Decision::Deny(reasons) })
    }
}

divoc_sdk::export_rollout_policy!(Plugin);
"#;

const EVENTS: &str = r#"//! __NAME__: an event subscriber.

use divoc_sdk::events::{Event, Guest};
use divoc_sdk::Error;

struct Plugin;

impl Guest for Plugin {
    fn interests() -> Vec<String> {
        // Empty: every event kind.
        Vec::new()
    }

    fn deliver(events: Vec<Event>) -> Result<u64, Error> {
        // TODO: export the events; return the highest sequence handled.
        divoc_sdk::debug!("received {} events", events.len());
        Ok(events.iter().map(|e| e.sequence).max().unwrap_or(0))
    }
}

divoc_sdk::export_event_subscriber!(Plugin);
"#;
