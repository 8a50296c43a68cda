//! One isolated runtime with the plugin under test loaded, and the calls the
//! suite makes into it.
//!
//! Every case gets its own [`Session`]: a fresh [`Runtime`] with in-memory kv,
//! an ephemeral signer and the case's plugin configuration, so no case sees
//! another's state and a case's `config.json` cannot leak. Warm instances are
//! off, so every call runs in a fresh instance (what the determinism checks
//! rely on), and fault-disabling is off, so one trap does not mask the cases
//! after it. Compiled code is shared through wasmtime's on-disk cache in the
//! run's temporary directory, so a session costs an instantiation, not a
//! compilation.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use divoc_runtime::types::{distribution, eligibility, events, format, identity, payment, Money};
use divoc_runtime::{
    Delivery, EngineSettings, GuestErrorKind, HostServices, LimitSettings, Manifest, PluginError,
    PluginInfo, Runtime, RuntimeSettings,
};
use serde_json::{json, Value};

use crate::signer::EphemeralSigner;
use crate::value;
use crate::ConformanceError;

/// One call into the plugin's exported interface.
#[derive(Debug, Clone)]
pub(crate) enum Call {
    IdentityTypes,
    Verify(identity::Claim),
    Modes,
    Authorize(payment::Charge),
    Capture(String, Money),
    Refund(String, Money, String),
    FormatInfo,
    Encode(format::Credential),
    Decode(format::ArtifactData),
    ChannelInfo,
    DeliverMessage(distribution::Message),
    // Boxed: a query is several times larger than every other call.
    Evaluate(Box<eligibility::Query>),
    Interests,
    DeliverEvents(Vec<events::Event>),
}

impl Call {
    /// The WIT function name, for messages.
    pub fn function(&self) -> &'static str {
        match self {
            Call::IdentityTypes => "identity-types",
            Call::Verify(_) => "verify",
            Call::Modes => "modes",
            Call::Authorize(_) => "authorize",
            Call::Capture(..) => "capture",
            Call::Refund(..) => "refund",
            Call::FormatInfo | Call::ChannelInfo => "info",
            Call::Encode(_) => "encode",
            Call::Decode(_) => "decode",
            Call::DeliverMessage(_) | Call::DeliverEvents(_) => "deliver",
            Call::Evaluate(_) => "evaluate",
            Call::Interests => "interests",
        }
    }
}

/// What a call produced, classified the way cases talk about it.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The function returned normally (the `ok` side, or a plain result).
    Ok(Value),
    /// The plugin returned an error through its contract. `failure` is the
    /// delivery-failure class (`retryable`/`permanent`) for `distribution`.
    Error {
        kind: GuestErrorKind,
        message: String,
        failure: Option<&'static str>,
    },
    /// A trap, time-out or limit: never conformant.
    Fault(PluginError),
    /// The runtime could not call at all (not a plugin behaviour).
    Unavailable(PluginError),
}

impl Outcome {
    pub fn class(&self) -> &'static str {
        match self {
            Outcome::Ok(_) => "ok",
            Outcome::Error { .. } => "error",
            Outcome::Fault(_) => "fault",
            Outcome::Unavailable(_) => "unavailable",
        }
    }

    /// A short description for failure messages; long payloads are cut so a
    /// 1 MiB echo does not flood the report.
    pub fn describe(&self) -> String {
        let text = match self {
            Outcome::Ok(v) => format!("ok {v}"),
            Outcome::Error {
                kind,
                message,
                failure,
            } => match failure {
                Some(f) => format!("{f} failure, {}: {message}", kind_name(*kind)),
                None => format!("error {}: {message}", kind_name(*kind)),
            },
            Outcome::Fault(e) => format!("fault: {e}"),
            Outcome::Unavailable(e) => format!("not callable: {e}"),
        };
        truncate(&text, 300)
    }

    /// The outcome as JSON, for comparing two runs of the same call.
    pub fn fingerprint(&self) -> Value {
        match self {
            Outcome::Ok(v) => json!({ "ok": v }),
            // Error messages may legitimately vary in wording; their class may not.
            Outcome::Error { kind, failure, .. } => {
                json!({ "error": kind_name(*kind), "failure": failure })
            }
            Outcome::Fault(e) | Outcome::Unavailable(e) => json!({ "fault": e.to_string() }),
        }
    }
}

pub(crate) fn kind_name(kind: GuestErrorKind) -> &'static str {
    match kind {
        GuestErrorKind::InvalidInput => "invalid-input",
        GuestErrorKind::Rejected => "rejected",
        GuestErrorKind::Unavailable => "unavailable",
        GuestErrorKind::Internal => "internal",
    }
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// What every session of one run shares.
pub(crate) struct Plugin {
    pub manifest: Manifest,
    pub manifest_text: String,
    pub component: Vec<u8>,
    pub grant: divoc_runtime::Grant,
    /// Temporary directory of the run: compile cache and the plugin's `dir`.
    pub work_dir: PathBuf,
    pub signer: Arc<EphemeralSigner>,
    /// Every deadline, memory, fuel or output-limit fault of the run, as
    /// `function: error`, for the run's `limits` case.
    pub limit_faults: Rc<RefCell<Vec<String>>>,
}

impl Plugin {
    fn settings(&self, config: Option<&Value>) -> RuntimeSettings {
        let name = self.manifest.plugin.name.clone();
        let mut settings = RuntimeSettings {
            engine: EngineSettings {
                // One short-lived engine per case: the pool's up-front
                // reservation would cost more than it saves.
                pooling: false,
                cache_dir: Some(self.work_dir.join("cache")),
                ..EngineSettings::default()
            },
            limits: LimitSettings {
                warm_instances: 0,
                max_consecutive_faults: u32::MAX,
                ..LimitSettings::default()
            },
            ..RuntimeSettings::default()
        };
        settings.grants.insert(name.clone(), self.grant.clone());
        if let Some(config) = config {
            settings.config.insert(name, config.clone());
        }
        settings
    }

