//! Configuration: built-in defaults, then a TOML file (`config/divoc.toml` or
//! `--config`), then `DIVOC_*` environment variables, then command-line flags.
//! Nested keys in the environment use `__`: `DIVOC_SERVER__LISTEN=0.0.0.0:80`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use divoc_api::TokenConfig;
use divoc_certificates::distribution::DistributionConfig;
use divoc_certificates::plugin_hooks::{PluginSettings, ProgramConfig};
use divoc_runtime::{EngineSettings, Grants, LimitSettings, RuntimeSettings};
use divoc_storage::DbOptions;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub server: ServerConfig,
    /// Rate limits and the gates of expensive work.
    pub admission: AdmissionConfig,
    pub storage: StorageConfig,
    pub issuer: IssuerConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub locale: LocaleConfig,
    pub plugins: PluginsConfig,
    /// The issue pipeline's plugins, paid programs and distribution.
    pub certificates: CertificatesConfig,
    /// The programme registry.
    pub rollout: RolloutConfig,
    /// The event log going out.
    pub events: EventsConfig,
    /// How statistics are published.
    pub stats: divoc_insight::stats::StatsConfig,
    /// Side-effect reports and ratings.
    pub feedback: FeedbackConfig,
    /// The SMTP relay behind the plugins' `mail` capability.
    pub mail: MailConfig,
}

/// `[admission]`: who gets served when more arrives than the machine can
/// do (divoc-api's `admission` module says how each bound works).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdmissionConfig {
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is
    /// believed; from anyone else the header is ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Sustained requests a second one address may make to the routes that
    /// take no token.
    pub public_per_second: u32,
    /// How many at once after a quiet spell.
    pub public_burst: u32,
    /// What one QR image search costs against that, in requests.
    pub image_cost: u32,
    /// Sign-in codes one address may ask for in an hour.
    pub sign_in_per_hour: u32,
    /// Sign-in codes the service sends in a minute, in all.
    pub sign_in_total_per_minute: u32,
    /// Longest one QR image search may take before the client is answered.
    pub image_budget_ms: u64,
    /// QR image searches.
    pub images: GateConfig,
    /// PDF renderings.
    pub pdfs: GateConfig,
    /// CSV uploads, certificate imports, programme activations.
    pub imports: GateConfig,
    /// How the public lane's threads (connections without a token the
    /// server accepts) are scheduled: "nice-N", "idle" or "same" (no lane).
    pub public_lane_priority: divoc_api::lanes::Priority,
    /// The public lane's worker threads.
    pub public_lane_threads: usize,
    /// How long a new connection's first request head may take to arrive
    /// before the connection is placed in the public lane without it.
    pub lane_classify_wait_ms: u64,
}

/// One gate: how many run at once, how many wait, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GateConfig {
    pub concurrency: usize,
    pub queue: usize,
    pub queue_wait_ms: u64,
}

impl From<divoc_api::admission::GateSettings> for GateConfig {
    fn from(g: divoc_api::admission::GateSettings) -> Self {
        GateConfig {
            concurrency: g.concurrency,
            queue: g.queue,
            queue_wait_ms: g.queue_wait.as_millis() as u64,
        }
    }
}

impl From<GateConfig> for divoc_api::admission::GateSettings {
    fn from(g: GateConfig) -> Self {
        divoc_api::admission::GateSettings {
            concurrency: g.concurrency,
            queue: g.queue,
            queue_wait: Duration::from_millis(g.queue_wait_ms),
        }
    }
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        let d = divoc_api::admission::AdmissionSettings::default();
        let lanes = divoc_api::lanes::LaneSettings::default();
        AdmissionConfig {
            trusted_proxies: d.trusted_proxies,
            public_per_second: d.public_per_second,
            public_burst: d.public_burst,
            image_cost: d.image_cost,
            sign_in_per_hour: d.sign_in_per_hour,
            sign_in_total_per_minute: d.sign_in_total_per_minute,
            image_budget_ms: d.image_budget.as_millis() as u64,
            images: d.images.into(),
            pdfs: d.pdfs.into(),
            imports: d.imports.into(),
            public_lane_priority: lanes.public_priority,
            public_lane_threads: lanes.public_threads,
            lane_classify_wait_ms: lanes.classify_wait.as_millis() as u64,
        }
    }
}

