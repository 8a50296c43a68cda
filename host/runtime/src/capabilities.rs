//! Host implementations of the capability interfaces in `wit/host.wit`.
//!
//! Each capability is checked twice: at load time (a component that imports a
//! capability it was not granted is refused) and here at call time, so a
//! bug in the load-time check cannot widen what a plugin can do.

mod http;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use wasmtime::component::Linker;
use wasmtime::{ResourceLimiter, StoreLimits};

use crate::bindings::host::divoc::plugin::{
    clock, config, http as http_wit, kv, log, mail, random, signer, types,
};
use crate::grants::EffectiveCapabilities;
use crate::services::{HostServices, KeyAlgorithm, KvError, MailError, OutgoingMail};

/// The largest single `random.get-random-bytes` request.
const MAX_RANDOM_BYTES: u32 = 65_536;
/// Plugin log lines are cut here so a plugin cannot flood the host's log.
const MAX_LOG_MESSAGE: usize = 4096;

/// Who a plugin is and what it may do; shared by all its instances.
#[derive(Debug)]
pub(crate) struct PluginContext {
    pub name: String,
    pub version: String,
    pub caps: EffectiveCapabilities,
    /// The plugin's own configuration section (a JSON object).
    pub config: serde_json::Value,
    pub services: HostServices,
    /// Largest response body the `http` capability hands back.
    pub max_http_body: usize,
}

/// The per-instance state kept in each `Store`.
pub(crate) struct StoreState {
    pub ctx: Arc<PluginContext>,
    pub limits: StoreLimits,
    pub memory_cap: usize,
    /// Set when a memory growth was refused, to report a memory-limit fault
    /// rather than a bare trap.
    pub memory_limit_hit: bool,
    /// The plugin's deadline for one call, counted in guest execution time:
    /// time spent inside host calls (a kv write waiting for its fsync, an
    /// HTTP request with its own time-out) is not charged to the plugin, so
    /// a slow disk or network cannot make a well-behaved plugin time out.
    pub deadline: Duration,
    pub call_started: Instant,
    pub host_time: Duration,
}

impl StoreState {
    pub fn new(ctx: Arc<PluginContext>, memory_cap: usize) -> StoreState {
        let limits = wasmtime::StoreLimitsBuilder::new()
            .memory_size(memory_cap)
            .instances(16)
            .tables(16)
            .memories(4)
            .trap_on_grow_failure(true)
            .build();
        StoreState {
            ctx,
            limits,
            memory_cap,
            memory_limit_hit: false,
            deadline: Duration::from_secs(1),
            call_started: Instant::now(),
            host_time: Duration::ZERO,
        }
    }

    /// Guest execution time left in the current call.
    pub fn guest_time_left(&self) -> Duration {
        let guest = self.call_started.elapsed().saturating_sub(self.host_time);
        self.deadline.saturating_sub(guest)
    }

    /// Runs a host call, keeping its time off the plugin's deadline.
    fn timed<R>(&mut self, f: impl FnOnce(&Self) -> R) -> R {
        let started = Instant::now();
        let r = f(self);
        self.host_time += started.elapsed();
        r
    }

    fn denied(&self, capability: &str) -> types::Error {
        types::Error::Rejected(format!(
            "capability `{capability}` is not granted to plugin `{}`",
            self.ctx.name
        ))
    }
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_limit_hit = true;
        }
        self.limits.memory_growing(current, desired, maximum)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Adds every capability interface to the linker.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    type Me = wasmtime::component::HasSelf<StoreState>;
    fn get(s: &mut StoreState) -> &mut StoreState {
        s
    }
    types::add_to_linker::<StoreState, Me>(linker, get)?;
    log::add_to_linker::<StoreState, Me>(linker, get)?;
    clock::add_to_linker::<StoreState, Me>(linker, get)?;
    random::add_to_linker::<StoreState, Me>(linker, get)?;
    kv::add_to_linker::<StoreState, Me>(linker, get)?;
    http_wit::add_to_linker::<StoreState, Me>(linker, get)?;
    signer::add_to_linker::<StoreState, Me>(linker, get)?;
    config::add_to_linker::<StoreState, Me>(linker, get)?;
    mail::add_to_linker::<StoreState, Me>(linker, get)?;
    Ok(())
}

