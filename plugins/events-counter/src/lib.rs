//! Event subscriber that counts events per kind.
//!
//! Configuration: `interests` (kind prefixes, default: all). The counts and
//! the highest sequence handled are stored together in one kv value, so one
//! durable write both counts a batch and acknowledges it.

use std::collections::BTreeMap;

use divoc_sdk::events::{Event, Guest};
use divoc_sdk::{config, kv, Error};
use serde::{Deserialize, Serialize};

const STATE_KEY: &str = "state";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub interests: Vec<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Highest sequence handled.
    pub last: u64,
    /// Events seen per kind.
    pub counts: BTreeMap<String, u64>,
}

/// Counts the events after `state.last` that match `interests` (prefixes;
/// empty matches everything). Events at or below `last` are resends and are
/// skipped, so a redelivery never double counts.
pub fn apply(state: &mut State, events: &[Event], interests: &[String]) {
    for e in events {
        if e.sequence <= state.last {
            continue;
        }
        if interests.is_empty() || interests.iter().any(|p| e.kind.starts_with(p.as_str())) {
            *state.counts.entry(e.kind.clone()).or_default() += 1;
        }
        state.last = e.sequence;
    }
}

struct Plugin;

impl Guest for Plugin {
    fn interests() -> Vec<String> {
        config::load::<Config>()
            .map(|c| c.interests)
            .unwrap_or_default()
    }

    fn deliver(events: Vec<Event>) -> Result<u64, Error> {
        let cfg: Config = config::load()?;
        let mut state: State = kv::get_json(STATE_KEY)?.unwrap_or_default();
        let before = state.last;
        apply(&mut state, &events, &cfg.interests);
        if state.last != before {
            kv::set_json(STATE_KEY, &state)?;
        }
        Ok(state.last)
    }
}

divoc_sdk::export_event_subscriber!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(sequence: u64, kind: &str) -> Event {
        Event {
            sequence,
            kind: kind.into(),
            occurred_at: 0,
            payload: "{}".into(),
        }
    }

    #[test]
    fn counts_and_skips_resends() {
        let mut s = State::default();
        apply(
            &mut s,
            &[
                ev(1, "certificate.issued"),
                ev(2, "certificate.issued"),
                ev(3, "certificate.revoked"),
            ],
            &[],
        );
        assert_eq!(s.last, 3);
        assert_eq!(s.counts["certificate.issued"], 2);
        apply(
            &mut s,
            &[ev(3, "certificate.revoked"), ev(4, "certificate.revoked")],
            &[],
        );
        assert_eq!(s.counts["certificate.revoked"], 2);
        assert_eq!(s.last, 4);
    }

    #[test]
    fn filters_by_interest_but_acknowledges_all() {
        let mut s = State::default();
        apply(
            &mut s,
            &[ev(1, "certificate.issued"), ev(2, "feedback.received")],
            &["certificate.".into()],
        );
        assert_eq!(s.last, 2);
        assert_eq!(s.counts.len(), 1);
    }
}
