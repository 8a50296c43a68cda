//! `GET /v1/stats` and `/v1/stats/public`: the live counters
//! (`divoc_storage::stats`), shaped for people, with rates derived from
//! them. Reading costs a scan of the counters, never of the counted rows.
//!
//! The public variant suppresses every cell under the configured minimum
//! count (small cells can single out people: "the one 80+ woman vaccinated
//! in that district on that day"), and says so.

use std::collections::BTreeMap;

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
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            public_min_count: 10,
        }
    }
}

/// Per-dimension counts of one metric: `{"total": n, "vaccine": {"COVAX": n}, …}`.
fn shape(counts: &[Count], min: Option<i64>) -> (Value, u64) {
    let mut metrics: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut suppressed = 0u64;
    for c in counts {
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
        out.insert(
            (*batch).to_owned(),
            json!({
                "doses": d, "reports": r, "serious": s,
                "per1000": round2(per(r)), "seriousPer1000": round2(per(s)),
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
    let min = public.then_some(config.public_min_count);
    let (metrics, suppressed) = shape(
        &counts
            .iter()
            .filter(|c| !c.metric.starts_with("ratings."))
            .cloned()
            .collect::<Vec<_>>(),
        min,
    );
    let mut doc = json!({
        "metrics": metrics,
        "aefiByBatch": batch_rates(&counts, min),
        "ratings": ratings(&counts, min),
    });
    if public {
        doc["suppressedBelow"] = json!(config.public_min_count);
        doc["suppressedCells"] = json!(suppressed);
    }
    Ok(doc)
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
        assert_eq!(r["L1"]["seriousPer1000"], 0.5);
        let s = ratings(&counts, None);
        assert_eq!(s["facility"]["F"]["average"], 4.5);
    }
}
