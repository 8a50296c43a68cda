//! The distribution worker: delivers issued certificates from the outbox
//! through `distribution-channel` plugins.
//!
//! Issuing writes one outbox row per configured channel in the
//! certificate's own transaction (`divoc_storage::certificates::insert`).
//! This worker, started by `serve`, claims due rows with a lease (a crash
//! mid-delivery makes them due again when the lease ends: at-least-once,
//! and the message id lets a channel drop duplicates), builds the message
//! (recipient name and contacts, certificate id, links, the QR as text and
//! PNG, and the printable PDF when a [`CertificatePdf`] renderer is set) and
//! calls the row's channel plugin:
//!
//! - delivered → `done`;
//! - a retryable failure (the plugin's `retryable`, a fault, a time-out, a
//!   plugin not loaded right now) → due again after an exponential back-off
//!   with jitter ([`backoff_ms`]), until `max-attempts`, then `failed`;
//! - a permanent failure (bad address, no reachable contact, certificate
//!   revoked meanwhile) → `failed` at once.
//!
//! Prepared notices (outbox kind `notify`, e.g. a facility told of its
//! activation for a programme) go the same way: routed to the configured
//! channels, then delivered to the contacts each channel reaches.
//!
//! `GET /v1/certificates/{id}/distribution` reports the rows. Logs carry
//! outbox ids, certificate ids, channel names and attempt numbers; never
//! names, contacts or the message.

use std::sync::Arc;
use std::time::Duration;

use divoc_runtime::types::distribution::{Attachment, Message};
use divoc_runtime::types::{Contact, ContactKind};
use divoc_runtime::{Delivery, Runtime};
use divoc_storage::certificates::{self as store, DISTRIBUTE, UNROUTED};
use divoc_storage::outbox::{NOTIFY, NOTIFY_UNROUTED};
use divoc_storage::{Database, OutboxItem, StorageError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// `[certificates.distribution]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DistributionConfig {
    /// `distribution-channel` plugins every certificate is delivered
    /// through; empty = no delivery (the outbox keeps the rows, and they
    /// are routed once channels are configured).
    pub channels: Vec<String>,
    /// Attempts per row before it is marked failed.
    pub max_attempts: u32,
    /// Back-off after the first failed attempt; doubles per attempt.
    pub base_delay_ms: u64,
    /// Longest back-off.
    pub max_delay_ms: u64,
    /// How long a claimed row stays hidden from other claims; longer than
    /// a batch of deliveries can take.
    pub lease_ms: u64,
    /// Pause between polls when nothing was due.
    pub poll_interval_ms: u64,
    /// Rows claimed per poll.
    pub batch: usize,
}

impl Default for DistributionConfig {
    fn default() -> Self {
        DistributionConfig {
            channels: Vec::new(),
            max_attempts: 8,
            base_delay_ms: 2_000,
            max_delay_ms: 600_000,
            lease_ms: 300_000,
            poll_interval_ms: 1_000,
            batch: 8,
        }
    }
}

impl DistributionConfig {
    /// Refuses settings the worker cannot run with; the error names the
    /// setting.
    pub fn validate(&self) -> Result<(), String> {
        let key = "certificates.distribution";
        if self.max_attempts < 1 {
            return Err(format!("{key}.max-attempts must be at least 1"));
        }
        if !(self.base_delay_ms >= 1 && self.base_delay_ms <= self.max_delay_ms) {
            return Err(format!(
                "{key}: base-delay-ms must be between 1 and max-delay-ms"
            ));
        }
        if !(self.poll_interval_ms >= 1 && self.batch >= 1 && self.lease_ms >= 1_000) {
            return Err(format!(
                "{key}: poll-interval-ms and batch must be positive, lease-ms at least 1000"
            ));
        }
        if self.channels.iter().any(|c| c.trim().is_empty()) {
            return Err(format!("{key}.channels: empty channel name"));
        }
        Ok(())
    }
}

