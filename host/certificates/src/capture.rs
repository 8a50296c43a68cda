//! The payment capture worker: captures, after the certificate is stored,
//! the payments that were only authorised while it was issued.
//!
//! Issuing authorises a program's payment through its `payment-provider`
//! plugin before signing (see `plugin_hooks.rs`). Money should move only for a
//! certificate that exists, so the certificate's transaction records the
//! receipt in the audit log and, when the provider answered `authorized`,
//! queues a `payment.capture` outbox row for the provider
//! (`crate::service`). This worker, started by `serve`,
//! claims those rows with a lease and calls the provider's `capture`:
//!
//! - captured → an audit record `certificate.payment.captured` (the
//!   provider's receipt; never the request's payment reference) and the row
//!   `done`, in one transaction;
//! - refused by the provider (`invalid-input`, `rejected`: refunded,
//!   expired, unknown) → `failed` at once, with the reason;
//! - anything else (a fault, a time-out, the plugin not loaded right now) →
//!   due again after the distribution back-off ([`backoff_ms`]), until
//!   `max-attempts`, then `failed`.
//!
//! Capture is idempotent in the contract (the same provider reference is
//! captured once), so a row retried after a crash is safe. Retry settings
//! are `[certificates.distribution]`'s. Logs carry outbox and certificate
//! ids, the provider name and attempt numbers.

use std::time::Duration;

use divoc_runtime::types::payment::PaymentStatus;
use divoc_runtime::types::Money;
use divoc_runtime::Runtime;
use divoc_storage::certificates::PAYMENT_CAPTURE;
use divoc_storage::{audit, outbox, Database, OutboxItem, StorageError};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::distribution::{backoff_ms, cut, DistributionConfig};
use crate::plugin_hooks::refusal;

/// What happened to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Captured; the provider's receipt (reference, status, amount) to audit.
    Captured(serde_json::Value),
    /// Try again after a back-off (or fail, out of attempts).
    Retry(String),
    /// Give up now.
    Fail(String),
}

/// The worker. Cheap to clone.
#[derive(Clone)]
pub struct CaptureWorker {
    /// Where the outbox rows and audit records are.
    pub db: Database,
    /// The payment-provider plugins.
    pub runtime: Runtime,
    /// Retry settings (`[certificates.distribution]`).
    pub config: DistributionConfig,
    /// Leases and back-off run on it.
    pub clock: divoc_time::SharedClock,
}

impl std::fmt::Debug for CaptureWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWorker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CaptureWorker {
    /// Runs until `stop` turns true; rows claimed but not yet attempted stay
    /// leased and are retried when the lease ends.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!("payment capture worker started");
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
                    tracing::warn!(error = %e, "payment capture: cannot claim outbox rows");
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "payment capture: worker task failed");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
        tracing::info!("payment capture worker stopped");
    }

    /// Claims one batch of due capture rows and handles them; returns how
    /// many were claimed.
    pub fn run_once(&self, stop: &watch::Receiver<bool>) -> Result<usize, StorageError> {
        let lease = i64::try_from(self.config.lease_ms).unwrap_or(i64::MAX);
        let items = self
            .db
            .outbox_claim_due_of(
                PAYMENT_CAPTURE,
                self.clock.now_ms(),
                lease,
                self.config.batch,
            )
            .wait()?;
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
        let p = &item.payload;
        let (Some(reference), Some(currency), Some(minor_units)) = (
            p["provider_reference"].as_str(),
            p["currency"].as_str(),
            p["amount_minor_units"].as_i64(),
        ) else {
            return Outcome::Fail("the outbox row is not a capture request".into());
        };
        let plugin = match self.runtime.payment_provider(&item.target) {
            Ok(p) => p,
            // Possibly not loaded yet, or being replaced.
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let amount = Money {
            currency: currency.to_owned(),
            minor_units,
        };
        match plugin.capture(reference, &amount) {
            Ok(r) if r.status == PaymentStatus::Captured => Outcome::Captured(json!({
                "provider": item.target,
                "provider_reference": r.provider_reference,
                "status": "captured",
                "mode": r.mode,
                "currency": r.amount.currency,
                "amount_minor_units": r.amount.minor_units,
            })),
            Ok(r) => Outcome::Fail(format!(
                "the provider answered {:?} instead of captured",
                r.status
            )),
            Err(e) => match refusal(&e) {
                Some(reason) => Outcome::Fail(reason),
                None => Outcome::Retry(e.to_string()),
            },
        }
    }

    /// Writes the outcome and logs it (ids and provider only).
    fn report(&self, item: &OutboxItem, outcome: Outcome) {
        let cert = item.payload["certificate_id"]
            .as_str()
            .unwrap_or("-")
            .to_owned();
        let (provider, attempt, id) = (item.target.as_str(), item.attempts, item.id);
        let written = match outcome {
            Outcome::Captured(receipt) => {
                tracing::info!(outbox = id, certificate = %cert, provider, attempt, "payment captured");
                let detail = json!({ "certificate_id": cert, "receipt": receipt });
                self.db
                    .write(move |tx| {
                        audit::append_audit(
                            tx,
                            "payment-capture",
                            "certificate.payment.captured",
                            &cert,
                            &detail,
                        )?;
                        outbox::mark_done(tx, id)
                    })
                    .wait()
            }
            Outcome::Fail(why) => {
                tracing::warn!(outbox = id, certificate = %cert, provider, attempt, error = %cut(&why), "payment capture failed permanently");
                self.db.outbox_mark_failed(id, &cut(&why)).wait()
            }
            Outcome::Retry(why) if attempt >= u64::from(self.config.max_attempts) => {
                tracing::warn!(outbox = id, certificate = %cert, provider, attempt, error = %cut(&why), "payment capture failed; out of attempts");
                let why = cut(&format!("gave up after {attempt} attempts: {why}"));
                self.db.outbox_mark_failed(id, &why).wait()
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
                tracing::info!(outbox = id, certificate = %cert, provider, attempt, retry_in_ms = delay, error = %cut(&why), "payment capture failed; will retry");
                self.db.outbox_mark_retry(id, next, &cut(&why)).wait()
            }
        };
        if let Err(e) = written {
            tracing::warn!(outbox = id, error = %e, "cannot record the capture outcome");
        }
    }
}