impl AdmissionConfig {
    /// The API's settings.
    pub fn settings(&self) -> divoc_api::admission::AdmissionSettings {
        divoc_api::admission::AdmissionSettings {
            trusted_proxies: self.trusted_proxies.clone(),
            public_per_second: self.public_per_second,
            public_burst: self.public_burst,
            image_cost: self.image_cost,
            sign_in_per_hour: self.sign_in_per_hour,
            sign_in_total_per_minute: self.sign_in_total_per_minute,
            image_budget: Duration::from_millis(self.image_budget_ms),
            images: self.images.into(),
            pdfs: self.pdfs.into(),
            imports: self.imports.into(),
        }
    }

    /// The connection lanes' settings; the public lane may start as many
    /// blocking threads as the server's runtime.
    pub fn lanes(&self, blocking_threads: usize) -> divoc_api::lanes::LaneSettings {
        divoc_api::lanes::LaneSettings {
            public_threads: self.public_lane_threads,
            public_blocking_threads: blocking_threads,
            public_priority: self.public_lane_priority,
            classify_wait: Duration::from_millis(self.lane_classify_wait_ms),
        }
    }
}

/// `[mail]`: where plugins' e-mail goes (the `mail` capability; each plugin
/// is granted its sender address under `[plugins.grants.<name>] mail-sender`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MailConfig {
    /// `smtp://host:port` (plain; `?tls=required` for STARTTLS),
    /// `smtps://host:port` (TLS), with optional `user:password@`. Absent:
    /// no relay, and every send is `unavailable` (retried later).
    pub smtp_url: Option<String>,
    /// How long one SMTP exchange may take.
    pub timeout_ms: Option<u64>,
}

/// `[feedback]`: side-effect (AEFI) reports and ratings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FeedbackConfig {
    /// The report form: a JSON Schema and its labels per language; absent,
    /// the shipped form (`config/feedback/aefi-form.json`, built in).
    pub form: Option<figment::value::magic::RelativePathBuf>,
    /// Who is alerted (through the distribution channels) of a serious
    /// report: `mailto:` and `tel:` contacts.
    pub alert_contacts: Vec<String>,
    /// Severity rules; a report takes the highest grade it meets.
    pub severity: Vec<divoc_feedback::SeverityRule>,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        FeedbackConfig {
            form: None,
            alert_contacts: Vec::new(),
            severity: divoc_feedback::severity::default_rules(),
        }
    }
}

/// `[events]`: the event log going out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EventsConfig {
    /// How event-subscriber plugins are fed.
    pub subscribers: divoc_insight::FeedConfig,
}

/// `[rollout]`: the programme registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RolloutConfig {
    /// Days an upload's refused rows (the cells as sent, personal data for
    /// pre-enrolments) are kept for `errors.csv`; 0 keeps them.
    pub upload_errors_days: u32,
    /// How many days ahead appointments can be booked.
    pub booking_days_ahead: u32,
    /// A recipient cannot cancel or move a booking later than this many
    /// hours before its slot.
    pub cancel_cutoff_hours: u32,
    /// How many times one booking may be moved.
    pub reschedule_limit: u32,
    /// Daily rates: `enforce` (refuse over the rate, 429) or `warn`
    /// (record, with an audit entry).
    pub rate_limits: divoc_rollout::RateMode,
    /// Days before a next dose's earliest date its reminder goes out.
    pub reminder_days_before: u32,
    /// People one phone number may enrol in a programme through the API
    /// (0: no limit).
    pub members_per_contact: usize,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        let booking = divoc_rollout::BookingRules::default();
        RolloutConfig {
            upload_errors_days: 30,
            booking_days_ahead: booking.days_ahead,
            cancel_cutoff_hours: booking.cancel_cutoff_hours,
            reschedule_limit: booking.reschedule_limit,
            rate_limits: divoc_rollout::RateMode::Enforce,
            reminder_days_before: divoc_rollout::RecordingRules::default().reminder_days_before,
            members_per_contact: 4,
        }
    }
}

impl RolloutConfig {
    /// The appointment rules these settings make.
    pub fn booking(&self) -> divoc_rollout::BookingRules {
        divoc_rollout::BookingRules {
            days_ahead: self.booking_days_ahead,
            cancel_cutoff_hours: self.cancel_cutoff_hours,
            reschedule_limit: self.reschedule_limit,
        }
    }

