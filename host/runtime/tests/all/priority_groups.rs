//! `policy-priority-groups` through the real runtime: phases open on their
//! dates, deny reasons name the phase that would open, and a configuration
//! the plugin cannot use fails closed.

use divoc_runtime::types::eligibility::{Decision, PreviousDose, Query};
use divoc_runtime::types::{Identity, Recipient};
use divoc_runtime::{GuestErrorKind, Runtime};
use serde_json::{json, Value};

use crate::support;

const PLUGIN: &str = "policy-priority-groups";

fn policy_runtime(tmp: &std::path::Path, config: Value) -> Runtime {
    support::copy_plugin(&support::plugin_dir(PLUGIN), &tmp.join(PLUGIN), |m| m);
    let mut settings = support::settings();
    settings.config.insert(PLUGIN.into(), config);
    let runtime = support::runtime(settings);
    let report = runtime.reload_dir(tmp);
    assert_eq!(report.loaded, vec![format!("{PLUGIN}@0.1.0")], "{report:?}");
    runtime
}

fn phases() -> Value {
    json!({
        "max_dose": 2,
        "min_days_between_doses": 28,
        "phases": [
            { "name": "phase 1", "start": "2021-01-16", "occupations": ["healthcare-worker"] },
            { "name": "phase 3", "start": "2021-03-01", "min_age": 60 },
            { "name": "phase 3b", "start": "2021-03-01", "min_age": 45, "max_age": 59,
              "conditions": ["diabetes"] },
            { "name": "phase 4", "start": "2021-04-01", "min_age": 45 },
        ],
    })
}

/// The query as the host builds it (host/divoc/src/wiring.rs): a date of
/// birth, no age, a national-id identity, no occupation or conditions.
fn query(dob: &str, dose: u32, date: &str, previous: &[(u32, &str)]) -> Query {
    Query {
        recipient: Recipient {
            name: "Test Recipient".into(),
            dob: Some(dob.into()),
            age: None,
            gender: Some("female".into()),
            nationality: None,
            identity: Identity {
                id_type: "national-id".into(),
                value: "234123412346".into(),
            },
            contacts: Vec::new(),
            address: None,
        },
        program: "C19".into(),
        vaccine: Some("COVAX".into()),
        dose,
        date: date.into(),
        previous_doses: previous
            .iter()
            .map(|(dose, date)| PreviousDose {
                vaccine: "COVAX".into(),
                dose: *dose,
                date: (*date).into(),
            })
            .collect(),
    }
}

fn reasons(d: Decision) -> Vec<String> {
    match d {
        Decision::Allow => Vec::new(),
        Decision::Deny(r) => r,
    }
}

#[test]
fn priority_groups_open_by_phase_and_name_the_next_one() {
    let _load = support::shared();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = policy_runtime(tmp.path(), phases());
    let p = runtime.rollout_policy(PLUGIN).unwrap();

    // 50 years old in March: phase 4 (45+) is the one that opens for them.
    let r = reasons(
        p.evaluate(&query("1971-01-01", 1, "2021-03-15", &[]))
            .unwrap(),
    );
    assert_eq!(r, ["not yet eligible: phase 4 (45+) opens 2021-04-01"]);
    assert!(reasons(
        p.evaluate(&query("1971-01-01", 1, "2021-04-01", &[]))
            .unwrap()
    )
    .is_empty());
    assert!(reasons(
        p.evaluate(&query("1950-06-01", 1, "2021-03-01", &[]))
            .unwrap()
    )
    .is_empty());

    // The host passes no occupation: the health-worker phase cannot admit,
    // and says why instead of claiming the criterion is unmet.
    let r = reasons(
        p.evaluate(&query("1995-01-01", 1, "2021-02-01", &[]))
            .unwrap(),
    );
    assert_eq!(r[0], "not eligible in the phases open on 2021-02-01");
    assert!(
        r.iter().any(
            |l| l.starts_with("phase 1 (healthcare-worker)") && l.contains("cannot be checked")
        ),
        "{r:?}"
    );
    // Reasons carry no personal data.
    assert!(
        r.iter().all(|l| !l.contains("1995") && !l.contains("Test")),
        "{r:?}"
    );

    // Dose 2 follows the series rules only.
    let r = reasons(
        p.evaluate(&query("1995-01-01", 2, "2021-05-10", &[(1, "2021-05-01")]))
            .unwrap(),
    );
    assert_eq!(
        r,
        ["doses must be at least 28 days apart; the next dose is possible in 19 days"]
    );

    let err = p
        .evaluate(&query("1971-01-01", 1, "not-a-date", &[]))
        .unwrap_err();
    assert_eq!(
        err.guest_error().unwrap().kind,
        GuestErrorKind::InvalidInput
    );
}

#[test]
fn priority_groups_fail_closed_on_a_bad_configuration() {
    let _load = support::shared();
    let tmp = tempfile::tempdir().unwrap();
    // `max_ages` is a typo: it must not silently widen eligibility.
    let runtime = policy_runtime(
        tmp.path(),
        json!({"phases": [{"name": "p", "start": "2021-01-01", "max_ages": 17}]}),
    );
    let p = runtime.rollout_policy(PLUGIN).unwrap();
    let err = p
        .evaluate(&query("1971-01-01", 1, "2021-03-15", &[]))
        .unwrap_err();
    assert_eq!(err.guest_error().unwrap().kind, GuestErrorKind::Internal);
}
