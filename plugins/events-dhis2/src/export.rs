//! Exporting a batch: what is stored where, and in which order, so that the
//! host's at-least-once delivery (`wit/worlds.wit`, `events.deliver`: "the
//! host resends everything after" the acknowledged sequence) never counts
//! a vaccination twice nor acknowledges one that did not reach DHIS2.
//!
//! State in the plugin's kv:
//! - `cursor`: the highest sequence handled (u64, little endian);
//! - aggregate: `t/<period>/<orgUnit>/<dataElement>/<categoryOptionCombo>`:
//!   `{"n": total, "seq": highest sequence counted in it}`.
//!
//! Aggregate values are totals: DHIS2 stores what it is sent, replacing the
//! previous value (`importStrategy` `CREATE_AND_UPDATE`, the default). For
//! each cell a batch touches, the new total is the stored one plus the
//! batch's events *after the cell's own `seq`*; it is sent, and stored only
//! once DHIS2 took it. So:
//! - a crash after DHIS2 took the totals but before kv has them: the replay
//!   computes and sends the same totals again (an idempotent overwrite);
//! - a crash after some cells were stored but before the cursor: those
//!   cells' `seq` already covers the replayed events, so they are not
//!   counted again;
//! - a failed request: nothing of its cells is stored, the cursor does not
//!   move, and the error goes to the host, which retries with back-off.
//!
//! Tracker events carry a UID derived from their sequence, so a replay
//! updates the events it created before instead of adding more.

use std::collections::BTreeMap;

use divoc_sdk::events::Event;
use divoc_sdk::Error;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::{Config, Mode, Target};
use crate::dhis2;
use crate::event::{self, Parsed, Vaccination};

/// What the plugin needs from the host: kv, HTTP and the log. The guest
/// implements it with the `kv`, `http` and `log` capabilities; the tests
/// with an in-memory double.
pub trait Host {
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, Error>;
    /// Durable when it returns (`wit/host.wit`, `kv`).
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), Error>;
    /// POSTs a JSON body; `(status, body)` of the answer.
    fn post_json(
        &mut self,
        url: &str,
        authorization: &str,
        body: &Value,
        timeout_ms: u32,
    ) -> Result<(u16, Vec<u8>), Error>;
    /// Must not be given personal data; nothing here passes any.
    fn info(&mut self, message: &str);
    fn warn(&mut self, message: &str);
}

pub const CURSOR_KEY: &str = "cursor";

/// Tracker events per request: one request per host batch would do, but a
/// bounded body keeps each import (and its time-out) small.
pub const TRACKER_CHUNK: usize = 200;

pub fn cursor(host: &mut impl Host) -> Result<u64, Error> {
    match host.kv_get(CURSOR_KEY)? {
        None => Ok(0),
        Some(bytes) => {
            let arr: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| Error::internal("kv value `cursor` is not a u64"))?;
            Ok(u64::from_le_bytes(arr))
        }
    }
}

fn set_cursor(host: &mut impl Host, seq: u64) -> Result<(), Error> {
    host.kv_set(CURSOR_KEY, &seq.to_le_bytes())
}

/// A stored aggregate cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// Vaccinations counted.
    pub n: u64,
    /// The highest event sequence counted into `n`.
    pub seq: u64,
}

pub fn total_key(period: &str, org_unit: &str, data_element: &str, coc: Option<&str>) -> String {
    format!(
        "t/{period}/{org_unit}/{data_element}/{}",
        coc.unwrap_or("-")
    )
}

fn get_total(host: &mut impl Host, key: &str) -> Result<Total, Error> {
    match host.kv_get(key)? {
        None => Ok(Total::default()),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::internal(format!("kv value {key:?} is not a total: {e}"))),
    }
}

