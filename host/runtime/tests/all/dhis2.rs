//! `events-dhis2` through the real runtime (SQLite kv, the `http`
//! capability) against a loopback server playing DHIS2: aggregate totals
//! per period, org unit and data element; replays that do not double
//! count; failures that are not acknowledged.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use divoc_runtime::types::events::Event;
use divoc_runtime::{Grant, GuestErrorKind, PluginError, Runtime};
use serde_json::{json, Value};

use crate::loopback::Server;
use crate::support::{self, SqliteKv};

const PLUGIN: &str = "events-dhis2";
const EXAMPLE_ORIGIN: &str = "https://dhis2.example.org";
const DATA_SET: &str = "BfMAe6Itzgt";
const DOSES: &str = "fClA2Erf6IO";
const DOSE_2: &str = "Prlt0C1RF0s";
const OU_F1: &str = "DiszpKrYNg8";
const OU_F2: &str = "ImspTQPwCqd";

/// The built plugin copied under `tmp`, its example origin replaced by
/// `origin` (the operator's deployment step), granted `origin` and kv, over
/// SQLite kv under `tmp`.
fn dhis2_runtime(tmp: &Path, origin: &str, config: Value) -> (Runtime, Arc<SqliteKv>) {
    let plugins = tmp.join("plugins");
    support::copy_plugin(&support::plugin_dir(PLUGIN), &plugins.join(PLUGIN), |m| {
        support::replace(m, EXAMPLE_ORIGIN, origin)
    });
    let mut settings = support::settings();
    settings.grants.insert(
        PLUGIN.into(),
        Grant {
            http_origins: vec![origin.to_string()],
            kv_quota_bytes: Some(8 << 20),
            ..Grant::default()
        },
    );
    settings.config.insert(PLUGIN.into(), config);
    let (services, kv, _signer) = support::real_services(tmp);
    let runtime = Runtime::new(settings, services).unwrap();
    let report = runtime.reload_dir(&plugins);
    assert_eq!(report.loaded, vec![format!("{PLUGIN}@0.1.0")], "{report:?}");
    (runtime, kv)
}

fn aggregate_config(origin: &str) -> Value {
    json!({
        "url": origin,
        "username": "divoc",
        "password": "district",
        "period_type": "daily",
        "data_set": DATA_SET,
        "org_units": { "F1": OU_F1, "F2": OU_F2 },
        "data_elements": [
            { "program": "C19", "dose": 1, "data_element": DOSES },
            { "program": "C19", "dose": 2, "data_element": DOSES, "category_option_combo": DOSE_2 },
        ],
    })
}

/// A `certificate.issued` event as the host's feeder sends it: the
/// certificate summary (host/storage/src/certificates.rs) plus `subject`,
/// issued on 2021-03-01 (UTC) plus `minutes`.
fn issued(sequence: u64, dose: u32, facility: &str, minutes: u64) -> Event {
    Event {
        sequence,
        kind: "certificate.issued".into(),
        occurred_at: 1_614_556_800_000 + minutes * 60_000,
        payload: json!({
            "id": format!("cert-{sequence}"), "program": "C19", "dose": dose, "version": 1,
            "previous_id": null, "facility_id": facility, "subject": format!("cert-{sequence}"),
        })
        .to_string(),
    }
}

/// DHIS2's answer to an accepted `dataValueSets` import, in the shape of
/// its import summary.
fn summary_ok(imported: u64, updated: u64) -> Value {
    json!({
        "responseType": "ImportSummary",
        "status": "OK",
        "importCount": { "imported": imported, "updated": updated, "ignored": 0, "deleted": 0 },
        "conflicts": [],
    })
}