/// The pause before attempt `attempt + 1` after `attempt` failed (from 1):
/// `base × 2^(attempt-1)`, capped at `max`, of which the upper half is
/// random ("equal jitter"). The random half spreads the retries of many
/// messages that failed together (an endpoint outage) so they do not
/// return as one burst; the fixed half keeps every retry at least half a
/// step away.
pub fn backoff_ms(attempt: u64, base_ms: u64, max_ms: u64, rng: &mut impl Rng) -> u64 {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(40);
    let step = base_ms
        .saturating_mul(1u64.checked_shl(doublings).unwrap_or(u64::MAX))
        .min(max_ms);
    let fixed = step / 2;
    fixed + rng.gen_range(0..=step - fixed)
}

/// Longest error text kept per row: enough for a status line, short enough
/// that a chatty plugin cannot fill the database.
const MAX_ERROR: usize = 500;

pub(crate) fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// `tel:…` → phone, `mailto:…` → email (scheme removed), anything else as
/// it is.
fn contact(text: &str) -> Contact {
    let lower = text.to_ascii_lowercase();
    let (kind, value) = if lower.starts_with("tel:") {
        (ContactKind::Phone, &text[4..])
    } else if lower.starts_with("mailto:") {
        (ContactKind::Email, &text[7..])
    } else {
        (ContactKind::Other, text)
    };
    Contact {
        kind,
        value: value.trim().to_owned(),
    }
}

/// A contact as an operator may see it: its kind and last characters
/// (`tel:******3210`, `mailto:r…@example.org`).
pub fn masked(text: &str) -> String {
    let c = contact(text);
    match c.kind {
        ContactKind::Email => match c.value.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("mailto:{first}…@{domain}")
            }
            None => "mailto:…".to_owned(),
        },
        kind => {
            let chars: Vec<char> = c.value.chars().collect();
            let keep = if chars.len() > 6 { 4 } else { 0 };
            let hidden = "*".repeat(chars.len() - keep);
            let tail: String = chars[chars.len() - keep..].iter().collect();
            let scheme = if kind == ContactKind::Phone {
                "tel:"
            } else {
                ""
            };
            format!("{scheme}{hidden}{tail}")
        }
    }
}

/// One outbox row as `GET /v1/outbox` shows it: what it is about, where it
/// goes and how far it got; contacts masked, names left out.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    /// The row's id (also the paging cursor).
    pub id: i64,
    /// `certificate` (a certificate's delivery) or `notice` (a sign-in
    /// code, a reminder, an alert).
    pub kind: &'static str,
    /// The message's template (`otp`, `dose-reminder`, …).
    pub template: String,
    /// The channel, once routed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The certificate, enrolment, facility or report it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Where it goes, masked.
    pub contacts: Vec<String>,
    /// `pending`, `done` or `failed`.
    pub status: &'static str,
    /// Delivery attempts so far.
    pub attempts: u64,
    /// Why the last attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it is next tried (pending rows): a reminder waits here for its
    /// day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    /// When it was queued.
    pub created_at: String,
}

impl From<&OutboxItem> for OutboxEntry {
    fn from(item: &OutboxItem) -> Self {
        let p = &item.payload;
        let certificate = item.kind == DISTRIBUTE;
        let routed = item.target != UNROUTED && item.target != NOTIFY_UNROUTED;
        OutboxEntry {
            id: item.id,
            kind: if certificate { "certificate" } else { "notice" },
            template: p["template"]
                .as_str()
                .unwrap_or(if certificate {
                    "certificate-issued"
                } else {
                    "notice"
                })
                .to_owned(),
            channel: routed.then(|| item.target.clone()),
            subject: p["certificate_id"]
                .as_str()
                .or_else(|| p["subject"].as_str())
                .map(str::to_owned),
            contacts: p["contacts"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(masked).collect())
                .unwrap_or_default(),
            status: item.status.as_str(),
            attempts: item.attempts,
            last_error: item.last_error.clone(),
            due_at: (item.status == divoc_storage::OutboxStatus::Pending)
                .then(|| divoc_time::format_millis(item.next_attempt_at_ms)),
            created_at: divoc_time::format_millis(item.created_at_ms),
        }
    }
}