    /// A fresh runtime with the plugin loaded.
    pub fn session(&self, config: Option<&Value>) -> Result<Session, ConformanceError> {
        let services = HostServices {
            signer: self.signer.clone(),
            ..HostServices::isolated()
        };
        let runtime = Runtime::new(self.settings(config), services)
            .map_err(|e| ConformanceError::Runtime(format!("{e:#}")))?;
        let info = runtime.load_component(
            &self.work_dir.join("plugin"),
            self.manifest_text.as_bytes(),
            &self.component,
        )?;
        Ok(Session {
            runtime,
            info,
            limit_faults: self.limit_faults.clone(),
        })
    }
}

/// A runtime with the plugin under test loaded.
pub(crate) struct Session {
    runtime: Runtime,
    pub info: PluginInfo,
    limit_faults: Rc<RefCell<Vec<String>>>,
}

fn classify<T>(r: Result<T, PluginError>, ok: impl FnOnce(T) -> Value) -> Outcome {
    match r {
        Ok(v) => Outcome::Ok(ok(v)),
        Err(PluginError::Returned { error, .. }) => Outcome::Error {
            kind: error.kind,
            message: error.message,
            failure: None,
        },
        Err(e) if e.is_fault() => Outcome::Fault(e),
        Err(e) => Outcome::Unavailable(e),
    }
}

impl Session {
    pub fn call(&self, call: &Call) -> Outcome {
        let mut outcome = self.dispatch(call);
        // Deadlines are wall-clock: on a loaded machine (CI, a shared
        // laptop) a call can miss a tight deadline through no fault of the
        // plugin. One retry in a fresh instance separates that from a plugin
        // that really runs too long, which misses it again.
        if matches!(outcome, Outcome::Fault(PluginError::Timeout { .. })) {
            outcome = self.dispatch(call);
        }
        if let Outcome::Fault(
            e @ (PluginError::Timeout { .. }
            | PluginError::MemoryLimit { .. }
            | PluginError::OutOfFuel { .. }
            | PluginError::OutputTooLarge { .. }),
        ) = &outcome
        {
            self.limit_faults
                .borrow_mut()
                .push(format!("{}: {e}", call.function()));
        }
        outcome
    }

    fn dispatch(&self, call: &Call) -> Outcome {
        let name = self.info.name.as_str();
        let rt = &self.runtime;
        match call {
            Call::IdentityTypes => classify(
                rt.identity_provider(name).and_then(|p| p.identity_types()),
                |v| value::strings_json(&v),
            ),
            Call::Verify(claim) => classify(
                rt.identity_provider(name).and_then(|p| p.verify(claim)),
                |v| value::verification_json(&v),
            ),
            Call::Modes => classify(rt.payment_provider(name).and_then(|p| p.modes()), |v| {
                value::strings_json(&v)
            }),
            Call::Authorize(charge) => classify(
                rt.payment_provider(name).and_then(|p| p.authorize(charge)),
                |v| value::receipt_json(&v),
            ),
            Call::Capture(reference, amount) => classify(
                rt.payment_provider(name)
                    .and_then(|p| p.capture(reference, amount)),
                |v| value::receipt_json(&v),
            ),
            Call::Refund(reference, amount, reason) => classify(
                rt.payment_provider(name)
                    .and_then(|p| p.refund(reference, amount, reason)),
                |v| value::receipt_json(&v),
            ),
            Call::FormatInfo => classify(
                rt.certificate_format(name).and_then(|p| p.format_info()),
                |v| value::format_info_json(&v),
            ),
            Call::Encode(credential) => classify(
                rt.certificate_format(name)
                    .and_then(|p| p.encode(credential)),
                |v| value::artifact_json(&v),
            ),
            Call::Decode(artifact) => classify(
                rt.certificate_format(name).and_then(|p| p.decode(artifact)),
                |v| value::decoded_json(&v),
            ),
            Call::ChannelInfo => classify(
                rt.distribution_channel(name).and_then(|p| p.channel_info()),
                |v| value::channel_info_json(&v),
            ),
            Call::DeliverMessage(message) => {
                match rt
                    .distribution_channel(name)
                    .and_then(|p| p.deliver(message))
                {
                    Ok(Delivery::Delivered(receipt)) => {
                        Outcome::Ok(value::delivery_receipt_json(&receipt))
                    }
                    Ok(Delivery::Retryable(e)) => Outcome::Error {
                        kind: e.kind,
                        message: e.message,
                        failure: Some("retryable"),
                    },
                    Ok(Delivery::Permanent(e)) => Outcome::Error {
                        kind: e.kind,
                        message: e.message,
                        failure: Some("permanent"),
                    },
                    Err(e) => classify::<()>(Err(e), |_| Value::Null),
                }
            }
            Call::Evaluate(query) => classify(
                rt.rollout_policy(name).and_then(|p| p.evaluate(query)),
                |v| value::decision_json(&v),
            ),
            Call::Interests => {
                classify(rt.event_subscriber(name).and_then(|p| p.interests()), |v| {
                    value::strings_json(&v)
                })
            }
            Call::DeliverEvents(batch) => classify(
                rt.event_subscriber(name).and_then(|p| p.deliver(batch)),
                |v| json!(v),
            ),
        }
    }
}
