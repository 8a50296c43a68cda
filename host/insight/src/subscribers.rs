//! Feeding the event log to `event-subscriber` plugins.
//!
//! Each loaded subscriber gets the log in sequence order, from its own
//! cursor (persisted in `subscriber_cursors` as `plugin:<name>`), in
//! batches of the events its `interests` name. The plugin answers the
//! highest sequence it has durably handled (`wit/worlds.wit`, interface
//! `events`); the cursor moves there, and everything after it is sent
//! again. Delivery is therefore at-least-once: a crash between a plugin's
//! handling and the cursor's write replays that batch, and a plugin
//! de-duplicates by sequence. A failing subscriber (an error, a trap, an
//! answer that acknowledges nothing) is retried with exponential back-off
//! and does not hold up the others. What each has reached, and how far it
//! lags the log, is in [`Feeds`] (shown by `GET /v1/plugins`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use divoc_runtime::types::events::Event as PluginEvent;
use divoc_runtime::{PluginState, Runtime, World};
use divoc_storage::events::{self, Event};
use divoc_storage::Database;
use divoc_time::Clock;
use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How subscribers are fed (`[events.subscribers]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FeedConfig {
    /// How often the log is looked at when every subscriber has caught up.
    pub poll_interval_ms: u64,
    /// Most events read for one subscriber at a time (those it is not
    /// interested in are skipped, not sent).
    pub batch: usize,
    /// Back-off after a subscriber's first failure; doubles per failure,
    /// with jitter, up to `max-delay-ms`.
    pub base_delay_ms: u64,
    /// Longest back-off.
    pub max_delay_ms: u64,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            poll_interval_ms: 500,
            batch: 256,
            base_delay_ms: 1000,
            max_delay_ms: 300_000,
        }
    }
}

impl FeedConfig {
    /// Refuses settings the feeder cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        let key = "events.subscribers";
        if self.batch == 0 || self.batch > 10_000 {
            return Err(format!("{key}.batch: must be 1-10000"));
        }
        if self.poll_interval_ms == 0 {
            return Err(format!("{key}.poll-interval-ms: must be at least 1"));
        }
        if self.base_delay_ms == 0 || self.base_delay_ms > self.max_delay_ms {
            return Err(format!(
                "{key}.base-delay-ms: must be at least 1 and at most max-delay-ms"
            ));
        }
        Ok(())
    }
}

/// Where one subscriber stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedStatus {
    /// The highest sequence it has acknowledged (or skipped past).
    pub cursor: i64,
    /// The log's last sequence when it was last looked at.
    pub head: i64,
    /// Events it has yet to see: `head - cursor`.
    pub lag: i64,
    /// The event kind prefixes it asked for (empty: all).
    pub interests: Vec<String>,
    /// Events handed to it since the service started.
    pub delivered: u64,
    /// Failures in a row; 0 once a delivery succeeds.
    pub failures: u32,
    /// The last failure, while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it is tried again after a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
}

/// Every fed subscriber's status, by plugin name; shared with the API.
#[derive(Debug, Clone, Default)]
pub struct Feeds(Arc<Mutex<BTreeMap<String, FeedStatus>>>);

impl Feeds {
    /// One subscriber's status.
    pub fn get(&self, plugin: &str) -> Option<FeedStatus> {
        self.0.lock().get(plugin).cloned()
    }

    /// Every subscriber's status.
    pub fn all(&self) -> BTreeMap<String, FeedStatus> {
        self.0.lock().clone()
    }

    fn set(&self, plugin: &str, status: FeedStatus) {
        self.0.lock().insert(plugin.to_owned(), status);
    }

    fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.0.lock().retain(|k, _| keep(k));
    }
}

/// The name a plugin's cursor is stored under.
pub fn cursor_name(plugin: &str) -> String {
    format!("plugin:{plugin}")
}

/// The event as a plugin sees it: the payload with the event's subject
/// (an id) added, so that a subscriber knows what it is about.
pub fn plugin_event(e: &Event) -> PluginEvent {
    let mut payload = e.payload.clone();
    if let Value::Object(map) = &mut payload {
        map.entry("subject")
            .or_insert_with(|| Value::String(e.subject.clone()));
    }
    PluginEvent {
        sequence: u64::try_from(e.seq).unwrap_or_default(),
        kind: e.kind.clone(),
        occurred_at: u64::try_from(e.occurred_at_ms).unwrap_or_default(),
        payload: payload.to_string(),
    }
}

/// Whether `kind` is one a subscriber with `interests` wants.
pub fn wanted(interests: &[String], kind: &str) -> bool {
    interests.is_empty() || interests.iter().any(|p| kind.starts_with(p.as_str()))
}

/// One subscriber's state between rounds.
#[derive(Debug)]
struct Sub {
    /// The loaded version's digest: a swap asks for interests again.
    digest: String,
    interests: Vec<String>,
    cursor: i64,
    delivered: u64,
    failures: u32,
    last_error: Option<String>,
    retry_at_ms: i64,
}

/// What feeding one batch did.
enum Fed {
    /// Nothing new.
    Idle,
    /// The cursor moved; `more` when the window was full.
    Moved { more: bool },
    /// It failed; try again after a back-off.
    Failed(String),
}

/// Feeds the loaded event-subscriber plugins.
pub struct Feeder {
    db: Database,
    runtime: Runtime,
    config: FeedConfig,
    clock: Arc<dyn Clock>,
    feeds: Feeds,
    subs: HashMap<String, Sub>,
}

impl std::fmt::Debug for Feeder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeder")
            .field("config", &self.config)
            .field("subscribers", &self.subs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Feeder {
    /// A feeder of the plugins `runtime` has loaded, from `db`'s log.
    pub fn new(db: Database, runtime: Runtime, config: FeedConfig, clock: Arc<dyn Clock>) -> Self {
        Feeder {
            db,
            runtime,
            config,
            clock,
            feeds: Feeds::default(),
            subs: HashMap::new(),
        }
    }

    /// The subscribers' status, updated as the feeder runs.
    pub fn feeds(&self) -> Feeds {
        self.feeds.clone()
    }

    /// Runs until `stop` turns true.
    pub fn spawn(self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let poll = Duration::from_millis(self.config.poll_interval_ms);
            let mut feeder = self;
            loop {
                if *stop.borrow() {
                    break;
                }
                // Plugin calls and database waits block: off the async runtime.
                let (back, more) = match tokio::task::spawn_blocking(move || {
                    let more = feeder.round();
                    (feeder, more)
                })
                .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "event feed: the feeder task failed");
                        return;
                    }
                };
                feeder = back;
                if more {
                    continue;
                }
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
            }
            tracing::info!("event feed stopped");
        })
    }

    /// Feeds each subscriber that is due one batch; `true` when one of
    /// them has more waiting.
    pub fn round(&mut self) -> bool {
        let head = match self.db.read(events::head) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "event feed: cannot read the log");
                return false;
            }
        };
        let loaded: Vec<(String, String, bool)> = self
            .runtime
            .status()
            .into_iter()
            .filter_map(|s| {
                let info = s.info?;
                (info.world == World::EventSubscriber).then(|| {
                    (
                        s.name.clone(),
                        info.digest.clone(),
                        s.state == PluginState::Ready,
                    )
                })
            })
            .collect();
        self.subs
            .retain(|name, _| loaded.iter().any(|(n, _, _)| n == name));
        self.feeds
            .retain(|name| loaded.iter().any(|(n, _, _)| n == name));
        let now = self.clock.now_ms();
        let mut more = false;
        for (name, digest, ready) in loaded {
            if let Err(e) = self.prepare(&name, &digest) {
                tracing::warn!(plugin = %name, error = %e, "event feed: cannot start the subscriber");
                continue;
            }
            let due = self
                .subs
                .get(&name)
                .is_some_and(|s| ready && s.retry_at_ms <= now);
            if due {
                match self.feed(&name) {
                    Fed::Idle => {}
                    Fed::Moved { more: m } => {
                        more |= m;
                        if let Some(s) = self.subs.get_mut(&name) {
                            s.failures = 0;
                            s.last_error = None;
                            s.retry_at_ms = 0;
                        }
                    }
                    Fed::Failed(why) => self.failed(&name, why, now),
                }
            }
            self.publish(&name, head);
        }
        more
    }

    /// Reads the cursor of a newly seen subscriber, and asks a new or
    /// swapped one for its interests.
    fn prepare(&mut self, name: &str, digest: &str) -> Result<(), String> {
        if self.subs.get(name).is_some_and(|s| s.digest == digest) {
            return Ok(());
        }
        let interests = self
            .runtime
            .event_subscriber(name)
            .and_then(|s| s.interests())
            .map_err(|e| e.to_string());
        let cursor = match self.subs.get(name) {
            Some(s) => s.cursor,
            None => self
                .db
                .subscriber_cursor(&cursor_name(name))
                .map_err(|e| e.to_string())?,
        };
        let (interests, error) = match interests {
            Ok(i) => (i, None),
            // Fed nothing until it answers: asking again after a back-off.
            Err(e) => (Vec::new(), Some(e)),
        };
        let sub = self.subs.entry(name.to_owned()).or_insert_with(|| Sub {
            digest: String::new(),
            interests: Vec::new(),
            cursor,
            delivered: 0,
            failures: 0,
            last_error: None,
            retry_at_ms: 0,
        });
        sub.interests = interests;
        match error {
            None => sub.digest = digest.to_owned(),
            Some(e) => {
                let now = self.clock.now_ms();
                self.failed(name, format!("interests: {e}"), now);
            }
        }
        Ok(())
    }

    /// Sends one batch to `name` and moves its cursor.
    fn feed(&mut self, name: &str) -> Fed {
        let Some(sub) = self.subs.get(name) else {
            return Fed::Idle;
        };
        if sub.digest.is_empty() {
            return Fed::Failed("its interests are not known".into());
        }
        let cursor = sub.cursor;
        let window = match self.db.events_after(cursor, self.config.batch) {
            Ok(w) => w,
            Err(e) => return Fed::Failed(format!("cannot read the log: {e}")),
        };
        let Some(last) = window.last().map(|e| e.seq) else {
            return Fed::Idle;
        };
        let full = window.len() == self.config.batch;
        let batch: Vec<PluginEvent> = window
            .iter()
            .filter(|e| wanted(&sub.interests, &e.kind))
            .map(plugin_event)
            .collect();
        let next = match batch.last().map(|e| e.sequence) {
            // Nothing it wants in the window: skipped without a call.
            None => last,
            Some(highest) => {
                let subscriber = match self.runtime.event_subscriber(name) {
                    Ok(s) => s,
                    Err(e) => return Fed::Failed(e.to_string()),
                };
                match subscriber.deliver(&batch) {
                    Err(e) => return Fed::Failed(e.to_string()),
                    Ok(ack) => {
                        let ack = i64::try_from(ack).unwrap_or(i64::MAX);
                        let highest = i64::try_from(highest).unwrap_or(i64::MAX);
                        if ack >= highest {
                            // All it was sent is handled; what it skipped
                            // after the last one it wanted is passed too.
                            last
                        } else if ack > cursor {
                            ack
                        } else {
                            return Fed::Failed(format!(
                                "it acknowledged sequence {ack}, nothing after {cursor}"
                            ));
                        }
                    }
                }
            }
        };
        let sent = batch
            .iter()
            .filter(|e| i64::try_from(e.sequence).is_ok_and(|s| s <= next));
        let sent = sent.count() as u64;
        if let Err(e) = self
            .db
            .set_subscriber_cursor(&cursor_name(name), next)
            .wait()
        {
            return Fed::Failed(format!("cannot store its cursor: {e}"));
        }
        if let Some(s) = self.subs.get_mut(name) {
            s.cursor = next;
            s.delivered += sent;
        }
        Fed::Moved {
            more: full || next < last,
        }
    }

    fn failed(&mut self, name: &str, why: String, now: i64) {
        let Some(s) = self.subs.get_mut(name) else {
            return;
        };
        s.failures = s.failures.saturating_add(1);
        let exp = s.failures.saturating_sub(1).min(20);
        let delay = self
            .config
            .base_delay_ms
            .saturating_mul(1u64 << exp)
            .min(self.config.max_delay_ms);
        // ±20 % jitter: subscribers failing together do not retry together.
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        let delay = (delay as f64 * jitter) as i64;
        s.retry_at_ms = now.saturating_add(delay);
        tracing::warn!(
            plugin = %name,
            failures = s.failures,
            retry_in_ms = delay,
            error = %why,
            "event feed: delivery failed"
        );
        s.last_error = Some(why);
    }

    fn publish(&self, name: &str, head: i64) {
        let Some(s) = self.subs.get(name) else {
            return;
        };
        let head = head.max(s.cursor);
        self.feeds.set(
            name,
            FeedStatus {
                cursor: s.cursor,
                head,
                lag: head - s.cursor,
                interests: s.interests.clone(),
                delivered: s.delivered,
                failures: s.failures,
                last_error: s.last_error.clone(),
                retry_at: (s.retry_at_ms > 0).then(|| divoc_time::format_millis(s.retry_at_ms)),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn interests_are_prefixes() {
        assert!(wanted(&[], "certificate.issued"));
        let i = vec!["certificate.".to_owned()];
        assert!(wanted(&i, "certificate.revoked"));
        assert!(!wanted(&i, "enrolment.created"));
    }

    #[test]
    fn a_plugin_event_carries_its_subject() {
        let e = Event {
            seq: 7,
            kind: "certificate.issued".into(),
            occurred_at_ms: 1_750_000_000_000,
            subject: "c-1".into(),
            payload: json!({"dose": 1}),
        };
        let p = plugin_event(&e);
        assert_eq!(p.sequence, 7);
        let payload: Value = serde_json::from_str(&p.payload).unwrap();
        assert_eq!(payload, json!({"dose": 1, "subject": "c-1"}));
    }

    #[test]
    fn config_is_checked() {
        assert!(FeedConfig::default().validate().is_ok());
        let bad = FeedConfig {
            batch: 0,
            ..FeedConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("batch"));
    }
}