    /// The recording rules these settings make.
    pub fn recording(&self) -> divoc_rollout::RecordingRules {
        divoc_rollout::RecordingRules {
            rate_mode: self.rate_limits,
            reminder_days_before: self.reminder_days_before,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The URL clients reach this service at; used in credentials (ids,
    /// status list links).
    pub public_url: String,
    pub body_limit_kib: usize,
    pub request_timeout_ms: u64,
    /// Largest CSV upload (`POST /v1/uploads/{kind}`); streamed.
    pub upload_limit_mib: usize,
    /// Longest an upload may take.
    pub upload_timeout_s: u64,
    /// Most threads for blocking work (plugin calls, database reads, PDF
    /// rendering); more of it waits its turn. Each thread costs memory, and
    /// two cores cannot run more than two at once.
    pub blocking_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://localhost:8080".into(),
            body_limit_kib: 1024,
            request_timeout_ms: 30_000,
            upload_limit_mib: 1024,
            upload_timeout_s: 3600,
            blocking_threads: 8,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageConfig {
    /// Holds the database, keys, the generated admin token and the compile cache.
    pub data_dir: PathBuf,
    /// Where the records live: the embedded SQLite file in the data dir
    /// (the default), or a PostgreSQL database at `url` shared by any
    /// number of hosts (docs/SCALE.md).
    pub backend: StorageBackend,
    /// The PostgreSQL database for `backend = "postgres"`, e.g.
    /// `postgres://divoc:…@db.internal:5432/divoc` (a password here is
    /// never logged; `PGPASSWORD`-style secrets can come from the
    /// environment as `DIVOC_STORAGE__URL`).
    pub url: Option<String>,
    /// Hours a delivered outbox item (a certificate's delivery, a sign-in
    /// code, a reminder) is kept for `GET /v1/outbox` and a certificate's
    /// delivery status before it is deleted; 0 deletes it within a minute
    /// of delivery. Failed items are kept.
    pub keep_delivered_hours: u32,
    /// Read-only database connections (concurrent reads).
    pub readers: usize,
    /// The writer's page cache, KiB.
    pub writer_cache_kib: u32,
    /// Each reader's page cache, KiB.
    pub reader_cache_kib: u32,
    /// Page size of a new database (512-65536, a power of two; an existing
    /// database keeps its own).
    pub page_size: u32,
}

/// The storage backend (`storage.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageBackend {
    /// `divoc.sqlite` in the data dir.
    #[default]
    Sqlite,
    /// The PostgreSQL database at `storage.url`.
    Postgres,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            backend: StorageBackend::Sqlite,
            url: None,
            keep_delivered_hours: 24,
            readers: DbOptions::default().readers,
            writer_cache_kib: DbOptions::default().writer_cache_kib,
            reader_cache_kib: DbOptions::default().reader_cache_kib,
            page_size: DbOptions::default().page_size,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct IssuerConfig {
    /// The issuer's DID; `did:web:<host>` publishes `/.well-known/did.json`.
    pub did: String,
    /// Key purposes to keep a signing key for.
    pub purposes: Vec<String>,
    /// Operator-provided signing keys (`[[issuer.key-files]]`), e.g. made
    /// in an HSM ceremony: on first sight each is copied into the keyring
    /// and becomes the active key of its purpose, retiring the generated
    /// one (which keeps verifying).
    pub key_files: Vec<KeyFile>,
    /// `[issuer.es256]`: ECDSA P-256 keys for the formats whose standards
    /// require them (EU DCC, SMART Health Cards), kept in `<data-dir>/keys/es256`.
    pub es256: divoc_crypto::keys::es256::Es256Config,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        IssuerConfig {
            did: "did:web:localhost%3A8080".into(),
            purposes: vec!["certificate".into()],
            key_files: Vec::new(),
            es256: divoc_crypto::keys::es256::Es256Config::default(),
        }
    }
}

impl IssuerConfig {
    /// The keyring's view: paths resolved against the config file.
    pub fn keyring_config(&self) -> divoc_crypto::keys::IssuerConfig {
        divoc_crypto::keys::IssuerConfig {
            did: self.did.clone(),
            purposes: self.purposes.clone(),
            key_files: self
                .key_files
                .iter()
                .map(|k| divoc_crypto::keys::KeyFileConfig {
                    path: k.path.relative(),
                    purpose: k.purpose.clone(),
                })
                .collect(),
        }
    }
}

/// `[[issuer.key-files]]`: a PKCS#8 PEM Ed25519 private key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeyFile {
    /// The PEM file; relative to the config file that names it.
    pub path: figment::value::magic::RelativePathBuf,
    /// The purpose it signs for.
    #[serde(default = "certificate_purpose")]
    pub purpose: String,
}

fn certificate_purpose() -> String {
    divoc_crypto::keys::DEFAULT_PURPOSE.to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `divoc=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// `[locale]`: where the deployment is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LocaleConfig {
    /// The deployment's IANA time zone (e.g. `Asia/Kolkata`). Local
    /// date-times without an offset — DIVOC's clients send
    /// `2020-03-24T19:21:19.646` — are read in it; every stored and
    /// issued time is UTC. Default `UTC`.
    pub time_zone: divoc_time::Zone,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
    /// Accept JWTs of an external OpenID Connect provider (issuer,
    /// audience, JWKS URL; role and facilities from claims).
    pub oidc: Option<divoc_api::oidc::OidcConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginsConfig {
    /// One sub-directory per plugin: `plugin.toml` + `<name>.wasm`.
    pub dir: PathBuf,
    /// Reload when the directory changes.
    pub watch: bool,
    pub engine: EngineSettings,
    pub limits: LimitSettings,
    pub grants: Grants,
    pub config: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: PathBuf::from("target/plugins"),
            watch: true,
            engine: EngineSettings::default(),
            limits: LimitSettings::default(),
            grants: Grants::default(),
            config: Default::default(),
        }
    }
}

impl PluginsConfig {
    pub fn runtime_settings(&self, data_dir: &Path) -> RuntimeSettings {
        let mut engine = self.engine.clone();
        if engine.cache_dir.is_none() {
            engine.cache_dir = Some(data_dir.join("cache").join("wasmtime"));
        }
        RuntimeSettings {
            engine,
            limits: self.limits.clone(),
            grants: self.grants.clone(),
            config: self.config.clone(),
        }
    }
}

/// Overrides given on the command line.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub plugins: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
}

/// The default config file, used when it exists and no `--config` is given.
pub const DEFAULT_FILE: &str = "config/divoc.toml";

impl Config {
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(path.is_file(), "config file {} not found", path.display());
                figment = figment.merge(Toml::file(path));
            }
            None if Path::new(DEFAULT_FILE).is_file() => {
                figment = figment.merge(Toml::file(DEFAULT_FILE));
            }
            None => {}
        }
        // `DIVOC_ADMIN_TOKEN` is handled by `serve`, not as a config key;
        // the others are the project's scripts' (the CI's build cache, the
        // guest toolchain's dirs), inherited by a server a script starts.
        figment = figment.merge(
            Env::prefixed("DIVOC_")
                .ignore(&[
                    "admin_token",
                    "log",
                    "guest_target_dir",
                    "sdk_path",
                    "ci_cache",
                ])
                .split("__")
                .map(|k| k.as_str().replace('_', "-").into()),
        );
        let mut config: Config = figment.extract().context("invalid configuration")?;
        if let Some(d) = &overrides.data_dir {
            config.storage.data_dir = d.clone();
        }
        if let Some(l) = overrides.listen {
            config.server.listen = l;
        }
        if let Some(p) = &overrides.plugins {
            config.plugins.dir = p.clone();
        }
        if let Some(f) = overrides.log_format {
            config.log.format = f;
        }
        let cwd = std::env::current_dir().context("cannot read the working directory")?;
        config.resolve_paths(&cwd);
        Ok(config)
    }

    /// Makes every path absolute, once, at start-up: relative paths from
    /// flags, the environment and the built-in defaults are taken against
    /// `cwd`, relative paths in a config file against that file (figment's
    /// `RelativePathBuf`). Everything downstream (the wasmtime compile
    /// cache among them, which refuses relative paths) then sees one
    /// meaning for each path, whatever directory a worker thread runs in.
    pub fn resolve_paths(&mut self, cwd: &Path) {
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                cwd.join(p)
            }
        };
        self.storage.data_dir = abs(&self.storage.data_dir);
        self.plugins.dir = abs(&self.plugins.dir);
        if let Some(cache) = &self.plugins.engine.cache_dir {
            self.plugins.engine.cache_dir = Some(abs(cache));
        }
        for key in &mut self.issuer.key_files {
            key.path = abs(&key.path.relative()).into();
        }
        let templates = abs(&self.certificates.pdf.templates.relative());
        self.certificates.pdf.templates = templates.into();
        if let Some(form) = &self.feedback.form {
            self.feedback.form = Some(abs(&form.relative()).into());
        }
    }
}

/// `[certificates]`: the issue pipeline's plugins and programs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CertificatesConfig {
    /// Corrections allowed per dose (`PUT /v1/certificates/{id}`); 0 = none.
    pub max_corrections: u32,
    /// Link for side-effect reports put in every vaccination credential;
    /// `{id}` is replaced by the certificate id.
    pub feedback_url: Option<String>,
    /// Link to the program's information page, put in every vaccination
    /// credential.
    pub info_url: Option<String>,
    /// Identity type → `identity-provider` plugin. Types not listed go to
    /// the plugin whose `identity-types()` names them.
    pub identity_providers: BTreeMap<String, String>,
    /// Payment mode → `payment-provider` plugin. Modes not listed go to the
    /// plugin whose `modes()` names them.
    pub payment_providers: BTreeMap<String, String>,
    /// Per-program settings, by program id.
    pub programs: BTreeMap<String, ProgramConfig>,
    /// Delivery of issued certificates.
    pub distribution: DistributionConfig,
    /// Operator-defined credential types (`[certificates.types.<name>]`),
    /// issued at `POST /v1/credentials/<name>`.
    pub types: BTreeMap<String, divoc_certificates::types::CredentialType>,
    /// Printable certificates.
    pub pdf: PdfConfig,
}

impl Default for CertificatesConfig {
    fn default() -> Self {
        CertificatesConfig {
            max_corrections: 3,
            feedback_url: None,
            info_url: None,
            identity_providers: BTreeMap::new(),
            payment_providers: BTreeMap::new(),
            programs: BTreeMap::new(),
            distribution: DistributionConfig::default(),
            types: BTreeMap::new(),
            pdf: PdfConfig::default(),
        }
    }
}

/// `[certificates.pdf]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PdfConfig {
    /// The directory of PDF templates (one `<lang>.toml` each, fonts
    /// beside them). Relative paths in a config file are relative to that
    /// file; without a file, to the working directory.
    pub templates: figment::value::magic::RelativePathBuf,
}

impl Default for PdfConfig {
    fn default() -> Self {
        PdfConfig {
            templates: PathBuf::from("config/templates/pdf").into(),
        }
    }
}

impl CertificatesConfig {
    /// Refuses settings that could only fail later, per request.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (key, url) in [
            ("feedback-url", &self.feedback_url),
            ("info-url", &self.info_url),
        ] {
            if let Some(url) = url {
                let parsed = url::Url::parse(&url.replace("{id}", "id"));
                anyhow::ensure!(
                    parsed.is_ok_and(|u| matches!(u.scheme(), "https" | "http")),
                    "certificates.{key} must be an http(s) URL, not {url:?}"
                );
            }
        }
        for (program, p) in &self.programs {
            if let Some(pay) = &p.payment {
                pay.check(program).map_err(anyhow::Error::msg)?;
            }
        }
        for (name, t) in &self.types {
            t.check(name)?;
        }
        self.distribution.validate().map_err(anyhow::Error::msg)
    }

    /// What the issue pipeline's plugin hooks need.
    pub fn plugin_settings(&self) -> PluginSettings {
        PluginSettings {
            identity_providers: self.identity_providers.clone(),
            payment_providers: self.payment_providers.clone(),
            programs: self.programs.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_shipped_config_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/divoc.toml");
        let config = Config::load(Some(&path), &Overrides::default()).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(config.plugins.dir, cwd.join("target/plugins"));
        assert_eq!(config.storage.data_dir, cwd.join("data"));
        assert!(config.plugins.grants.contains_key("format-jws"));
        // The documented defaults are the built-in ones.
        assert_eq!(config.events, EventsConfig::default());
        assert_eq!(config.stats, Default::default());
        assert_eq!(config.feedback.severity, FeedbackConfig::default().severity);
        assert!(config.feedback.form.is_none());
        assert_eq!(config.certificates.distribution.channels, ["notify-log"]);
    }

    #[test]
    fn flags_override_the_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/divoc.toml");
        let overrides = Overrides {
            listen: Some("127.0.0.1:9999".parse().unwrap()),
            data_dir: Some("/tmp/x".into()),
            ..Overrides::default()
        };
        let config = Config::load(Some(&path), &overrides).unwrap();
        assert_eq!(config.server.listen.port(), 9999);
        assert_eq!(config.storage.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn key_files_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[[issuer.key-files]]\npath = \"keys/a.pem\"\n\
             [[issuer.key-files]]\npath = \"/abs/b.pem\"\npurpose = \"status\"\n\
             [certificates]\nmax-corrections = 1\n",
        )
        .unwrap();
        let config = Config::load(Some(&path), &Overrides::default()).unwrap();
        let keyring = config.issuer.keyring_config();
        assert_eq!(keyring.key_files.len(), 2);
        assert_eq!(keyring.key_files[0].path, dir.path().join("keys/a.pem"));
        assert_eq!(keyring.key_files[0].purpose, "certificate");
        assert_eq!(keyring.key_files[1].path, Path::new("/abs/b.pem"));
        assert_eq!(keyring.key_files[1].purpose, "status");
        assert_eq!(config.certificates.max_corrections, 1);
        // Without a file: the defaults.
        let config = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(config.certificates.max_corrections, 3);
        assert!(config.issuer.key_files.is_empty());
    }

    #[test]
    fn every_path_is_absolute_after_loading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[storage]\ndata-dir = \"rel/data\"\n\
             [plugins]\ndir = \"rel/plugins\"\n\
             [plugins.engine]\ncache-dir = \"rel/cache\"\n\
             [certificates.pdf]\ntemplates = \"tpl\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            data_dir: Some("flag/data".into()),
            ..Overrides::default()
        };
        let config = Config::load(Some(&path), &overrides).unwrap();
        let cwd = std::env::current_dir().unwrap();
        // Flags and plain keys: against the working directory.
        assert_eq!(config.storage.data_dir, cwd.join("flag/data"));
        assert_eq!(config.plugins.dir, cwd.join("rel/plugins"));
        assert_eq!(
            config.plugins.engine.cache_dir.as_deref(),
            Some(cwd.join("rel/cache").as_path())
        );
        // Relative-to-the-file keys: against the file's directory.
        assert_eq!(
            config.certificates.pdf.templates.relative(),
            dir.path().join("tpl")
        );
        let settings = config.plugins.runtime_settings(&config.storage.data_dir);
        assert!(settings.engine.cache_dir.unwrap().is_absolute());
        // The built-in default data dir too.
        let config = Config::load(None, &Overrides::default()).unwrap();
        assert!(config.storage.data_dir.is_absolute());
        assert!(config
            .plugins
            .runtime_settings(&config.storage.data_dir)
            .engine
            .cache_dir
            .unwrap()
            .is_absolute());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1\"\nsurprise = 1\n").unwrap();
        let err = Config::load(Some(&path), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("surprise"), "{err:#}");
    }

    #[test]
    fn the_shipped_config_has_the_pipeline_sections() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/divoc.toml");
        let config = Config::load(Some(&path), &Overrides::default()).unwrap();
        config.certificates.validate().unwrap();
        let demo = &config.certificates.programs["demo-paid"];
        assert_eq!(demo.payment.as_ref().unwrap().currency, "INR");
        assert!(config.certificates.distribution.max_attempts > 1);
    }

    #[test]
    fn bad_certificate_settings_are_refused_at_start() {
        let c = CertificatesConfig {
            feedback_url: Some("ftp://example.org/{id}".into()),
            ..CertificatesConfig::default()
        };
        assert!(format!("{:#}", c.validate().unwrap_err()).contains("feedback-url"));
        let mut c = CertificatesConfig::default();
        c.distribution.max_attempts = 0;
        assert!(format!("{:#}", c.validate().unwrap_err()).contains("max-attempts"));
    }
}
