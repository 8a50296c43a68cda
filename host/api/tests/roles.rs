//! The role matrix: every route in the table, called without a token, with a
//! bad token and with a token of every role, answers 401/403 exactly where
//! the table says and never refuses a caller the table allows.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use divoc_api::routes::{self, Access};
use divoc_api::{AppState, HttpSettings, Principal, Role, TokenTable};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn token(role: Role) -> String {
    format!("test-token-for-{}", role.name())
}

fn app(dir: &std::path::Path) -> axum::Router {
    app_with(dir, &[], |_| {})
}

/// The service with a token per role, `extra` tokens, and the registry as
/// `seed` leaves it.
fn app_with(
    dir: &std::path::Path,
    extra: &[(&str, Principal)],
    seed: impl FnOnce(&divoc_rollout::RolloutService),
) -> axum::Router {
    let db =
        divoc_storage::Database::open_test(&dir.join("db.sqlite"), Default::default()).unwrap();
    let rollout = divoc_rollout::RolloutService::new(db.clone(), divoc_time::SystemClock::shared());
    seed(&rollout);
    let keyring = divoc_crypto::keys::Keyring::open_or_create(
        &dir.join("keys"),
        &divoc_crypto::keys::IssuerConfig::new("did:web:example.org"),
    )
    .unwrap();
    let runtime = divoc_runtime::Runtime::new(
        divoc_runtime::RuntimeSettings::default(),
        divoc_runtime::HostServices::isolated(),
    )
    .unwrap();
    let mut tokens = TokenTable::default();
    for role in Role::ALL {
        tokens.add(
            &token(role),
            Principal {
                name: role.name().into(),
                role,
                facilities: vec![],
                contacts: vec![],
                daily_rates: Default::default(),
            },
        );
    }
    for (secret, principal) in extra {
        tokens.add(secret, principal.clone());
    }
    let plugins_dir = dir.join("plugins");
    std::fs::create_dir_all(&plugins_dir).unwrap();
    let certificates = divoc_certificates::CertificateService::open(
        db.clone(),
        keyring.clone(),
        divoc_certificates::ServiceConfig::new("http://localhost:8080"),
    )
    .unwrap();
    let feedback = divoc_feedback::FeedbackService::new(
        db.clone(),
        certificates.clone(),
        divoc_feedback::FeedbackSettings {
            form: divoc_feedback::Form::load(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../config/feedback/aefi-form.json"),
            )
            .unwrap(),
            rules: divoc_feedback::severity::default_rules(),
            alert_contacts: vec![],
            zone: Default::default(),
        },
        divoc_time::SystemClock::shared(),
    );
    divoc_api::router(
        AppState {
            runtime,
            db: db.clone(),
            keyring,
            shared_keys: None,
            tokens: Arc::new(tokens),
            plugins_dir,
            certificates: Some(certificates),
            rollout: Some(rollout),
            feeds: None,
            stopping: tokio::sync::watch::channel(false).1,
            stats: divoc_insight::stats::StatsCache::new(db.clone(), Default::default()),
            feedback: Some(feedback),
            es256: None,
            formats: None,
            // Every request here comes from one (absent) address: no
            // limit gets in the way of the role checks.
            admission: Arc::new(
                divoc_api::admission::Admission::new(divoc_api::admission::AdmissionSettings {
                    public_per_second: 1_000_000,
                    public_burst: 1_000_000,
                    ..Default::default()
                })
                .unwrap(),
            ),
            // A recorder of its own (not the process-wide one).
            metrics: Some(
                metrics_exporter_prometheus::PrometheusBuilder::new()
                    .build_recorder()
                    .handle(),
            ),
            pdf: Some(Arc::new(
                divoc_pdf::PdfRenderer::load(
                    &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../../config/templates/pdf"),
                )
                .unwrap(),
            )),
        },
        &HttpSettings::default(),
    )
}

async fn call(app: &axum::Router, method: &str, path: &str, bearer: Option<&str>) -> StatusCode {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    // HEAD answers carry no body (RFC 9110 §9.3.2), so no error object.
    if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN) && method != "HEAD" {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(json["error"]["code"].is_string(), "error shape: {json}");
    }
    status
}

