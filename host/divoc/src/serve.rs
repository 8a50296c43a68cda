//! `divoc serve`: open (or create) everything under the data dir, load the
//! plugins and answer HTTP until told to stop.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use divoc_api::{AppState, HttpSettings, Principal, Role, TokenTable};
use divoc_crypto::keys::es256::Es256Keyring;
use divoc_crypto::keys::Keyring;
use divoc_runtime::{HostServices, Runtime, Watcher};
use divoc_storage::{Database, DbOptions};
use rand::RngCore;

use crate::config::{Config, StorageBackend};
use crate::wiring::{KeyringSigner, RuntimeFormats, RuntimePolicies, SmtpMail, StorageKv};
use divoc_certificates::capture;
use divoc_certificates::distribution;
use divoc_certificates::plugin_hooks::PluginHooks;

/// The opened state of a data directory, shared by `serve` and the CLI tools.
pub struct Host {
    pub db: Database,
    pub keyring: Keyring,
    /// On PostgreSQL: the keyring's keys are the database's, shared by
    /// every host (rotated through this).
    pub shared_keys: Option<divoc_certificates::shared_keys::SharedKeys>,
    pub es256: Es256Keyring,
}

/// Creates the data dir (0700) and opens the database in it.
pub fn open_database(config: &Config) -> anyhow::Result<Database> {
    let data = &config.storage.data_dir;
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data dir {}", data.display()))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", data.display()))?;
    let page = config.storage.page_size;
    anyhow::ensure!(
        page.is_power_of_two() && (512..=65_536).contains(&page),
        "storage.page-size must be a power of two from 512 to 65536, not {page}"
    );
    let options = DbOptions {
        readers: config.storage.readers.max(1),
        writer_cache_kib: config.storage.writer_cache_kib,
        reader_cache_kib: config.storage.reader_cache_kib,
        page_size: config.storage.page_size,
        ..DbOptions::default()
    };
    match config.storage.backend {
        StorageBackend::Sqlite => {
            Database::open(&data.join("divoc.sqlite"), options).context("cannot open the database")
        }
        StorageBackend::Postgres => {
            let url = config
                .storage
                .url
                .as_deref()
                .filter(|u| !u.is_empty())
                .context("storage.backend is \"postgres\" but storage.url is not set")?;
            Database::open_postgres(url, options).with_context(|| {
                format!(
                    "cannot open the PostgreSQL database {}",
                    divoc_storage::pg::redact(url)
                )
            })
        }
    }
}

/// Creates the data dir (0700) and opens the database and the keyring.
pub fn open_host(config: &Config) -> anyhow::Result<Host> {
    let data = &config.storage.data_dir;
    let db = open_database(config)?;
    let keyring = Keyring::open_or_create(&data.join("keys"), &config.issuer.keyring_config())
        .context("cannot open the keyring")?;
    let es256 = Es256Keyring::open_or_create(&data.join("keys"), &config.issuer.es256)
        .context("cannot open the ES256 keyring")?;
    let shared_keys = divoc_certificates::shared_keys::SharedKeys::open(
        &db,
        &keyring,
        &es256,
        &data.join("keys"),
    )
    .context("cannot share the issuer keys through the database")?;
    Ok(Host {
        db,
        keyring,
        shared_keys,
        es256,
    })
}