/// The first mapping row matching a vaccination.
pub fn mapping<'a>(cfg: &'a Config, v: &Vaccination) -> Option<&'a crate::config::Mapping> {
    cfg.data_elements.iter().find(|row| {
        row.program.as_ref().is_none_or(|p| p == &v.program)
            && row.dose.is_none_or(|d| d == v.dose)
            && row
                .vaccine
                .as_ref()
                .is_none_or(|want| v.vaccine.as_ref().is_some_and(|got| got == want))
    })
}

/// The events after the cursor, as vaccinations, with the highest
/// sequence seen. Malformed events are counted for one log line; they are
/// acknowledged, since no retry can make them exportable.
struct Batch {
    vaccinations: Vec<Vaccination>,
    highest: u64,
}

fn read_batch(cfg: &Config, host: &mut impl Host, after: u64, events: &[Event]) -> Batch {
    let mut vaccinations = Vec::new();
    let mut highest = after;
    let mut malformed: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    for e in events {
        // At or below the cursor: handled before (a resend after a crash).
        if e.sequence <= after {
            continue;
        }
        highest = highest.max(e.sequence);
        match event::parse(cfg.source, cfg.utc_offset_minutes, e) {
            Parsed::Other => {}
            Parsed::Malformed(why) => {
                let entry = malformed.entry(why).or_insert((0, e.sequence));
                entry.0 += 1;
            }
            Parsed::Vaccination(v) => vaccinations.push(v),
        }
    }
    for (why, (n, first)) in malformed {
        host.warn(&format!(
            "skipped {n} {} event(s) that cannot be exported, first at sequence {first}: {why}",
            cfg.source.kind()
        ));
    }
    Batch {
        vaccinations,
        highest,
    }
}

/// Handles a delivered batch; answers the highest sequence handled.
pub fn deliver(cfg: &Config, host: &mut impl Host, events: &[Event]) -> Result<u64, Error> {
    let after = cursor(host)?;
    let batch = read_batch(cfg, host, after, events);
    if !batch.vaccinations.is_empty() {
        match cfg.mode {
            Mode::Aggregate => aggregate(cfg, host, &batch.vaccinations)?,
            Mode::Tracker => tracker(cfg, host, &batch.vaccinations)?,
        }
    }
    if batch.highest > after {
        set_cursor(host, batch.highest)?;
    }
    Ok(batch.highest)
}

/// One `dataValueSets` request's worth: a data set, period and org unit.
type Group = (Option<String>, String, String);
/// A cell: data element and category option combo.
type Cell = (String, Option<String>);

fn aggregate(cfg: &Config, host: &mut impl Host, vs: &[Vaccination]) -> Result<(), Error> {
    let mut groups: BTreeMap<Group, BTreeMap<Cell, Vec<u64>>> = BTreeMap::new();
    let mut unmapped = 0u64;
    for v in vs {
        let Some(row) = mapping(cfg, v) else {
            unmapped += 1;
            continue;
        };
        let org_unit = cfg.org_unit(v.facility.as_deref())?.to_string();
        let data_set = row.data_set.clone().or_else(|| cfg.data_set.clone());
        let period = v.date.period(cfg.period_type);
        groups
            .entry((data_set, period, org_unit))
            .or_default()
            .entry((row.data_element.clone(), row.category_option_combo.clone()))
            .or_default()
            .push(v.sequence);
    }
    if unmapped > 0 {
        host.info(&format!(
            "{unmapped} vaccination(s) match no data_elements row and are not exported"
        ));
    }
    if groups.is_empty() {
        return Ok(());
    }
    cfg.check_aggregate()?;
    let target = cfg.target()?;
    for ((data_set, period, org_unit), cells) in groups {
        send_group(
            host,
            &target,
            data_set.as_deref(),
            &period,
            &org_unit,
            &cells,
        )?;
    }
    Ok(())
}