impl types::Host for StoreState {}

impl log::Host for StoreState {
    fn log(&mut self, level: log::Level, message: String) {
        if !self.ctx.caps.log {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_MESSAGE {
            let mut cut = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (plugin, version) = (&self.ctx.name, &self.ctx.version);
        match level {
            log::Level::Trace => tracing::trace!(plugin, version, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, version, "{message}"),
            log::Level::Info => tracing::info!(plugin, version, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, version, "{message}"),
            log::Level::Error => tracing::error!(plugin, version, "{message}"),
        }
    }
}

impl clock::Host for StoreState {
    fn now(&mut self) -> clock::Datetime {
        if !self.ctx.caps.clock {
            // The load-time check refuses such components; answer the epoch
            // rather than trap if that check is ever bypassed.
            return clock::Datetime {
                seconds: 0,
                nanoseconds: 0,
            };
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        clock::Datetime {
            seconds: now.as_secs(),
            nanoseconds: now.subsec_nanos(),
        }
    }
}

impl random::Host for StoreState {
    fn get_random_bytes(&mut self, len: u32) -> Vec<u8> {
        if !self.ctx.caps.random {
            return Vec::new();
        }
        let mut bytes = vec![0u8; len.min(MAX_RANDOM_BYTES) as usize];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        bytes
    }
}

fn kv_error(e: KvError) -> types::Error {
    match e {
        KvError::QuotaExceeded { .. } => types::Error::Rejected(e.to_string()),
        KvError::Backend(m) => types::Error::Unavailable(m),
    }
}

/// Longest kv key, in bytes.
const MAX_KV_KEY: usize = 512;

impl kv::Host for StoreState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, types::Error> {
        if self.ctx.caps.kv_quota_bytes.is_none() {
            return Err(self.denied("kv"));
        }
        self.timed(|s| s.ctx.services.kv.get(&s.ctx.name, &key).map_err(kv_error))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), types::Error> {
        let Some(quota) = self.ctx.caps.kv_quota_bytes else {
            return Err(self.denied("kv"));
        };
        if key.is_empty() || key.len() > MAX_KV_KEY {
            return Err(types::Error::InvalidInput(format!(
                "kv keys are 1 to {MAX_KV_KEY} bytes"
            )));
        }
        self.timed(|s| {
            s.ctx
                .services
                .kv
                .set(&s.ctx.name, &key, &value, quota)
                .map_err(kv_error)
        })
    }

    fn delete(&mut self, key: String) -> Result<(), types::Error> {
        if self.ctx.caps.kv_quota_bytes.is_none() {
            return Err(self.denied("kv"));
        }
        self.timed(|s| {
            s.ctx
                .services
                .kv
                .delete(&s.ctx.name, &key)
                .map_err(kv_error)
        })
    }

    fn list_keys(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, types::Error> {
        if self.ctx.caps.kv_quota_bytes.is_none() {
            return Err(self.denied("kv"));
        }
        self.timed(|s| {
            s.ctx
                .services
                .kv
                .list(&s.ctx.name, &prefix, limit.min(10_000))
                .map_err(kv_error)
        })
    }
}

impl http_wit::Host for StoreState {
    fn send(&mut self, request: http_wit::Request) -> Result<http_wit::Response, types::Error> {
        if self.ctx.caps.http_origins.is_empty() {
            return Err(self.denied("http"));
        }
        // The request is bounded by its own time-out, at most the plugin's
        // deadline; its time is not charged to the plugin's guest time.
        let limit = self.deadline;
        self.timed(|s| http::send(&s.ctx, request, limit))
    }
}

impl StoreState {
    /// The key `key_id` if its purpose is granted and its algorithm is
    /// `algorithm`.
    fn granted_key(
        &self,
        key_id: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<crate::services::HostKey, types::Error> {
        let key = self
            .ctx
            .services
            .signer
            .keys()
            .into_iter()
            .find(|k| k.key_id == key_id)
            .filter(|k| self.ctx.caps.signer_purposes.contains(&k.purpose))
            .ok_or_else(|| {
                types::Error::Rejected(format!(
                    "key `{key_id}` is unknown or its purpose is not granted"
                ))
            })?;
        if key.algorithm != algorithm {
            return Err(types::Error::Rejected(format!(
                "key `{key_id}` is not an {algorithm:?} key"
            )));
        }
        Ok(key)
    }

    fn check_purpose(&self, purpose: &str) -> Result<(), types::Error> {
        if self.ctx.caps.signer_purposes.iter().any(|p| p == purpose) {
            Ok(())
        } else {
            Err(types::Error::Rejected(format!(
                "signing purpose `{purpose}` is not granted to plugin `{}`",
                self.ctx.name
            )))
        }
    }

    fn granted_keys(&self) -> impl Iterator<Item = crate::services::HostKey> + '_ {
        let purposes = &self.ctx.caps.signer_purposes;
        self.ctx
            .services
            .signer
            .keys()
            .into_iter()
            .filter(move |k| purposes.contains(&k.purpose))
    }

    fn sign_as(
        &self,
        key_id: &str,
        algorithm: KeyAlgorithm,
        data: &[u8],
    ) -> Result<Vec<u8>, types::Error> {
        let key = self.granted_key(key_id, algorithm)?;
        if !key.active {
            return Err(types::Error::Rejected(format!(
                "key `{key_id}` is rotated out: it verifies but no longer signs"
            )));
        }
        self.ctx
            .services
            .signer
            .sign(&key.key_id, data)
            .map_err(types::Error::Internal)
    }

    fn verify_as(
        &self,
        key_id: &str,
        algorithm: KeyAlgorithm,
        data: &[u8],
        signature: &[u8],
    ) -> Result<bool, types::Error> {
        let key = self.granted_key(key_id, algorithm)?;
        self.ctx
            .services
            .signer
            .verify(&key.key_id, data, signature)
            .map_err(types::Error::Internal)
    }
}

/// The 1.0 view of a key: only Ed25519 keys are shown through it.
fn to_wit_key(k: crate::services::HostKey) -> signer::PublicKey {
    signer::PublicKey {
        key_id: k.key_id,
        algorithm: signer::Algorithm::Ed25519,
        public_key: k.public_key,
        purpose: k.purpose,
        active: k.active,
    }
}

fn to_key_info(k: crate::services::HostKey) -> signer::KeyInfo {
    signer::KeyInfo {
        key_id: k.key_id,
        algorithm: wit_algorithm(k.algorithm),
        public_key: k.public_key,
        purpose: k.purpose,
        active: k.active,
        certificate: k.certificate,
    }
}

fn wit_algorithm(a: KeyAlgorithm) -> signer::KeyAlgorithm {
    match a {
        KeyAlgorithm::Ed25519 => signer::KeyAlgorithm::Ed25519,
        KeyAlgorithm::Es256 => signer::KeyAlgorithm::Es256,
    }
}

fn host_algorithm(a: signer::KeyAlgorithm) -> KeyAlgorithm {
    match a {
        signer::KeyAlgorithm::Ed25519 => KeyAlgorithm::Ed25519,
        signer::KeyAlgorithm::Es256 => KeyAlgorithm::Es256,
    }
}

impl signer::Host for StoreState {
    fn active_key(&mut self, purpose: String) -> Result<signer::PublicKey, types::Error> {
        self.check_purpose(&purpose)?;
        self.granted_keys()
            .find(|k| k.active && k.purpose == purpose && k.algorithm == KeyAlgorithm::Ed25519)
            .map(to_wit_key)
            .ok_or_else(|| types::Error::Unavailable(format!("no active key for `{purpose}`")))
    }

    fn public_keys(&mut self) -> Vec<signer::PublicKey> {
        self.granted_keys()
            .filter(|k| k.algorithm == KeyAlgorithm::Ed25519)
            .map(to_wit_key)
            .collect()
    }

    fn sign(
        &mut self,
        key_id: String,
        _algorithm: signer::Algorithm,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, types::Error> {
        self.sign_as(&key_id, KeyAlgorithm::Ed25519, &data)
    }

    fn verify(
        &mut self,
        key_id: String,
        _algorithm: signer::Algorithm,
        data: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<bool, types::Error> {
        self.verify_as(&key_id, KeyAlgorithm::Ed25519, &data, &signature)
    }

    fn active_key_for(
        &mut self,
        purpose: String,
        algorithm: signer::KeyAlgorithm,
    ) -> Result<signer::KeyInfo, types::Error> {
        self.check_purpose(&purpose)?;
        let algorithm = host_algorithm(algorithm);
        self.granted_keys()
            .find(|k| k.active && k.purpose == purpose && k.algorithm == algorithm)
            .map(to_key_info)
            .ok_or_else(|| {
                types::Error::Unavailable(format!("no active {algorithm:?} key for `{purpose}`"))
            })
    }

    fn key_infos(&mut self) -> Vec<signer::KeyInfo> {
        self.granted_keys().map(to_key_info).collect()
    }

    fn sign_with(
        &mut self,
        key_id: String,
        algorithm: signer::KeyAlgorithm,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, types::Error> {
        self.sign_as(&key_id, host_algorithm(algorithm), &data)
    }

    fn verify_with(
        &mut self,
        key_id: String,
        algorithm: signer::KeyAlgorithm,
        data: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<bool, types::Error> {
        self.verify_as(&key_id, host_algorithm(algorithm), &data, &signature)
    }
}

/// At most this many recipients per message, as the contract says.
const MAX_MAIL_RECIPIENTS: usize = 50;

impl mail::Host for StoreState {
    fn send(&mut self, message: mail::Email) -> Result<String, types::Error> {
        let Some(from) = self.ctx.caps.mail_sender.clone() else {
            return Err(self.denied("mail"));
        };
        if message.to.is_empty() || message.to.len() > MAX_MAIL_RECIPIENTS {
            return Err(types::Error::InvalidInput(format!(
                "a message goes to 1 to {MAX_MAIL_RECIPIENTS} addresses"
            )));
        }
        let key = message.idempotency_key.trim();
        if key.is_empty() || key.len() > 200 {
            return Err(types::Error::InvalidInput(
                "idempotency-key must be 1 to 200 characters".into(),
            ));
        }
        // The same key from the same plugin gives the same Message-ID, so a
        // retried send is recognisably the same message.
        let digest = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(self.ctx.name.as_bytes());
            h.update([0]);
            h.update(key.as_bytes());
            hex::encode(&h.finalize()[..16])
        };
        let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
        let message_id = format!("<{digest}.{}@{domain}>", self.ctx.name);
        let mail = OutgoingMail {
            from,
            to: message.to,
            subject: message.subject,
            text: message.text,
            html: message.html,
            attachments: message
                .attachments
                .into_iter()
                .map(|a| (a.name, a.media_type, a.data))
                .collect(),
            message_id: message_id.clone(),
        };
        let services = self.ctx.services.clone();
        let sent = self.timed(move |_| services.mail.send(&mail));
        match sent {
            Ok(()) => Ok(message_id),
            Err(MailError::Invalid(m)) => Err(types::Error::InvalidInput(m)),
            Err(MailError::Refused(m)) => Err(types::Error::Rejected(m)),
            Err(MailError::Unavailable(m)) => Err(types::Error::Unavailable(m)),
        }
    }
}

impl config::Host for StoreState {
    fn get(&mut self, key: String) -> Option<String> {
        if !self.ctx.caps.config {
            return None;
        }
        match self.ctx.config.get(&key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    fn get_json(&mut self) -> String {
        if !self.ctx.caps.config {
            return "{}".to_string();
        }
        self.ctx.config.to_string()
    }
}
