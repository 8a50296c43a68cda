//! Every kind of credential the service issues means what it says in
//! JSON-LD: expanded by a JSON-LD 1.1 processor (the `json-ld` crate) in
//! its strictest policy — an undefined term, a type or property that does
//! not expand to an absolute IRI, a protected term redefined: each an error
//! (what jsonld.js calls safe mode, as used by JavaScript VC verifiers) —
//! with every context loaded from the service's own store, never the
//! network.

use std::collections::HashMap;

use divoc_certificates::legacy::CertifyRequest;
use divoc_certificates::types::CredentialType;
use divoc_certificates::{CertificateService, ServiceConfig};
use json_ld::expansion::{Action, Policy};
use json_ld::syntax::{IntoJsonWithContext, Parse, Print, Value as LdValue};
use json_ld::{IriBuf, JsonLdProcessor, Options, RemoteDocument};
use serde_json::{json, Value};

use crate::common::*;

/// Every warning from context processing and expansion, as text (shown
/// with an error).
#[derive(Default)]
struct Warnings(Vec<String>);

impl<N> json_ld::warning::Handler<N, json_ld::context_processing::Warning> for Warnings {
    fn handle(&mut self, _: &N, w: json_ld::context_processing::Warning) {
        self.0.push(w.to_string());
    }
}

impl<N> json_ld::warning::Handler<N, json_ld::expansion::Warning<json_ld::BlankIdBuf>>
    for Warnings
{
    fn handle(&mut self, _: &N, w: json_ld::expansion::Warning<json_ld::BlankIdBuf>) {
        self.0.push(w.to_string());
    }
}

/// The service's contexts as a document loader; any other URL fails.
fn loader(svc: &CertificateService) -> HashMap<IriBuf, RemoteDocument> {
    svc.contexts()
        .iter()
        .map(|(url, doc)| {
            let iri = IriBuf::new(url.to_owned()).unwrap();
            let json = LdValue::parse_str(&doc.to_string()).unwrap().0;
            (iri.clone(), RemoteDocument::new(Some(iri), None, json))
        })
        .collect()
}

/// Expands `credential` strictly: the expanded form as JSON text, or the
/// error or warnings.
fn try_expand(svc: &CertificateService, credential: &Value) -> Result<String, String> {
    let options = Options {
        expansion_policy: Policy {
            // A term or type that is not an absolute IRI: an error.
            invalid: Action::Reject,
            // A term that would only expand through `@vocab`: an error
            // (our contexts define every term they use).
            vocab: Action::Reject,
            // An undefined term: an error, not a silent drop.
            allow_undefined: false,
        },
        ..Options::default()
    };
    let json = LdValue::parse_str(&credential.to_string()).unwrap().0;
    let input = RemoteDocument::new(None, None, json);
    let mut warnings = Warnings::default();
    let expanded = futures::executor::block_on(input.expand_full(
        &mut (),
        &loader(svc),
        options,
        &mut warnings,
    ))
    // The crate warns "malformed IRI" for every key it tries as an IRI
    // before finding its term, so its warnings say nothing about drops: the
    // strict policy's errors and the value check below do.
    .map_err(|e| format!("{e}; {:?}", warnings.0))?;
    let out = LdValue::Array(
        expanded
            .into_iter()
            .map(|o| o.into_json_with(&()))
            .collect(),
    );
    Ok(out.pretty_print().to_string())
}

fn expand_strict(svc: &CertificateService, what: &str, credential: &Value) -> String {
    try_expand(svc, credential)
        .unwrap_or_else(|e| panic!("{what}: JSON-LD expansion failed: {e}\n{credential:#}"))
}

/// Every string, number and boolean in `v` outside `@context`, as the JSON
/// text it must appear as in the expanded document.
fn leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k != "@context" {
                    leaves(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| leaves(v, out)),
        Value::Null => {}
        leaf => out.push(leaf.to_string()),
    }
}

/// Strict expansion succeeds, and every value of the credential is still
/// there afterwards: nothing was dropped.
fn assert_nothing_dropped(svc: &CertificateService, what: &str, credential: &Value, iris: &[&str]) {
    let expanded = expand_strict(svc, what, credential);
    let mut values = Vec::new();
    leaves(credential, &mut values);
    for v in values {
        // Terms (type names, `assertionMethod`) become IRIs ending in the
        // term; every other value stays as it is.
        let found = expanded.contains(&format!(": {v}"))
            || expanded.contains(&format!("{v},"))
            || (v.starts_with('"')
                && (expanded.contains(&format!("#{}", &v[1..]))
                    || expanded.contains(&format!("/{}", &v[1..]))));
        assert!(
            found,
            "{what}: value {v} is missing after expansion:\n{expanded}"
        );
    }
    for iri in iris {
        assert!(expanded.contains(iri), "{what}: no {iri} in\n{expanded}");
    }
}

fn covid_test_type() -> CredentialType {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/divoc.toml");
    let config: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let t = config["certificates"]["types"]["covid-test"].clone();
    t.try_into().unwrap()
}

