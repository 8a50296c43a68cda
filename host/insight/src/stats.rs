//! `GET /v1/stats` and `/v1/stats/public`: the live counters
//! (`divoc_storage::stats`), shaped for people, with rates derived from
//! them. Reading costs a scan of the counters, never of the counted rows.
//!
//! The documents are rebuilt in the background when the counters move
//! ([`StatsCache`], at most `refresh-ms` old) and answered from memory.
//!
//! The public variant suppresses every cell under the configured minimum
//! count (small cells can single out people: "the one 80+ woman vaccinated
//! in that district on that day"), and says so.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use divoc_storage::stats::{self, Count};
use divoc_storage::{Database, StorageError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// `[stats]` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StatsConfig {
    /// Cells with fewer than this many go unpublished in `/v1/stats/public`.
    pub public_min_count: i64,
    /// How often the published documents are rebuilt when something
    /// changed: the statistics are at most this old.
    pub refresh_ms: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            public_min_count: 10,
            refresh_ms: 1000,
        }
    }
}

/// The pause after a rebuild is at least this many times its duration: a
/// rebuild takes at most 1/(1 + this) of one core.
pub const REBUILD_PAUSE_FACTOR: u32 = 20;

/// The two documents, built together from one read of the counters.
#[derive(Debug, Default)]
struct Built {
    /// The event log's head when they were built (every counted change
    /// appends an event, so an unchanged head means unchanged counters).
    head: i64,
    full: Arc<Vec<u8>>,
    public: Arc<Vec<u8>>,
    ready: bool,
}

/// The statistics documents, rebuilt in the background when the counters
/// have moved, so that a request is answered from memory: building them
/// reads every counter (tens of thousands in a national rollout, tens of
/// milliseconds), which is work for once a second, not once a request.
#[derive(Clone)]
pub struct StatsCache {
    db: Database,
    config: StatsConfig,
    built: Arc<RwLock<Built>>,
}

impl std::fmt::Debug for StatsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsCache")
            .field("config", &self.config)
            .finish()
    }
}

impl StatsCache {
    /// A cache over `db`'s counters; empty until first asked or refreshed.
    pub fn new(db: Database, config: StatsConfig) -> StatsCache {
        StatsCache {
            db,
            config,
            built: Arc::default(),
        }
    }

    /// The settings it publishes with.
    pub fn config(&self) -> &StatsConfig {
        &self.config
    }

    /// Rebuilds the documents if the counters moved; whether it did.
    pub fn refresh(&self) -> Result<bool, StorageError> {
        let head = self.db.read(divoc_storage::events::head)?;
        {
            let b = self.built.read();
            if b.ready && b.head == head {
                return Ok(false);
            }
        }
        // One read of the counters for both documents.
        let counts = self.db.read(|r| stats::counts(r, ""))?;
        // `through`: the last event the counters reflect, so that a reader
        // that saw a later one in the stream knows to ask again.
        let to_json = |mut v: Value| {
            v["through"] = json!(head);
            Arc::new(serde_json::to_vec(&v).unwrap_or_default())
        };
        let full = to_json(document(&counts, &self.config, false));
        let public = to_json(document(&counts, &self.config, true));
        *self.built.write() = Built {
            head,
            full,
            public,
            ready: true,
        };
        Ok(true)
    }

    /// The document as JSON bytes: from memory, built now only if it never
    /// was.
    pub fn get(&self, public: bool) -> Result<Arc<Vec<u8>>, StorageError> {
        if !self.built.read().ready {
            self.refresh()?;
        }
        let b = self.built.read();
        Ok(if public {
            b.public.clone()
        } else {
            b.full.clone()
        })
    }

    /// Refreshes every `refresh-ms` until `stop` turns true, or less often
    /// when a rebuild is slow: the pause after one is at least
    /// [`REBUILD_PAUSE_FACTOR`] times what it took, so the statistics never
    /// take more than a small share of the machine however many counters
    /// there are (many facilities and batches on a national scale).
    pub fn spawn(
        self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let every = std::time::Duration::from_millis(self.config.refresh_ms.max(10));
            loop {
                if *stop.borrow() {
                    break;
                }
                let cache = self.clone();
                let started = std::time::Instant::now();
                match tokio::task::spawn_blocking(move || cache.refresh()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "statistics: cannot refresh"),
                    Err(e) => tracing::warn!(error = %e, "statistics: refresh task failed"),
                }
                let pause = every.max(started.elapsed() * REBUILD_PAUSE_FACTOR);
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        })
    }
}