/// Outbox rows newest first (see [`divoc_storage::outbox::page`]).
pub fn outbox_page(
    db: &Database,
    query: &divoc_storage::outbox::OutboxQuery,
    limit: usize,
) -> Result<Vec<OutboxEntry>, StorageError> {
    let items = db.read(|r| divoc_storage::outbox::page(r, query, limit))?;
    Ok(items.iter().map(OutboxEntry::from).collect())
}

/// The certificate's PDF as an attachment, when a renderer is set and the
/// certificate has a printable form. A failed rendering is logged and the
/// message goes without it: the QR code and the link still carry the
/// certificate, and retrying would not render it either.
fn pdf_attachment(
    pdf: Option<&dyn CertificatePdf>,
    outbox: i64,
    record: &store::CertificateRecord,
    qr_text: &str,
) -> Option<Attachment> {
    match pdf?.render(record, qr_text) {
        Ok(Some(data)) => Some(Attachment {
            name: "certificate.pdf".into(),
            media_type: "application/pdf".into(),
            data,
        }),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(outbox, certificate = %record.id, error = %cut(&e), "certificate PDF not rendered; delivering without it");
            None
        }
    }
}

/// What happened to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// Try again after a back-off (or fail, out of attempts).
    Retry(String),
    /// Give up now.
    Fail(String),
    /// An unrouted row was split into one row per channel.
    Routed,
}

/// Renders a certificate's printable PDF for its message (attached as
/// `certificate.pdf`). `serve` sets one over the host's PDF templates; the
/// certificate module itself does not depend on them.
pub trait CertificatePdf: Send + Sync {
    /// The PDF of `record`, whose QR code carries `qr_text`; `Ok(None)` when
    /// the certificate has no printable form (a credential type without a
    /// PDF template). The error is logged, so it must not quote the
    /// credential.
    fn render(
        &self,
        record: &store::CertificateRecord,
        qr_text: &str,
    ) -> Result<Option<Vec<u8>>, String>;
}