fn send_group(
    host: &mut impl Host,
    target: &Target,
    data_set: Option<&str>,
    period: &str,
    org_unit: &str,
    cells: &BTreeMap<Cell, Vec<u64>>,
) -> Result<(), Error> {
    let mut values = Vec::new();
    let mut updates = Vec::new();
    for ((data_element, coc), seqs) in cells {
        let key = total_key(period, org_unit, data_element, coc.as_deref());
        let stored = get_total(host, &key)?;
        let new = seqs.iter().filter(|s| **s > stored.seq).count() as u64;
        if new == 0 {
            continue;
        }
        let total = Total {
            n: stored.n.saturating_add(new),
            seq: seqs.iter().copied().max().unwrap_or(stored.seq),
        };
        let mut value = Map::new();
        value.insert("dataElement".into(), json!(data_element));
        if let Some(coc) = coc {
            value.insert("categoryOptionCombo".into(), json!(coc));
        }
        value.insert("value".into(), json!(total.n.to_string()));
        values.push(Value::Object(value));
        updates.push((key, total));
    }
    if values.is_empty() {
        return Ok(());
    }
    // "Sending data values": one data value set per period and org unit.
    let mut body = Map::new();
    if let Some(ds) = data_set {
        body.insert("dataSet".into(), json!(ds));
    }
    body.insert("period".into(), json!(period));
    body.insert("orgUnit".into(), json!(org_unit));
    body.insert("dataValues".into(), Value::Array(values));
    let url = format!("{}/api/dataValueSets", target.base);
    let (status, answer) = host.post_json(
        &url,
        &target.authorization,
        &Value::Object(body),
        target.timeout_ms,
    )?;
    let counts = dhis2::data_value_summary(status, &answer)?;
    for (key, total) in &updates {
        let bytes = serde_json::to_vec(total)
            .map_err(|e| Error::internal(format!("cannot serialize a total: {e}")))?;
        host.kv_set(key, &bytes)?;
    }
    host.info(&format!(
        "sent {} total(s) for period {period}, org unit {org_unit}: {} imported, {} updated",
        updates.len(),
        counts.imported,
        counts.updated
    ));
    Ok(())
}

/// The tracker event for a vaccination (Web API "Tracker" → "Tracker
/// objects" → "Events"): an event program's event, without enrollment or
/// tracked entity, so nothing identifies a person.
pub fn tracker_event(
    cfg: &Config,
    t: &crate::config::TrackerConfig,
    v: &Vaccination,
) -> Result<Value, Error> {
    let org_unit = cfg.org_unit(v.facility.as_deref())?;
    let time = v.time.unwrap_or(event::Time { h: 0, min: 0, s: 0 });
    let occurred_at = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000",
        v.date.y, v.date.m, v.date.d, time.h, time.min, time.s
    );
    let mut data_values = Vec::new();
    let d = &t.data_elements;
    if let Some(de) = &d.dose {
        data_values.push(json!({"dataElement": de, "value": v.dose.to_string()}));
    }
    if let (Some(de), Some(vaccine)) = (&d.vaccine, &v.vaccine) {
        data_values.push(json!({"dataElement": de, "value": vaccine}));
    }
    if let Some(de) = &d.program {
        data_values.push(json!({"dataElement": de, "value": v.program}));
    }
    Ok(json!({
        "event": dhis2::event_uid(&cfg.uid_namespace, cfg.source.kind(), v.sequence),
        "program": t.program,
        "programStage": t.program_stage,
        "orgUnit": org_unit,
        "occurredAt": occurred_at,
        "status": "COMPLETED",
        "dataValues": data_values,
    }))
}