/// `(dataElement, categoryOptionCombo, value)` of each data value.
fn values(body: &Value) -> Vec<(String, Option<String>, String)> {
    body["dataValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["dataElement"].as_str().unwrap().to_owned(),
                v["categoryOptionCombo"].as_str().map(str::to_owned),
                v["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn total(kv: &SqliteKv, period: &str, ou: &str, de: &str, coc: &str) -> Value {
    let key = format!("t/{period}/{ou}/{de}/{coc}");
    let bytes = kv.db.kv_get(PLUGIN, &key).unwrap().unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn kind_of(e: PluginError) -> GuestErrorKind {
    e.guest_error()
        .unwrap_or_else(|| panic!("not a returned error: {e}"))
        .kind
}

#[test]
fn dhis2_aggregate_totals_replays_and_failures() {
    let _load = support::shared();
    let server = Server::start();
    let origin = server.origin();
    let tmp = tempfile::tempdir().unwrap();
    let (runtime, kv) = dhis2_runtime(tmp.path(), &origin, aggregate_config(&origin));
    let s = runtime.event_subscriber(PLUGIN).unwrap();
    assert_eq!(s.interests().unwrap(), ["certificate.issued"]);

    let batch = [
        issued(1, 1, "F1", 0),
        issued(2, 1, "F1", 5),
        issued(3, 2, "F1", 10),
        issued(4, 1, "F2", 15),
    ];
    server.answer_json(200, summary_ok(2, 0));
    server.answer_json(200, summary_ok(1, 0));
    assert_eq!(s.deliver(&batch).unwrap(), 4);

    let f1 = server.next();
    assert_eq!(
        (f1.method.as_str(), f1.path.as_str()),
        ("POST", "/api/dataValueSets")
    );
    // RFC 7617 Basic credentials of "divoc:district".
    assert_eq!(
        f1.header("authorization"),
        Some("Basic ZGl2b2M6ZGlzdHJpY3Q=")
    );
    assert!(f1
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    let body = f1.json();
    assert_eq!(body["dataSet"], DATA_SET);
    assert_eq!(body["period"], "20210301");
    assert_eq!(body["orgUnit"], OU_F1);
    assert_eq!(
        values(&body),
        [
            (DOSES.into(), None, "2".into()),
            (DOSES.into(), Some(DOSE_2.into()), "1".into()),
        ]
    );
    let f2 = server.next().json();
    assert_eq!(f2["orgUnit"], OU_F2);
    assert_eq!(values(&f2), [(DOSES.into(), None, "1".into())]);
    // Nothing about the certificates or people leaves the host.
    for seen in [&body, &f2] {
        assert!(!seen.to_string().contains("cert-"), "{seen}");
    }

    // The host resends the batch (it crashed before storing its cursor):
    // acknowledged again, nothing sent, totals unchanged.
    assert_eq!(s.deliver(&batch).unwrap(), 4);
    assert!(server.quiet_for(300));
    // The plugin lost its own cursor too (a crash between storing the
    // totals and the cursor): the totals' sequences still prevent a
    // second count.
    kv.db.kv_delete(PLUGIN, "cursor").wait().unwrap();
    assert_eq!(s.deliver(&batch).unwrap(), 4);
    assert!(server.quiet_for(300));
    assert_eq!(
        total(&kv, "20210301", OU_F1, DOSES, "-"),
        json!({"n": 2, "seq": 2})
    );

    // The next vaccination sends the new running total.
    server.answer_json(200, summary_ok(0, 1));
    assert_eq!(s.deliver(&[issued(5, 1, "F1", 20)]).unwrap(), 5);
    assert_eq!(
        values(&server.next().json()),
        [(DOSES.into(), None, "3".into())]
    );

    // DHIS2 down: unavailable (the host retries with back-off), nothing
    // acknowledged, nothing counted.
    server.answer_json(
        503,
        json!({"httpStatus": "Service Unavailable", "httpStatusCode": 503}),
    );
    let e = s.deliver(&[issued(6, 1, "F1", 25)]).unwrap_err();
    assert_eq!(kind_of(e), GuestErrorKind::Unavailable);
    server.next();
    assert_eq!(s.deliver(&[]).unwrap(), 5, "the ack must not advance");
    assert_eq!(total(&kv, "20210301", OU_F1, DOSES, "-")["n"], 3);

    // DHIS2 refuses the values (its 409 import summary with conflicts):
    // rejected, and still not acknowledged.
    server.answer_json(
        409,
        json!({"httpStatus": "Conflict", "httpStatusCode": 409, "status": "WARNING",
               "response": {"responseType": "ImportSummary", "status": "WARNING",
                            "importCount": {"imported": 0, "updated": 0, "ignored": 1, "deleted": 0},
                            "conflicts": [{"object": "20210301", "value": "Period is locked"}]}}),
    );
    let e = s.deliver(&[issued(6, 1, "F1", 25)]).unwrap_err();
    assert_eq!(kind_of(e), GuestErrorKind::Rejected);
    server.next();
    assert_eq!(s.deliver(&[]).unwrap(), 5);

    // Back up: the retried event is counted once.
    server.answer_json(200, summary_ok(0, 1));
    assert_eq!(s.deliver(&[issued(6, 1, "F1", 25)]).unwrap(), 6);
    assert_eq!(
        values(&server.next().json()),
        [(DOSES.into(), None, "4".into())]
    );
}

/// A port nothing listens on.
fn closed_origin() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

#[test]
fn dhis2_unreachable_acknowledges_only_what_needs_no_export() {
    let _load = support::shared();
    let origin = closed_origin();
    let tmp = tempfile::tempdir().unwrap();
    // A catch-all row and a default org unit: every complete event is
    // exportable.
    let config = json!({
        "url": origin, "token": "d2pat_test",
        "default_org_unit": OU_F1,
        "data_elements": [{ "data_element": DOSES }],
    });
    let (runtime, kv) = dhis2_runtime(tmp.path(), &origin, config);
    let s = runtime.event_subscriber(PLUGIN).unwrap();
    // The conformance cases' events (conformance/cases/event-subscriber)
    // carry no programme or dose, so no retry could export them: they are
    // acknowledged without reaching for the network.
    let ev = |sequence, kind: &str, payload: &str| Event {
        sequence,
        kind: kind.into(),
        occurred_at: 1_750_000_000_000,
        payload: payload.into(),
    };
    let cases = [
        ev(1, "certificate.issued", r#"{"certificate-id":"c1"}"#),
        ev(2, "certificate.revoked", r#"{"certificate-id":"c1"}"#),
        ev(3, "program.created", "{}"),
    ];
    assert_eq!(s.deliver(&cases).unwrap(), 3);
    // An exportable event cannot be handled while DHIS2 is unreachable:
    // an error, not an acknowledgement.
    let e = s.deliver(&[issued(4, 1, "F1", 0)]).unwrap_err();
    assert_eq!(kind_of(e), GuestErrorKind::Unavailable);
    assert_eq!(s.deliver(&[]).unwrap(), 3);
    assert!(kv.db.kv_list(PLUGIN, "t/", 10).unwrap().is_empty());
}

#[test]
fn dhis2_tracker_events_are_anonymous_and_keep_their_uids() {
    let _load = support::shared();
    let server = Server::start();
    let origin = server.origin();
    let tmp = tempfile::tempdir().unwrap();
    let config = json!({
        "url": origin, "token": "d2pat_test", "mode": "tracker",
        "utc_offset_minutes": 330,
        "org_units": { "F1": OU_F1 },
        "tracker": {
            "program": "eBAyeGv0exc", "program_stage": "Zj7UnCAulEk",
            "data_elements": { "dose": "qrur9Dvnyt5" },
        },
    });
    let (runtime, kv) = dhis2_runtime(tmp.path(), &origin, config);
    let s = runtime.event_subscriber(PLUGIN).unwrap();
    let report = json!({"status": "OK", "validationReport": {"errorReports": []},
                        "stats": {"created": 1, "updated": 0, "deleted": 0, "ignored": 0, "total": 1}});
    server.answer_json(200, report.clone());
    assert_eq!(s.deliver(&[issued(1, 2, "F1", 0)]).unwrap(), 1);
    let seen = server.next();
    assert_eq!(
        seen.path,
        "/api/tracker?async=false&importStrategy=CREATE_AND_UPDATE"
    );
    assert_eq!(seen.header("authorization"), Some("ApiToken d2pat_test"));
    let body = seen.json();
    let event = &body["events"][0];
    assert_eq!(event["program"], "eBAyeGv0exc");
    assert_eq!(event["programStage"], "Zj7UnCAulEk");
    assert_eq!(event["orgUnit"], OU_F1);
    assert_eq!(event["status"], "COMPLETED");
    // 2021-03-01T00:00Z is 05:30 in UTC+05:30.
    assert_eq!(event["occurredAt"], "2021-03-01T05:30:00.000");
    assert_eq!(
        event["dataValues"],
        json!([{"dataElement": "qrur9Dvnyt5", "value": "2"}])
    );
    assert!(event.get("trackedEntity").is_none() && event.get("enrollment").is_none());
    assert!(!body.to_string().contains("cert-"));

    // A replay after a lost cursor updates the same event.
    kv.db.kv_delete(PLUGIN, "cursor").wait().unwrap();
    server.answer_json(200, report);
    assert_eq!(s.deliver(&[issued(1, 2, "F1", 0)]).unwrap(), 1);
    assert_eq!(server.next().json()["events"][0]["event"], event["event"]);
}