/// The worker. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    /// Where the outbox rows and certificates are.
    pub db: Database,
    /// The distribution-channel plugins.
    pub runtime: Runtime,
    /// Channels, retries and leases.
    pub config: DistributionConfig,
    /// The service's public URL, for links in messages.
    pub public_url: String,
    /// Leases and back-off run on it.
    pub clock: divoc_time::SharedClock,
    /// Renders the PDF attached to certificate messages; `None`: the QR
    /// code only.
    pub pdf: Option<Arc<dyn CertificatePdf>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .field("pdf", &self.pdf.is_some())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Runs until `stop` turns true, then returns once the delivery in
    /// progress (if any) is reported. Rows claimed but not yet attempted
    /// stay leased and are retried when the lease ends.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(channels = ?self.config.channels, "distribution worker started");
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        loop {
            if *stop.borrow() {
                break;
            }
            let (worker, flag) = (self.clone(), stop.clone());
            // Plugin calls and database waits block: off the async runtime.
            let full = match tokio::task::spawn_blocking(move || worker.run_once(&flag)).await {
                Ok(Ok(n)) => n >= self.config.batch,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "distribution: cannot claim outbox rows");
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "distribution: worker task failed");
                    false
                }
            };
            // A full batch means more may be due: go on without waiting.
            if full {
                continue;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
        tracing::info!("distribution worker stopped");
    }

    /// Claims one batch of due rows and handles them; returns how many were
    /// claimed.
    pub fn run_once(&self, stop: &watch::Receiver<bool>) -> Result<usize, StorageError> {
        let lease = i64::try_from(self.config.lease_ms).unwrap_or(i64::MAX);
        let mut items = self
            .db
            .outbox_claim_due_of(DISTRIBUTE, self.clock.now_ms(), lease, self.config.batch)
            .wait()?;
        // Notices (e.g. a facility's activation) share the batch.
        let room = self.config.batch.saturating_sub(items.len());
        if room > 0 {
            items.extend(
                self.db
                    .outbox_claim_due_of(NOTIFY, self.clock.now_ms(), lease, room)
                    .wait()?,
            );
        }
        let claimed = items.len();
        for item in items {
            if *stop.borrow() {
                break;
            }
            let outcome = self.handle(&item);
            self.report(&item, outcome);
        }
        Ok(claimed)
    }

    fn handle(&self, item: &OutboxItem) -> Outcome {
        if item.kind == NOTIFY {
            return self.handle_notice(item);
        }
        if item.target == UNROUTED {
            return match self
                .db
                .outbox_fan_out(item.id, self.config.channels.clone(), self.clock.now_ms())
                .wait()
            {
                Ok(_) => Outcome::Routed,
                Err(e) => Outcome::Retry(format!("cannot route to the channels: {e}")),
            };
        }
        let Some(certificate_id) = item.payload["certificate_id"].as_str() else {
            return Outcome::Fail("the outbox row names no certificate".into());
        };
        let record = match self.db.read(|r| store::get(r, certificate_id)) {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Fail("the certificate does not exist".into()),
            Err(e) => return Outcome::Retry(format!("cannot read the certificate: {e}")),
        };
        let status = crate::certificate::effective_status(
            record.status,
            record.suspended_until_ms,
            self.clock.now_ms(),
        );
        if status == crate::Status::Revoked {
            return Outcome::Fail("the certificate was revoked before it was delivered".into());
        }
        let channel = match self.runtime.distribution_channel(&item.target) {
            Ok(c) => c,
            // Possibly not loaded yet, or being replaced: hot swap may
            // bring it back before the attempts run out.
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let reachable = match channel.channel_info() {
            Ok(info) => info.contact_kinds,
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let all: Vec<Contact> = item.payload["contacts"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(contact).collect())
            .unwrap_or_default();
        if all.is_empty() {
            return Outcome::Fail("the certificate has no contact to deliver to".into());
        }
        let contacts: Vec<Contact> = all
            .into_iter()
            .filter(|c| reachable.contains(&c.kind))
            .collect();
        if contacts.is_empty() {
            return Outcome::Fail(format!(
                "channel `{}` reaches none of the certificate's contacts",
                item.target
            ));
        }
        let message = match self.message(item, &record, contacts) {
            Ok(m) => m,
            Err(e) => return Outcome::Fail(e),
        };
        match channel.deliver(&message) {
            Ok(Delivery::Delivered(_)) => Outcome::Delivered,
            Ok(Delivery::Retryable(e)) => Outcome::Retry(e.message),
            Ok(Delivery::Permanent(e)) => Outcome::Fail(e.message),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    /// A prepared notice: routed to the channels, then delivered to the
    /// contacts the channel reaches.
    fn handle_notice(&self, item: &OutboxItem) -> Outcome {
        if item.target == NOTIFY_UNROUTED {
            return match self
                .db
                .outbox_fan_out(item.id, self.config.channels.clone(), self.clock.now_ms())
                .wait()
            {
                Ok(_) => Outcome::Routed,
                Err(e) => Outcome::Retry(format!("cannot route to the channels: {e}")),
            };
        }
        let channel = match self.runtime.distribution_channel(&item.target) {
            Ok(c) => c,
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let reachable = match channel.channel_info() {
            Ok(info) => info.contact_kinds,
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let p = &item.payload;
        let contacts: Vec<Contact> = p["contacts"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(contact).collect())
            .unwrap_or_default();
        let contacts: Vec<Contact> = contacts
            .into_iter()
            .filter(|c| reachable.contains(&c.kind))
            .collect();
        if contacts.is_empty() {
            return Outcome::Fail(format!(
                "channel `{}` reaches none of the notice's contacts",
                item.target
            ));
        }
        let variables = p["variables"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let message = Message {
            id: format!("divoc-outbox-{}", item.id),
            template: p["template"].as_str().unwrap_or("notice").to_owned(),
            recipient_name: p["recipient_name"].as_str().unwrap_or_default().to_owned(),
            contacts,
            certificate_ids: Vec::new(),
            attachments: Vec::new(),
            variables,
        };
        match channel.deliver(&message) {
            Ok(Delivery::Delivered(_)) => Outcome::Delivered,
            Ok(Delivery::Retryable(e)) => Outcome::Retry(e.message),
            Ok(Delivery::Permanent(e)) => Outcome::Fail(e.message),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    /// The message for one row: the certificate id (and a stable message
    /// id, the same on every retry), the recipient, links, the QR and, with
    /// a renderer, the PDF.
    fn message(
        &self,
        item: &OutboxItem,
        record: &store::CertificateRecord,
        contacts: Vec<Contact>,
    ) -> Result<Message, String> {
        let text = crate::qr::encode(&record.credential)
            .map_err(|e| format!("cannot encode the certificate's QR: {e}"))?;
        let png = crate::qr::render_png(text.as_bytes(), 4)
            .map_err(|e| format!("cannot render the certificate's QR: {e}"))?;
        let base = self.public_url.trim_end_matches('/');
        let url = format!("{base}/v1/certificates/{}", record.id);
        let name = record
            .credential
            .pointer("/credentialSubject/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut attachments = vec![Attachment {
            name: "certificate-qr.png".into(),
            media_type: "image/png".into(),
            data: png,
        }];
        attachments.extend(pdf_attachment(self.pdf.as_deref(), item.id, record, &text));
        Ok(Message {
            id: format!("divoc-outbox-{}", item.id),
            template: "certificate-issued".into(),
            recipient_name: name.to_owned(),
            contacts,
            certificate_ids: vec![record.id.clone()],
            attachments,
            variables: vec![
                ("certificate-url".into(), url.clone()),
                ("qr-url".into(), format!("{url}/qr.png")),
                ("qr-text".into(), text),
                ("program".into(), record.program.clone()),
                ("dose".into(), record.dose.to_string()),
            ],
        })
    }

    /// Writes the outcome and logs it (ids and channel only).
    fn report(&self, item: &OutboxItem, outcome: Outcome) {
        // What the row is about: a certificate, or a notice's template (its
        // subject may be a phone number).
        let cert = item.payload["certificate_id"]
            .as_str()
            .or_else(|| item.payload["template"].as_str())
            .unwrap_or("-");
        let (channel, attempt) = (item.target.as_str(), item.attempts);
        let written = match &outcome {
            Outcome::Routed => {
                tracing::debug!(outbox = item.id, about = %cert, "routed to the channels");
                return;
            }
            Outcome::Delivered => {
                tracing::info!(outbox = item.id, about = %cert, channel, attempt, "delivered");
                self.db.outbox_mark_done(item.id).wait()
            }
            Outcome::Fail(why) => {
                tracing::warn!(outbox = item.id, about = %cert, channel, attempt, error = %cut(why), "delivery failed permanently");
                self.db.outbox_mark_failed(item.id, &cut(why)).wait()
            }
            Outcome::Retry(why) if attempt >= u64::from(self.config.max_attempts) => {
                tracing::warn!(outbox = item.id, about = %cert, channel, attempt, error = %cut(why), "delivery failed; out of attempts");
                let why = cut(&format!("gave up after {attempt} attempts: {why}"));
                self.db.outbox_mark_failed(item.id, &why).wait()
            }
            Outcome::Retry(why) => {
                let delay = backoff_ms(
                    attempt,
                    self.config.base_delay_ms,
                    self.config.max_delay_ms,
                    &mut rand::thread_rng(),
                );
                let next = self
                    .clock
                    .now_ms()
                    .saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
                tracing::info!(outbox = item.id, about = %cert, channel, attempt, retry_in_ms = delay, error = %cut(why), "delivery failed; will retry");
                self.db.outbox_mark_retry(item.id, next, &cut(why)).wait()
            }
        };
        if let Err(e) = written {
            // NotFound: the row is no longer pending (reported twice after
            // a lease ran out); anything else is the database's problem.
            tracing::warn!(outbox = item.id, error = %e, "cannot record the delivery outcome");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 1..=12u64 {
            let step = (1_000u64 << (attempt - 1)).min(60_000);
            for _ in 0..200 {
                let d = backoff_ms(attempt, 1_000, 60_000, &mut rng);
                assert!(
                    d >= step / 2 && d <= step,
                    "attempt {attempt}: {d} outside [{}, {step}]",
                    step / 2
                );
            }
        }
        // Absurd attempt counts neither overflow nor exceed the cap.
        assert!(backoff_ms(u64::MAX, 1_000, 60_000, &mut rng) <= 60_000);
        assert!(backoff_ms(0, 1_000, 60_000, &mut rng) <= 1_000);
    }

    #[test]
    fn backoff_is_jittered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut seen: Vec<u64> = (0..50)
            .map(|_| backoff_ms(3, 1_000, 60_000, &mut rng))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.len() > 10, "{seen:?}");
    }

    #[test]
    fn contacts_are_classified_by_scheme() {
        let c = contact("TEL:+91 98804");
        assert_eq!(
            (c.kind, c.value.as_str()),
            (ContactKind::Phone, "+91 98804")
        );
        let c = contact("mailto:a@example.org");
        assert_eq!(
            (c.kind, c.value.as_str()),
            (ContactKind::Email, "a@example.org")
        );
        assert_eq!(contact("whatsapp:1").kind, ContactKind::Other);
    }

    #[test]
    fn errors_are_cut() {
        let long = "x".repeat(2_000);
        assert_eq!(cut(&long).chars().count(), MAX_ERROR + 1);
        assert_eq!(cut("short"), "short");
        assert!(cut(&"é".repeat(600)).ends_with('…'));
    }

    #[test]
    fn settings_are_checked() {
        assert!(DistributionConfig::default().validate().is_ok());
        let bad = DistributionConfig {
            base_delay_ms: 10,
            max_delay_ms: 5,
            ..DistributionConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = DistributionConfig {
            max_attempts: 0,
            ..DistributionConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    /// Answers what it was made with, and checks it is given the QR text.
    struct FakePdf(Result<Option<Vec<u8>>, String>);

    impl CertificatePdf for FakePdf {
        fn render(
            &self,
            record: &store::CertificateRecord,
            qr_text: &str,
        ) -> Result<Option<Vec<u8>>, String> {
            assert_eq!((record.id.as_str(), qr_text), ("cert-1", "QR"));
            self.0.clone()
        }
    }

    fn record() -> store::CertificateRecord {
        store::CertificateRecord {
            id: "cert-1".into(),
            program: "covid-19".into(),
            recipient_ref: "PEC-1".into(),
            dose: 1,
            version: 1,
            previous_id: None,
            status: store::CertStatus::Valid,
            suspended_until_ms: None,
            revoked_reason: None,
            status_index: 0,
            issued_at_ms: 0,
            updated_at_ms: 0,
            facility_id: None,
            payload_hash: String::new(),
            credential: serde_json::json!({}),
        }
    }

    #[test]
    fn the_pdf_is_attached_when_a_renderer_makes_one() {
        let r = record();
        let made = FakePdf(Ok(Some(b"%PDF-1.7".to_vec())));
        let a = pdf_attachment(Some(&made), 1, &r, "QR").unwrap();
        assert_eq!(
            (a.name.as_str(), a.media_type.as_str(), a.data.as_slice()),
            ("certificate.pdf", "application/pdf", &b"%PDF-1.7"[..])
        );
        // No renderer, no printable form, or a failed rendering: the
        // message goes without it.
        assert!(pdf_attachment(None, 1, &r, "QR").is_none());
        assert!(pdf_attachment(Some(&FakePdf(Ok(None))), 1, &r, "QR").is_none());
        let failed = FakePdf(Err("font missing".into()));
        assert!(pdf_attachment(Some(&failed), 1, &r, "QR").is_none());
    }

    #[test]
    fn contacts_are_masked() {
        assert_eq!(masked("tel:+919876543210"), "tel:*********3210");
        assert_eq!(masked("tel:12345"), "tel:*****");
        assert_eq!(masked("mailto:ravi@example.org"), "mailto:r…@example.org");
        assert_eq!(masked("ravi"), "****");
    }
}