/// Why a data dir's lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum DataDirLockError {
    /// A running server holds it.
    #[error("a divoc server is running on {0}")]
    Busy(PathBuf),
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Takes the data dir's lock (`<data-dir>/divoc.lock`, an exclusive
/// advisory lock the kernel drops when the process ends, even on kill -9):
/// one server per data dir, and CLI tools that change what a running
/// server keeps in memory (key rotation) refuse while one runs.
pub fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, DataDirLockError> {
    let path = data_dir.join("divoc.lock");
    let io = |source| DataDirLockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DataDirLockError::Busy(data_dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// The key of enrolments' person hashes (`<data-dir>/keys/person-key`, 32
/// random bytes made on first run, mode 0600): beside the issuer keys and
/// outside the database, so a copy of the database alone does not let one
/// test identity numbers against the hashes.
fn person_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    use std::io::Write as _;
    let path = data_dir.join("keys").join("person-key");
    match std::fs::read(&path) {
        Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| anyhow::anyhow!("{} is not 32 bytes", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.write_all(&key)?;
            file.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The admin token file generated on first run.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

/// Builds the token table: configured tokens, plus `DIVOC_ADMIN_TOKEN`, plus
/// a generated admin token when no admin token exists at all.
fn tokens(config: &Config) -> anyhow::Result<TokenTable> {
    let mut table = TokenTable::from_config(&config.auth.tokens)?;
    let has_admin = config.auth.tokens.iter().any(|t| t.role == Role::Admin);
    let admin = |name: &str| Principal {
        name: name.to_string(),
        role: Role::Admin,
        facilities: Vec::new(),
        contacts: Vec::new(),
        daily_rates: Default::default(),
    };
    if let Ok(token) = std::env::var("DIVOC_ADMIN_TOKEN") {
        anyhow::ensure!(
            token.len() >= 16,
            "DIVOC_ADMIN_TOKEN must be at least 16 characters"
        );
        table.add(&token, admin("env:DIVOC_ADMIN_TOKEN"));
    } else if !has_admin {
        let path = admin_token_path(&config.storage.data_dir);
        let token = match std::fs::read_to_string(&path) {
            Ok(t) => t.trim().to_string(),
            Err(_) => {
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let token = hex::encode(bytes);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                writeln!(file, "{token}")?;
                file.sync_all()?;
                tracing::warn!(
                    path = %path.display(),
                    "no admin token configured: generated one (read it from this file)"
                );
                token
            }
        };
        table.add(&token, admin("generated"));
    }
    Ok(table)
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    config
        .certificates
        .validate()
        .context("invalid [certificates] configuration")?;
    config
        .events
        .subscribers
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid [events] configuration")?;
    // Held until `serve` returns.
    let _lock = lock_data_dir(&config.storage.data_dir)?;
    // Before anything records (plugins resolve their metric handles when
    // they load).
    let metrics = divoc_api::metrics::install()
        .map_err(anyhow::Error::msg)
        .context("installing the metrics recorder")?;
    tracing::info!(
        data_dir = %config.storage.data_dir.display(),
        plugins_dir = %config.plugins.dir.display(),
        time_zone = %config.locale.time_zone.name(),
        "using data dir"
    );
    let host = open_host(&config)?;
    let clock = divoc_time::SystemClock::shared();
    let mut table = tokens(&config)?.with_store(divoc_api::tokens::TokenStore::new(
        host.db.clone(),
        clock.clone(),
    ));
    if let Some(oidc) = &config.auth.oidc {
        let verifier = divoc_api::oidc::OidcVerifier::new(oidc.clone())?;
        // A provider down at start must not keep the service down: its
        // tokens are refused until a refresh succeeds.
        let first = verifier.clone();
        match tokio::task::spawn_blocking(move || first.refresh()).await? {
            Ok(n) => tracing::info!(keys = n, issuer = %oidc.issuer, "OIDC provider keys loaded"),
            Err(e) => tracing::warn!(error = %e, "OIDC provider keys not loaded yet"),
        }
        verifier.spawn_refresh();
        table = table.with_oidc(verifier);
    }
    let tokens = Arc::new(table);
    let services = HostServices {
        kv: Arc::new(StorageKv(host.db.clone())),
        signer: Arc::new(KeyringSigner {
            ed25519: host.keyring.clone(),
            es256: host.es256.clone(),
        }),
        mail: match SmtpMail::from_config(&config.mail)? {
            Some(relay) => Arc::new(relay),
            None => Arc::new(divoc_runtime::NoMail),
        },
    };
    let settings = config.plugins.runtime_settings(&config.storage.data_dir);
    let plugins_dir = config.plugins.dir.clone();
    let (runtime, _watcher) = tokio::task::spawn_blocking({
        let plugins_dir = plugins_dir.clone();
        let watch = config.plugins.watch;
        move || -> anyhow::Result<(Runtime, Option<Watcher>)> {
            let runtime = Runtime::new(settings, services)?;
            if !plugins_dir.is_dir() {
                std::fs::create_dir_all(&plugins_dir).with_context(|| {
                    format!("cannot create plugins dir {}", plugins_dir.display())
                })?;
            }
            let report = runtime.reload_dir(&plugins_dir);
            tracing::info!(
                dir = %plugins_dir.display(),
                loaded = ?report.loaded,
                rejected = report.rejected.len(),
                pooling = runtime.pooling(),
                "plugins loaded"
            );
            let watcher = if watch {
                Some(Watcher::start(runtime.clone(), &plugins_dir)?)
            } else {
                None
            };
            Ok((runtime, watcher))
        }
    })
    .await??;

    let certificates = {
        let (db, keyring) = (host.db.clone(), host.keyring.clone());
        let mut cfg = divoc_certificates::ServiceConfig::new(&config.server.public_url);
        cfg.clock = clock.clone();
        cfg.zone = config.locale.time_zone.clone();
        cfg.max_corrections = config.certificates.max_corrections;
        // Every credential links to where its holder reports side effects:
        // this host's /feedback page unless another is configured.
        cfg.credential.feedback_url =
            Some(config.certificates.feedback_url.clone().unwrap_or_else(|| {
                format!(
                    "{}/feedback/{{id}}",
                    config.server.public_url.trim_end_matches('/')
                )
            }));
        cfg.credential.info_url = config.certificates.info_url.clone();
        cfg.distribution_channels = config.certificates.distribution.channels.clone();
        cfg.types = config.certificates.types.clone();
        let hooks = Arc::new(PluginHooks::new(
            runtime.clone(),
            config.certificates.plugin_settings(),
        ));
        tokio::task::spawn_blocking(move || {
            divoc_certificates::CertificateService::open_with_hooks(db, keyring, cfg, hooks)
        })
        .await?
        .context("cannot open the certificate module")?
    };
    let templates = config.certificates.pdf.templates.relative();
    let pdf = divoc_pdf::PdfRenderer::load(&templates)
        .with_context(|| format!("loading PDF templates from {}", templates.display()))?
        .with_time_zone(config.locale.time_zone.clone());
    tracing::info!(languages = ?pdf.languages(), "PDF templates loaded");
    // Shared by the API and the distribution worker (certificate e-mail).
    let pdf = Arc::new(pdf);
    // The distribution worker runs while the server does; `stop` ends it.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let delivery = &config.certificates.distribution;
    let worker = if delivery.channels.is_empty() {
        tracing::info!("no distribution channels configured: certificates stay in the outbox");
        None
    } else {
        for channel in &delivery.channels {
            if let Err(e) = runtime.distribution_channel(channel) {
                // Not fatal: hot swap may load it; rows retry meanwhile.
                tracing::warn!(channel = %channel, "distribution channel not usable yet: {e}");
            }
        }
        let worker = distribution::Worker {
            db: host.db.clone(),
            runtime: runtime.clone(),
            config: delivery.clone(),
            public_url: config.server.public_url.clone(),
            clock: clock.clone(),
            pdf: Some(crate::wiring::DistributionPdf::shared(pdf.clone())),
        };
        Some(worker.spawn(stopped))
    };
    // Captures run whatever the channels: a payment plugin may be loaded
    // at any time, and rows wait in the outbox until one is.
    let capture = capture::CaptureWorker {
        db: host.db.clone(),
        runtime: runtime.clone(),
        config: delivery.clone(),
        clock: clock.clone(),
    }
    .spawn(stop.subscribe());
    let rollout = divoc_rollout::RolloutService::new(host.db.clone(), clock.clone())
        .with_person_key(person_key(&config.storage.data_dir)?)
        .with_zone(config.locale.time_zone.clone())
        .with_booking(config.rollout.booking())
        .with_recording(config.rollout.recording())
        .with_members_per_contact(config.rollout.members_per_contact)
        .with_identity_checks(certificates.clone())
        .with_policies(Arc::new(RuntimePolicies(runtime.clone())));
    spawn_upload_retention(
        &rollout,
        config.rollout.upload_errors_days,
        stop.subscribe(),
    );
    spawn_outbox_pruning(
        &host.db,
        config.storage.keep_delivered_hours,
        stop.subscribe(),
    );
    // Event-subscriber plugins get the log from their own cursors.
    let feeder = divoc_insight::Feeder::new(
        host.db.clone(),
        runtime.clone(),
        config.events.subscribers.clone(),
        clock.clone(),
    );
    let feeds = feeder.feeds();
    let feeding = feeder.spawn(stop.subscribe());
    let form = match &config.feedback.form {
        Some(path) => {
            let path = path.relative();
            divoc_feedback::Form::load(&path)
                .with_context(|| format!("loading the feedback form {}", path.display()))?
        }
        None => divoc_feedback::Form::shipped().context("the built-in feedback form")?,
    };
    let feedback = divoc_feedback::FeedbackService::new(
        host.db.clone(),
        certificates.clone(),
        divoc_feedback::FeedbackSettings {
            form,
            rules: config.feedback.severity.clone(),
            alert_contacts: config.feedback.alert_contacts.clone(),
            zone: config.locale.time_zone.clone(),
        },
        clock.clone(),
    );
    let stats_cache = divoc_insight::stats::StatsCache::new(host.db.clone(), config.stats.clone());
    let _stats_refresh = stats_cache.clone().spawn(stop.subscribe());
    let formats = divoc_certificates::formats::Formats::new(
        certificates.clone(),
        Arc::new(RuntimeFormats::new(runtime.clone())),
        divoc_certificates::formats::FormatSettings {
            eu_dcc_country: config
                .plugins
                .config
                .get("format-eu-dcc")
                .and_then(|c| c.get("country"))
                .and_then(|c| c.as_str())
                .map(str::to_owned),
            signing_purpose: divoc_crypto::keys::DEFAULT_PURPOSE.to_owned(),
        },
    );
    let admission = Arc::new(
        divoc_api::admission::Admission::new(config.admission.settings())
            .context("bad [admission] settings")?,
    );
    let _admission_upkeep = {
        let admission = admission.clone();
        let mut stopping = stop.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => admission.upkeep(),
                    _ = stopping.changed() => return,
                }
            }
        })
    };
    let state = AppState {
        admission,
        es256: Some(host.es256.clone()),
        formats: Some(formats),
        metrics: Some(metrics),
        feedback: Some(feedback),
        feeds: Some(feeds),
        stopping: stop.subscribe(),
        stats: stats_cache,
        runtime,
        db: host.db.clone(),
        keyring: host.keyring.clone(),
        shared_keys: host.shared_keys.clone(),
        tokens,
        plugins_dir,
        certificates: Some(certificates),
        pdf: Some(pdf),
        rollout: Some(rollout),
    };
    let http = HttpSettings {
        body_limit_bytes: config.server.body_limit_kib.saturating_mul(1024),
        request_timeout: Duration::from_millis(config.server.request_timeout_ms),
        upload_limit_bytes: config.server.upload_limit_mib.saturating_mul(1 << 20),
        upload_timeout: Duration::from_secs(config.server.upload_timeout_s),
    };
    let lane_tokens = state.tokens.clone();
    let app = divoc_api::router(state, &http);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    // Connections without a token the server accepts are served at a lower
    // CPU priority (divoc-api's `lanes`), so a flood of them cannot take
    // the cores issuance needs.
    let lanes = divoc_api::lanes::Lanes::start(
        &config.admission.lanes(config.server.blocking_threads),
        lane_tokens,
    )
    .context("cannot start the public lane")?;
    tracing::info!(
        addr = %listener.local_addr()?,
        public_lane = %config.admission.public_lane_priority,
        "divoc is serving"
    );
    // On a signal the workers and the open event streams are told at once
    // (a stream never ends by itself, and graceful shutdown waits for it).
    let stop = Arc::new(stop);
    let on_signal = stop.clone();
    lanes
        .serve(listener, app, async move {
            shutdown_signal().await;
            let _ = on_signal.send(true);
        })
        .await;
    // Stop the worker however serving ended; it finishes the delivery in
    // progress and leaves the rest of its claim to the lease.
    let _ = stop.send(true);
    if let Some(worker) = worker {
        if let Err(e) = worker.await {
            tracing::error!(error = %e, "distribution worker failed");
        }
    }
    if let Err(e) = capture.await {
        tracing::error!(error = %e, "payment capture worker failed");
    }
    if let Err(e) = feeding.await {
        tracing::error!(error = %e, "event feed failed");
    }
    tracing::info!("shut down");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Deletes outbox items delivered more than `hours` ago, at start and then
/// every minute, until `stopped`; a few thousand per write, so the pruning
/// never holds the writer for long.
fn spawn_outbox_pruning(
    db: &Database,
    hours: u32,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    const PER_WRITE: usize = 2_000;
    let db = db.clone();
    tokio::spawn(async move {
        loop {
            let cutoff =
                divoc_time::Clock::now_ms(&divoc_time::SystemClock) - i64::from(hours) * 3_600_000;
            let mut pruned = 0;
            loop {
                match db.outbox_prune_delivered(cutoff, PER_WRITE).await {
                    Ok(n) => {
                        pruned += n;
                        if n < PER_WRITE {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning delivered outbox items failed");
                        break;
                    }
                }
            }
            if pruned > 0 {
                tracing::debug!(pruned, hours, "delivered outbox items pruned");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = stopped.changed() => return,
            }
        }
    });
}

/// Erases refused upload rows past `days` (none if 0) at start and then
/// hourly, until `stopped`.
fn spawn_upload_retention(
    rollout: &divoc_rollout::RolloutService,
    days: u32,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    if days == 0 {
        tracing::info!("rollout.upload-errors-days = 0: refused upload rows are kept");
        return;
    }
    let rollout = rollout.clone();
    tokio::spawn(async move {
        loop {
            let svc = rollout.clone();
            match tokio::task::spawn_blocking(move || svc.erase_old_upload_errors(days)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(uploads)) => {
                    tracing::info!(uploads, days, "refused upload rows erased after retention")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "erasing old refused upload rows failed"),
                Err(e) => tracing::error!(error = %e, "the upload retention task failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = stopped.changed() => return,
            }
        }
    });
}