fn service() -> Env {
    let mut cfg = ServiceConfig::new("https://certs.example.org");
    cfg.credential.feedback_url = Some("https://certs.example.org/feedback/{id}".into());
    cfg.credential.info_url = Some("https://health.example.org/vaccines".into());
    let t = covid_test_type();
    t.check("covid-test").unwrap();
    cfg.types.insert("covid-test".into(), t);
    env_with(cfg)
}

const V: &str = "https://divoc.dev/credentials/vaccination#";

#[test]
fn vaccination_certificates_expand_with_nothing_dropped() {
    let e = service();
    // One recipient has a date of birth, the other only an age.
    for (case, born) in [
        ("valid-one-dose", "https://schema.org/birthDate"),
        (
            "valid-booster",
            "https://divoc.dev/credentials/vaccination#age",
        ),
    ] {
        let id = e.svc.issue(&sample(case), "t").unwrap().id;
        let vc = e.svc.get(&id).unwrap().credential;
        assert!(
            vc["evidence"].is_array(),
            "the information links are tested too"
        );
        assert_nothing_dropped(
            &e.svc,
            case,
            &vc,
            &[
                &format!("{V}VaccinationCertificate"),
                &format!("{V}VaccinationRecipient"),
                &format!("{V}vaccination"),
                &format!("{V}dose"),
                &format!("{V}booster"),
                &format!("{V}facility"),
                &format!("{V}feedbackUrl"),
                born,
                "https://schema.org/gender",
                "https://w3id.org/security#proofValue",
            ],
        );
    }
}

#[test]
fn divoc_certify_payloads_expand_with_nothing_dropped() {
    let e = service();
    let mut item = case_json("divoc-certify", "payload.json");
    // DIVOC allows an age instead of a date of birth.
    for (code, dob) in [("P-LD-1", json!("1990-01-01")), ("P-LD-2", Value::Null)] {
        item["preEnrollmentCode"] = json!(code);
        item["recipient"]["dob"] = dob.clone();
        if dob.is_null() {
            item["recipient"]["age"] = json!("45");
        }
        let req = CertifyRequest::from_json(item.clone())
            .unwrap()
            .into_issue_request("covid-19")
            .unwrap();
        let id = e.svc.issue(&req, "t").unwrap().id;
        let vc = e.svc.get(&id).unwrap().credential;
        assert_nothing_dropped(
            &e.svc,
            code,
            &vc,
            &[
                "https://schema.org/addressRegion",
                &format!("{V}identityValue"),
                &format!("{V}vaccinator"),
            ],
        );
    }
}

#[test]
fn operator_defined_types_expand_with_nothing_dropped() {
    let e = service();
    let request = json!({
        "sampleId": "S-LD-1", "name": "Asha Rao", "dob": "1990-02-28",
        "mobile": "tel:9876543210", "testType": "RT-PCR", "result": "negative",
        "sampledAt": "2026-11-20T15:30:00+05:30", "laboratory": "Central Lab"
    });
    let id = e
        .svc
        .issue_typed("covid-test", &request, None, "t")
        .unwrap()
        .id;
    let vc = e.svc.get(&id).unwrap().credential;
    assert_eq!(
        vc["@context"][1],
        "https://certs.example.org/v1/contexts/covid-test"
    );
    let ns = divoc_certificates::contexts::ISSUER_DEPENDENT;
    assert_nothing_dropped(
        &e.svc,
        "covid-test",
        &vc,
        &[
            &format!("{ns}TestResultCredential"),
            &format!("{ns}testType"),
            &format!("{ns}sampledAt"),
            "https://schema.org/name",
            "http://www.w3.org/2001/XMLSchema#dateTime",
        ],
    );
}

#[test]
fn status_list_credentials_expand_with_nothing_dropped() {
    let e = service();
    let id = e.svc.issue(&sample("valid-one-dose"), "t").unwrap().id;
    let vc = e.svc.get(&id).unwrap().credential;
    for entry in vc["credentialStatus"].as_array().unwrap() {
        // The entry itself was expanded with the credential; now its list.
        let url = entry["statusListCredential"].as_str().unwrap();
        let list_id = url.rsplit('/').next().unwrap();
        let signed = e.svc.signed_status_list(list_id).unwrap();
        let list: Value = serde_json::from_str(&signed.body).unwrap();
        assert_nothing_dropped(
            &e.svc,
            list_id,
            &list,
            &[
                "https://www.w3.org/ns/credentials/status#BitstringStatusList",
                "https://www.w3.org/ns/credentials/status#encodedList",
            ],
        );
    }
}

#[test]
fn an_undefined_term_is_caught() {
    // The check itself works: a term no context defines is an error.
    let e = service();
    let id = e.svc.issue(&sample("valid-one-dose"), "t").unwrap().id;
    let mut vc = e.svc.get(&id).unwrap().credential;
    vc["credentialSubject"]["vaccination"]["lotColour"] = json!("blue");
    let e = try_expand(&e.svc, &vc).unwrap_err();
    assert!(e.contains("Key `lotColour` expansion failed"), "{e}");
}