fn tracker(cfg: &Config, host: &mut impl Host, vs: &[Vaccination]) -> Result<(), Error> {
    let t = cfg.tracker()?;
    let target = cfg.target()?;
    // Every event is checked before the first request, so that a missing
    // org unit mapping stops the batch before anything is sent.
    let events = vs
        .iter()
        .map(|v| tracker_event(cfg, t, v))
        .collect::<Result<Vec<_>, _>>()?;
    // `importStrategy=CREATE_AND_UPDATE` (the default, stated so a server
    // default cannot change it) makes a replay an update of the same UIDs.
    let url = format!(
        "{}/api/tracker?async=false&importStrategy=CREATE_AND_UPDATE",
        target.base
    );
    for (chunk, vs) in events.chunks(TRACKER_CHUNK).zip(vs.chunks(TRACKER_CHUNK)) {
        let body = json!({ "events": chunk });
        let (status, answer) =
            host.post_json(&url, &target.authorization, &body, target.timeout_ms)?;
        let stats = dhis2::tracker_summary(status, &answer)?;
        // Everything up to this chunk's last event is handled (the events
        // are in sequence order), whatever happens to the next chunk.
        if let Some(last) = vs.last() {
            set_cursor(host, last.sequence)?;
        }
        host.info(&format!(
            "sent {} tracker event(s): {} created, {} updated, {} ignored",
            chunk.len(),
            stats.created,
            stats.updated,
            stats.ignored
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// kv in memory, scripted DHIS2 answers, every request recorded.
    #[derive(Default)]
    pub struct Fake {
        pub kv: BTreeMap<String, Vec<u8>>,
        pub answers: VecDeque<Result<(u16, Value), Error>>,
        pub requests: Vec<(String, String, Value)>,
        pub logs: Vec<String>,
        /// Fail the kv write after this many more writes (a crash).
        pub writes_left: Option<usize>,
    }

    impl Host for Fake {
        fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, Error> {
            Ok(self.kv.get(key).cloned())
        }
        fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), Error> {
            if let Some(left) = &mut self.writes_left {
                if *left == 0 {
                    return Err(Error::unavailable("the host crashed"));
                }
                *left -= 1;
            }
            self.kv.insert(key.into(), value.to_vec());
            Ok(())
        }
        fn post_json(
            &mut self,
            url: &str,
            authorization: &str,
            body: &Value,
            _timeout_ms: u32,
        ) -> Result<(u16, Vec<u8>), Error> {
            self.requests
                .push((url.into(), authorization.into(), body.clone()));
            let answer = self.answers.pop_front().unwrap_or_else(|| {
                Ok((200, json!({"status": "OK", "importCount": {"imported": 1}})))
            });
            answer.map(|(s, v)| (s, serde_json::to_vec(&v).unwrap()))
        }
        fn info(&mut self, message: &str) {
            self.logs.push(message.into());
        }
        fn warn(&mut self, message: &str) {
            self.logs.push(message.into());
        }
    }

    pub fn config(extra: &str) -> Config {
        Config::parse(&format!(
            r#"{{"url": "https://dhis2.example.org", "token": "d2pat_x",
                 "data_set": "BfMAe6Itzgt", "period_type": "daily",
                 "org_units": {{"F1": "DiszpKrYNg8", "F2": "ImspTQPwCqd"}},
                 "data_elements": [
                   {{"program": "C19", "dose": 1, "data_element": "fClA2Erf6IO"}},
                   {{"program": "C19", "dose": 2, "data_element": "fClA2Erf6IO",
                     "category_option_combo": "Prlt0C1RF0s"}}
                 ]{extra}}}"#
        ))
        .unwrap()
        .0
    }

    /// `certificate.issued` on 2021-03-01 plus `minutes`.
    pub fn issued(seq: u64, dose: u32, facility: &str, minutes: u64) -> Event {
        Event {
            sequence: seq,
            kind: "certificate.issued".into(),
            occurred_at: 1_614_556_800_000 + minutes * 60_000,
            payload: format!(
                r#"{{"id":"c{seq}","program":"C19","dose":{dose},"version":1,"previous_id":null,"facility_id":"{facility}","subject":"c{seq}"}}"#
            ),
        }
    }

    fn values(body: &Value) -> Vec<(String, Option<String>, String)> {
        body["dataValues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["dataElement"].as_str().unwrap().to_string(),
                    v["categoryOptionCombo"].as_str().map(String::from),
                    v["value"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn totals_per_period_org_unit_and_cell() {
        let cfg = config("");
        let mut h = Fake::default();
        let batch = [
            issued(1, 1, "F1", 0),
            issued(2, 1, "F1", 10),
            issued(3, 2, "F1", 20),
            issued(4, 1, "F2", 30),
            issued(5, 1, "F1", 24 * 60), // the next day
        ];
        assert_eq!(deliver(&cfg, &mut h, &batch).unwrap(), 5);
        assert_eq!(h.requests.len(), 3);
        let (url, auth, body) = &h.requests[0];
        assert_eq!(url, "https://dhis2.example.org/api/dataValueSets");
        assert_eq!(auth, "ApiToken d2pat_x");
        assert_eq!(body["dataSet"], "BfMAe6Itzgt");
        assert_eq!(body["period"], "20210301");
        assert_eq!(body["orgUnit"], "DiszpKrYNg8");
        assert_eq!(
            values(body),
            [
                ("fClA2Erf6IO".into(), None, "2".into()),
                ("fClA2Erf6IO".into(), Some("Prlt0C1RF0s".into()), "1".into())
            ]
        );
        assert_eq!(h.requests[1].2["orgUnit"], "ImspTQPwCqd");
        assert_eq!(h.requests[2].2["period"], "20210302");

        // The next batch sends the running total.
        deliver(&cfg, &mut h, &[issued(6, 1, "F1", 40)]).unwrap();
        assert_eq!(values(&h.requests[3].2)[0].2, "3");
    }

    #[test]
    fn a_replay_is_not_counted_twice() {
        let cfg = config("");
        let mut h = Fake::default();
        let batch = [issued(1, 1, "F1", 0), issued(2, 1, "F1", 1)];
        assert_eq!(deliver(&cfg, &mut h, &batch).unwrap(), 2);
        // The same batch again: below the cursor, nothing is sent.
        assert_eq!(deliver(&cfg, &mut h, &batch).unwrap(), 2);
        assert_eq!(h.requests.len(), 1);
        // Lost cursor (a crash after the totals were stored): the cells'
        // own sequence keeps them from being counted again.
        h.kv.remove(CURSOR_KEY);
        assert_eq!(deliver(&cfg, &mut h, &batch).unwrap(), 2);
        assert_eq!(h.requests.len(), 1);
        deliver(&cfg, &mut h, &[issued(3, 1, "F1", 2)]).unwrap();
        assert_eq!(values(&h.requests[1].2)[0].2, "3");
    }

    #[test]
    fn a_crash_after_dhis2_took_the_totals_resends_the_same_totals() {
        let cfg = config("");
        let mut h = Fake {
            writes_left: Some(0),
            ..Fake::default()
        };
        let batch = [issued(1, 1, "F1", 0), issued(2, 1, "F1", 1)];
        assert!(deliver(&cfg, &mut h, &batch).is_err());
        assert_eq!(values(&h.requests[0].2)[0].2, "2");
        h.writes_left = None;
        assert_eq!(deliver(&cfg, &mut h, &batch).unwrap(), 2);
        assert_eq!(values(&h.requests[1].2)[0].2, "2");
    }

    #[test]
    fn a_failed_group_keeps_the_cursor_and_earlier_groups() {
        let cfg = config("");
        let mut h = Fake::default();
        h.answers.push_back(Ok((
            200,
            json!({"status": "OK", "importCount": {"imported": 1}}),
        )));
        h.answers
            .push_back(Ok((503, json!({"message": "Service Unavailable"}))));
        let batch = [issued(1, 1, "F1", 0), issued(2, 1, "F2", 1)];
        let e = deliver(&cfg, &mut h, &batch).unwrap_err();
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
        assert_eq!(cursor(&mut h).unwrap(), 0);
        // The retry sends only the group that failed.
        assert_eq!(deliver(&cfg, &mut h, &batch).unwrap(), 2);
        assert_eq!(h.requests.len(), 3);
        assert_eq!(h.requests[2].2["orgUnit"], "ImspTQPwCqd");
        assert_eq!(values(&h.requests[2].2)[0].2, "1");
        // A refusal and a network failure are errors too.
        h.answers.push_back(Ok((
            200,
            json!({"status": "ERROR", "importCount": {"ignored": 1}}),
        )));
        let e = deliver(&cfg, &mut h, &[issued(3, 1, "F1", 2)]).unwrap_err();
        assert!(matches!(e, Error::Rejected(_)), "{e:?}");
        h.answers
            .push_back(Err(Error::unavailable("connection refused")));
        let e = deliver(&cfg, &mut h, &[issued(3, 1, "F1", 2)]).unwrap_err();
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
        assert_eq!(cursor(&mut h).unwrap(), 2);
    }

    #[test]
    fn unexportable_events_are_acknowledged_without_a_request() {
        // No url, no mapping: nothing to send, so nothing is needed.
        let cfg = Config::default();
        let mut h = Fake::default();
        let batch = [
            issued(1, 1, "F1", 0),
            Event {
                sequence: 2,
                kind: "certificate.issued".into(),
                occurred_at: 0,
                payload: "{}".into(),
            },
            Event {
                sequence: 3,
                kind: "program.created".into(),
                occurred_at: 0,
                payload: "{}".into(),
            },
        ];
        assert_eq!(deliver(&cfg, &mut h, &batch).unwrap(), 3);
        assert!(h.requests.is_empty());
        assert!(
            h.logs.iter().any(|l| l.contains("first at sequence 2")),
            "{:?}",
            h.logs
        );
        // An empty batch answers the cursor.
        assert_eq!(deliver(&cfg, &mut h, &[]).unwrap(), 3);
        assert_eq!(
            deliver(&Config::default(), &mut Fake::default(), &[]).unwrap(),
            0
        );
    }

    #[test]
    fn a_mapped_event_needs_a_configured_target_and_org_unit() {
        let mut h = Fake::default();
        let (no_url, _) = Config::parse(
            r#"{"data_elements": [{"data_element": "fClA2Erf6IO"}], "default_org_unit": "DiszpKrYNg8"}"#,
        )
        .unwrap();
        let e = deliver(&no_url, &mut h, &[issued(1, 1, "F1", 0)]).unwrap_err();
        assert!(matches!(e, Error::Internal(_)), "{e:?}");
        let e = deliver(&config(""), &mut h, &[issued(1, 1, "F9", 0)]).unwrap_err();
        assert!(
            matches!(&e, Error::Rejected(m) if m.contains("F9")),
            "{e:?}"
        );
        assert!(h.requests.is_empty());
        assert_eq!(cursor(&mut h).unwrap(), 0);
    }

    #[test]
    fn vaccine_rows_match_rollout_events() {
        let cfg = config(
            r#", "source": "rollout.vaccinated", "period_type": "monthly",
               "data_elements": [{"vaccine": "COVAX", "data_element": "pikOziyCXbM"},
                                  {"data_element": "fClA2Erf6IO"}]"#,
        );
        let ev = |seq: u64, vaccine: &str| Event {
            sequence: seq,
            kind: "rollout.vaccinated".into(),
            occurred_at: 0,
            payload: format!(
                r#"{{"enrolment":"1234567890","programme":"C19","dose":1,"certificate":"c","facility":"F1","vaccinator":"Nurse A","vaccine":"{vaccine}","date":"2021-04-30"}}"#
            ),
        };
        let mut h = Fake::default();
        deliver(&cfg, &mut h, &[ev(1, "COVAX"), ev(2, "OTHER")]).unwrap();
        let body = &h.requests[0].2;
        assert_eq!(body["period"], "202104");
        assert_eq!(
            values(body),
            [
                ("fClA2Erf6IO".into(), None, "1".into()),
                ("pikOziyCXbM".into(), None, "1".into())
            ]
        );
        // Nothing but counts and metadata UIDs leaves the plugin.
        let text = body.to_string();
        for private in ["1234567890", "Nurse A", "\"c\""] {
            assert!(!text.contains(private), "{text}");
        }
    }

    #[test]
    fn tracker_events_are_anonymous_and_replay_safe() {
        let cfg = config(
            r#", "mode": "tracker", "tracker": {"program": "eBAyeGv0exc", "program_stage": "Zj7UnCAulEk",
                 "data_elements": {"dose": "qrur9Dvnyt5", "program": "oZg33kd9taw"}}"#,
        );
        let mut h = Fake::default();
        h.answers
            .push_back(Ok((200, json!({"status": "OK", "stats": {"created": 2}}))));
        let batch = [issued(1, 1, "F1", 90), issued(2, 2, "F2", 95)];
        assert_eq!(deliver(&cfg, &mut h, &batch).unwrap(), 2);
        let (url, _, body) = &h.requests[0];
        assert_eq!(
            url,
            "https://dhis2.example.org/api/tracker?async=false&importStrategy=CREATE_AND_UPDATE"
        );
        let e = &body["events"][0];
        assert_eq!(e["program"], "eBAyeGv0exc");
        assert_eq!(e["programStage"], "Zj7UnCAulEk");
        assert_eq!(e["orgUnit"], "DiszpKrYNg8");
        assert_eq!(e["occurredAt"], "2021-03-01T01:30:00.000");
        assert_eq!(e["status"], "COMPLETED");
        assert_eq!(
            e["dataValues"],
            json!([{"dataElement": "qrur9Dvnyt5", "value": "1"},
                   {"dataElement": "oZg33kd9taw", "value": "C19"}])
        );
        assert!(!body.to_string().contains("\"c1\""));
        let uid = e["event"].as_str().unwrap().to_string();
        // A replay after a lost cursor sends the same UIDs.
        h.kv.remove(CURSOR_KEY);
        deliver(&cfg, &mut h, &batch).unwrap();
        assert_eq!(h.requests[1].2["events"][0]["event"], uid.as_str());
        // An import error is a refusal; the cursor stays.
        h.answers.push_back(Ok((
            409,
            json!({"status": "ERROR", "validationReport": {"errorReports": [{"errorCode": "E1011", "message": "no org unit"}]}}),
        )));
        let e = deliver(&cfg, &mut h, &[issued(3, 1, "F1", 100)]).unwrap_err();
        assert!(matches!(e, Error::Rejected(_)), "{e:?}");
        assert_eq!(cursor(&mut h).unwrap(), 2);
    }

    #[test]
    fn tracker_chunks_move_the_cursor_as_they_land() {
        let cfg = config(
            r#", "mode": "tracker", "tracker": {"program": "eBAyeGv0exc", "program_stage": "Zj7UnCAulEk"}"#,
        );
        let mut h = Fake::default();
        h.answers.push_back(Ok((200, json!({"status": "OK"}))));
        h.answers.push_back(Ok((502, json!({}))));
        let batch: Vec<Event> = (1..=(TRACKER_CHUNK as u64 + 5))
            .map(|s| issued(s, 1, "F1", s))
            .collect();
        assert!(deliver(&cfg, &mut h, &batch).is_err());
        assert_eq!(cursor(&mut h).unwrap(), TRACKER_CHUNK as u64);
        assert_eq!(
            deliver(&cfg, &mut h, &batch).unwrap(),
            TRACKER_CHUNK as u64 + 5
        );
        assert_eq!(h.requests[2].2["events"].as_array().unwrap().len(), 5);
    }
}