/// Per-dimension counts of one metric: `{"total": n, "vaccine": {"COVAX": n}, …}`.
fn shape(counts: &[Count], min: Option<i64>) -> (Value, u64) {
    let mut metrics: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut suppressed = 0u64;
    // Ratings are shown as averages (`ratings`), not as sums.
    for c in counts.iter().filter(|c| !c.metric.starts_with("ratings.")) {
        let m = metrics.entry(c.metric.as_str()).or_default();
        if c.dimension == "total" {
            m.insert("total".into(), json!(c.n));
            continue;
        }
        if min.is_some_and(|min| c.n < min) {
            suppressed += 1;
            continue;
        }
        let dim = m
            .entry(c.dimension.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(d) = dim {
            d.insert(c.key.clone(), json!(c.n));
        }
    }
    let mut out = Map::new();
    for (metric, dims) in metrics {
        out.insert(metric.to_owned(), Value::Object(dims));
    }
    (Value::Object(out), suppressed)
}

/// Side-effect reports per 1,000 doses, by batch: `{"LOT-1": {"doses",
/// "reports", "serious", "per1000", "seriousPer1000"}}`.
fn batch_rates(counts: &[Count], min: Option<i64>) -> Value {
    let of = |metric: &str| -> BTreeMap<&str, i64> {
        counts
            .iter()
            .filter(|c| c.metric == metric && c.dimension == "batch")
            .map(|c| (c.key.as_str(), c.n))
            .collect()
    };
    let doses = of(stats::CERTIFICATES_ISSUED);
    let reports = of("feedback.reports");
    let serious = of("feedback.serious");
    let mut out = Map::new();
    for (batch, &d) in &doses {
        if d == 0 || min.is_some_and(|min| d < min) {
            continue;
        }
        let r = reports.get(batch).copied().unwrap_or(0);
        let s = serious.get(batch).copied().unwrap_or(0);
        let per = |n: i64| (n as f64) * 1000.0 / (d as f64);
        // A few reports are small cells too: in public they are withheld
        // (null), not shown; none is not identifying.
        let shown = |n: i64| !min.is_some_and(|min| n > 0 && n < min);
        let cell = |n: i64| if shown(n) { json!(n) } else { Value::Null };
        let rate = |n: i64| {
            if shown(n) {
                json!(round2(per(n)))
            } else {
                Value::Null
            }
        };
        out.insert(
            (*batch).to_owned(),
            json!({
                "doses": d, "reports": cell(r), "serious": cell(s),
                "per1000": rate(r), "seriousPer1000": rate(s),
            }),
        );
    }
    Value::Object(out)
}

/// Average stars by facility and vaccinator, from the running sums.
fn ratings(counts: &[Count], min: Option<i64>) -> Value {
    let mut out = Map::new();
    for who in ["facility", "vaccinator"] {
        let sums: BTreeMap<&str, i64> = counts
            .iter()
            .filter(|c| c.metric == format!("ratings.{who}.stars"))
            .map(|c| (c.key.as_str(), c.n))
            .collect();
        let mut m = Map::new();
        for c in counts
            .iter()
            .filter(|c| c.metric == format!("ratings.{who}.count"))
        {
            if c.n == 0 || min.is_some_and(|min| c.n < min) {
                continue;
            }
            let sum = sums.get(c.key.as_str()).copied().unwrap_or(0);
            m.insert(
                c.key.clone(),
                json!({"ratings": c.n, "average": round2(sum as f64 / c.n as f64)}),
            );
        }
        out.insert(who.to_owned(), Value::Object(m));
    }
    Value::Object(out)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The statistics document; `public` suppresses small cells.
pub fn snapshot(db: &Database, config: &StatsConfig, public: bool) -> Result<Value, StorageError> {
    let counts = db.read(|r| stats::counts(r, ""))?;
    Ok(document(&counts, config, public))
}

/// The statistics document from the counters.
pub fn document(counts: &[Count], config: &StatsConfig, public: bool) -> Value {
    let min = public.then_some(config.public_min_count);
    let (metrics, suppressed) = shape(counts, min);
    let mut doc = json!({
        "metrics": metrics,
        "aefiByBatch": batch_rates(counts, min),
        "ratings": ratings(counts, min),
    });
    if public {
        doc["suppressedBelow"] = json!(config.public_min_count);
        doc["suppressedCells"] = json!(suppressed);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(metric: &str, dimension: &str, key: &str, n: i64) -> Count {
        Count {
            metric: metric.into(),
            dimension: dimension.into(),
            key: key.into(),
            n,
        }
    }

    #[test]
    fn small_cells_are_suppressed_in_public() {
        let counts = vec![
            c("certificates.issued", "total", "all", 103),
            c("certificates.issued", "district", "A", 100),
            c("certificates.issued", "district", "B", 3),
        ];
        let (all, n) = shape(&counts, None);
        assert_eq!(n, 0);
        assert_eq!(all["certificates.issued"]["district"]["B"], 3);
        let (public, n) = shape(&counts, Some(10));
        assert_eq!(n, 1);
        assert!(public["certificates.issued"]["district"].get("B").is_none());
        assert_eq!(public["certificates.issued"]["total"], 103);
    }

    #[test]
    fn rates_per_thousand_doses() {
        let counts = vec![
            c("certificates.issued", "batch", "L1", 2000),
            c("feedback.reports", "batch", "L1", 3),
            c("feedback.serious", "batch", "L1", 1),
            c("ratings.facility.count", "facility", "F", 4),
            c("ratings.facility.stars", "facility", "F", 18),
        ];
        let r = batch_rates(&counts, None);
        assert_eq!(r["L1"]["per1000"], 1.5);
        // In public, three reports (under 10) are withheld.
        let p = batch_rates(&counts, Some(10));
        assert_eq!(p["L1"]["doses"], 2000);
        assert!(p["L1"]["reports"].is_null() && p["L1"]["per1000"].is_null());
        assert_eq!(r["L1"]["seriousPer1000"], 0.5);
        let s = ratings(&counts, None);
        assert_eq!(s["facility"]["F"]["average"], 4.5);
    }
}