#[tokio::test]
async fn every_route_enforces_its_roles() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    for route in routes::all() {
        let parameterised = route.path.contains('{');
        let path = route
            .path
            .replace("{id}", "x")
            .replace("{code}", "x")
            .replace("{type}", "x")
            .replace("{file}", "qr.png")
            .replace("{list}", "revocation-0");
        // HEAD is GET without a body: the same roles, wherever GET is.
        let methods: &[&str] = if route.method == "GET" {
            &["GET", "HEAD"]
        } else {
            &[route.method]
        };
        for &method in methods {
            match route.access {
                Access::Public => {
                    let s = call(&app, method, &path, None).await;
                    // Public: never an auth refusal (an empty body may be a 400).
                    assert!(
                        s != StatusCode::UNAUTHORIZED
                            && s != StatusCode::FORBIDDEN
                            && s.as_u16() < 500,
                        "{} {path}: public route answered {s}",
                        method
                    );
                }
                Access::Roles(allowed) | Access::RolesOrProof(allowed) => {
                    let anonymous = call(&app, method, &path, None).await;
                    if matches!(route.access, Access::Roles(_)) {
                        assert_eq!(
                            anonymous,
                            StatusCode::UNAUTHORIZED,
                            "{} {path} without a token",
                            method
                        );
                    } else {
                        // The handler asks for its other proof.
                        assert!(
                            anonymous != StatusCode::FORBIDDEN && anonymous.as_u16() < 500,
                            "{} {path} without a token answered {anonymous}",
                            method
                        );
                    }
                    assert_eq!(
                        call(&app, method, &path, Some("not-a-real-token-at-all")).await,
                        StatusCode::UNAUTHORIZED,
                        "{} {path} with a bad token",
                        method
                    );
                    for role in Role::ALL {
                        let s = call(&app, method, &path, Some(&token(role))).await;
                        if allowed.contains(&role) {
                            // A parameterised route may answer 404 for the made-up
                            // id, and a body-taking route 4xx for the empty body:
                            // both mean the caller got past the role check.
                            let routed = parameterised || s != StatusCode::NOT_FOUND;
                            assert!(
                                s != StatusCode::UNAUTHORIZED
                                    && s != StatusCode::FORBIDDEN
                                    && routed
                                    && s.as_u16() < 500,
                                "{} {path} as {role:?}: allowed but answered {s}",
                                method
                            );
                        } else {
                            assert_eq!(s, StatusCode::FORBIDDEN, "{} {path} as {role:?}", method);
                        }
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn plugins_route_is_admin_only_and_malformed_auth_is_401() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    assert_eq!(
        call(&app, "GET", "/v1/plugins", Some(&token(Role::Admin))).await,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/v1/plugins", Some(&token(Role::Issuer))).await,
        StatusCode::FORBIDDEN
    );
    // The refusal says who was refused where, and who is let in.
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/v1/plugins")
                .header("authorization", format!("Bearer {}", token(Role::Issuer)))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["error"]["message"],
        "the `issuer` role may not use GET /v1/plugins (it takes: admin)"
    );
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/v1/plugins")
                .header("authorization", "Basic Zm9vOmJhcg==")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&app, "GET", "/no/such/route", None).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let response = app
        .oneshot(
            Request::builder()
                .uri("/healthz")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(response.headers().contains_key("x-request-id"));
}

/// Every route, called by each facility-bound role with a token of another
/// facility, with the parameters of a real facility, its vaccinator, its
/// programme and vaccine: refused (403/404) or answered without a trace of
/// them (a list that leaves them out, a 4xx for an empty body).
#[tokio::test]
async fn a_foreign_facility_token_sees_nothing_of_another_facility() {
    let dir = tempfile::tempdir().unwrap();
    let foreign: Vec<(String, Principal)> = [Role::Facility, Role::FacilityAdmin, Role::Vaccinator]
        .into_iter()
        .map(|role| {
            (
                format!("foreign-{}-token-0123456789", role.name()),
                Principal {
                    name: format!("foreign-{}", role.name()),
                    role,
                    facilities: vec!["FAC-B".into()],
                    contacts: vec![],
                    daily_rates: Default::default(),
                },
            )
        })
        .collect();
    let extra: Vec<(&str, Principal)> = foreign
        .iter()
        .map(|(t, p)| (t.as_str(), p.clone()))
        .collect();
    let appointment = std::sync::Mutex::new(String::new());
    let app = app_with(dir.path(), &extra, |svc| {
        let records = serde_json::json!({
            "vaccine": {"code": "COVAX", "name": "CoVax", "manufacturer": "M", "mode": "injection", "doses": 1},
            "programme": {"code": "C19", "name": "COVID-19", "startDate": "2021-01-16", "vaccines": ["COVAX"]},
            "facility": {"code": "FAC-A", "name": "Secret Clinic", "category": "private", "type": "fixed",
                         "address": {"line1": "Hidden Lane", "district": "D", "state": "S", "country": "IN"},
                         "programmes": [{"programme": "C19", "dailyRate": 10, "slots": [{
                             "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                             "startTime": "00:00", "endTime": "23:00", "minutes": 60, "capacity": 5}]}]},
            "other": {"code": "FAC-B", "name": "Other Clinic", "category": "private", "type": "fixed",
                      "address": {"line1": "Open Road", "district": "D", "state": "S", "country": "IN"}},
            "vaccinator": {"code": "VAC-A", "name": "Hidden Nurse", "facilities": ["FAC-A"]}
        });
        svc.create::<divoc_rollout::Vaccine>(
            serde_json::from_value(records["vaccine"].clone()).unwrap(),
            "t",
        )
        .unwrap();
        svc.create::<divoc_rollout::Programme>(
            serde_json::from_value(records["programme"].clone()).unwrap(),
            "t",
        )
        .unwrap();
        svc.create::<divoc_rollout::Facility>(
            serde_json::from_value(records["facility"].clone()).unwrap(),
            "t",
        )
        .unwrap();
        svc.create::<divoc_rollout::Facility>(
            serde_json::from_value(records["other"].clone()).unwrap(),
            "t",
        )
        .unwrap();
        svc.create::<divoc_rollout::Vaccinator>(
            serde_json::from_value(records["vaccinator"].clone()).unwrap(),
            "t",
        )
        .unwrap();
        // Someone booked at FAC-A tomorrow at noon.
        let person = svc
            .enrol(
                serde_json::from_value(serde_json::json!({
                    "programme": "C19", "name": "Secret Person", "dob": "1980-01-01",
                    "gender": "Female", "facility": "FAC-A",
                    "address": {"line1": "Home", "district": "D", "state": "S"}
                }))
                .unwrap(),
                "t",
            )
            .unwrap()
            .record
            .code;
        let tomorrow =
            divoc_time::Date::from_ms(divoc_time::Clock::now_ms(&divoc_time::SystemClock))
                .add_days(1)
                .unwrap()
                .to_string();
        let booked = svc
            .book(
                &divoc_rollout::Booking {
                    enrolment: person,
                    facility: "FAC-A".into(),
                    date: tomorrow,
                    time: "12:00".into(),
                    dose: None,
                },
                "t",
            )
            .unwrap();
        *appointment.lock().unwrap() = booked.id;
    });
    let appointment = appointment.into_inner().unwrap();
    let secrets = [
        "Secret Clinic",
        "Hidden Lane",
        "Hidden Nurse",
        "Secret Person",
        "FAC-A",
        "VAC-A",
        appointment.as_str(),
    ];
    let mut checked = 0;
    for route in routes::all() {
        let code = if route.path.starts_with("/v1/vaccinators") {
            "VAC-A"
        } else if route.path.starts_with("/v1/programmes") {
            "C19"
        } else if route.path.starts_with("/v1/vaccines") {
            "COVAX"
        } else {
            "FAC-A"
        };
        let id = if route.path.starts_with("/v1/appointments") {
            appointment.as_str()
        } else {
            "FAC-A"
        };
        let path = route
            .path
            .replace("{code}", code)
            .replace("{id}", id)
            .replace("{type}", "x")
            .replace("{file}", "qr.png")
            .replace("{list}", "revocation-0")
            .replace("{name}", "x");
        let queries: &[&str] = match route.path {
            "/v1/facilities" => &["", "?district=D", "?programme=C19"],
            "/v1/vaccinators" => &["", "?facility=FAC-A", "?programme=C19"],
            "/v1/facilities/{code}/slots" => &["?programme=C19"],
            "/v1/facility/sync" => &["", "?facility=FAC-A"],
            _ => &[""],
        };
        for (secret, principal) in &foreign {
            for query in queries {
                let uri = format!("{path}{query}");
                let response = app
                    .clone()
                    .oneshot(
                        Request::builder()
                            .method(route.method)
                            .uri(&uri)
                            .header("authorization", format!("Bearer {secret}"))
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let text = String::from_utf8_lossy(&body);
                // Slots are public (any role): the facility's code is in
                // the path; the slot list names no person.
                let facility_data = (route.path.starts_with("/v1/facilities")
                    && !route.path.ends_with("/slots"))
                    || route.path.starts_with("/v1/vaccinators")
                    || route.path.starts_with("/v1/appointments")
                    || route.path.starts_with("/v1/facility/");
                if facility_data {
                    // A code the caller sent may come back in the 404's
                    // message; anything else of the facility may not.
                    assert!(
                        !secrets.iter().any(|s| !uri.contains(s) && text.contains(s)),
                        "{} {uri} as {:?} leaked: {status} {text}",
                        route.method,
                        principal.role
                    );
                    assert!(
                        status.as_u16() < 500,
                        "{} {uri} as {:?}: {status}",
                        route.method,
                        principal.role
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 40, "only {checked} calls checked");
}
