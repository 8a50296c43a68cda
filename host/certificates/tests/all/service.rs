//! Steps 2-3: storage and the service, against a real SQLite database in a
//! temp dir.

use divoc_certificates::legacy::CertifyRequest;
use divoc_certificates::verify::{verify_credential, NoStatus, StatusLists, StatusVerdict};
use divoc_certificates::Status;
use divoc_certificates::{CertError, IssueRequest, IssueStatus, ServiceConfig, VerifyInput};
use divoc_storage::OutboxStatus;
use divoc_time::Clock;

use crate::common::*;

fn with_code(code: &str) -> IssueRequest {
    let mut r = sample("valid-one-dose");
    r.pre_enrollment_code = code.into();
    r
}

#[test]
fn issue_stores_certificate_audit_event_and_outbox_together() {
    let e = env();
    let issued = e
        .svc
        .issue(&sample("valid-one-dose"), "facility-42")
        .unwrap();
    assert_eq!(issued.status, IssueStatus::Created);
    let rec = e.svc.get(&issued.id).unwrap();
    assert_eq!(
        (rec.program.as_str(), rec.dose, rec.version),
        ("covid-19", 1, 1)
    );
    assert_eq!(rec.status, Status::Valid);
    assert_eq!(rec.facility_id.as_deref(), Some("FAC-0042"));

    let events = e.db.events_after(0, 10).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "certificate.issued");
    assert_eq!(events[0].subject, issued.id);
    // No personal data in the event or audit log.
    let audit = e.db.audit_after(0, 10).unwrap();
    assert_eq!(audit.len(), 1);
    // The record's own text (not its hashes and random id, whose hex
    // digits can spell any number).
    let record = format!("{} {} {}", audit[0].actor, audit[0].action, audit[0].detail);
    for text in [events[0].payload.to_string(), record] {
        for personal in ["Bhaya", "1994", "9880414888", "PEC-12346", "2342343334"] {
            assert!(!text.contains(personal), "{personal} leaked into {text}");
        }
    }
    assert!(e.db.verify_audit_chain().unwrap().is_intact());
    let outbox = e.db.outbox_list(OutboxStatus::Pending, 10).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].kind, "certificate.distribute");
    assert_eq!(outbox[0].payload["certificate_id"], issued.id.as_str());

    // Lookups: pre-enrolment code; contact + dob (normalised contact).
    assert_eq!(e.svc.by_pre_enrollment("PEC-12346").unwrap().len(), 1);
    assert_eq!(
        e.svc
            .by_contact("TEL:98804 14888", "1994-11-30")
            .unwrap()
            .len(),
        1
    );
    assert!(e
        .svc
        .by_contact("tel:9880414888", "1994-11-29")
        .unwrap()
        .is_empty());
}

/// The async path gives the same outcomes as the blocking one, and is only
/// offered when no issue hook can block.
#[test]
fn issue_async_is_durable_idempotent_and_offered_only_without_blocking_hooks() {
    let e = env();
    assert!(
        e.svc.issues_inline(&sample("valid-one-dose")),
        "no hooks: nothing can block"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let req = with_code("PEC-ASYNC");
    let first = rt.block_on(e.svc.issue_async(&req, "facility-42")).unwrap();
    assert_eq!(first.status, IssueStatus::Created);
    // Committed when it answers: a fresh read sees it.
    assert_eq!(e.svc.get(&first.id).unwrap().recipient_ref, "PEC-ASYNC");
    let again = rt.block_on(e.svc.issue_async(&req, "facility-42")).unwrap();
    assert_eq!(
        (again.id.as_str(), again.status),
        (first.id.as_str(), IssueStatus::Existing)
    );
    let mut other = req.clone();
    other.vaccination.batch = "OTHER-BATCH".into();
    match rt.block_on(e.svc.issue_async(&other, "facility-42")) {
        Err(CertError::Conflict { existing_id, .. }) => {
            assert_eq!(existing_id.as_deref(), Some(first.id.as_str()))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let mut bad = req.clone();
    bad.recipient.name = String::new();
    assert!(matches!(
        rt.block_on(e.svc.issue_async(&bad, "facility-42")),
        Err(CertError::Validation(_))
    ));
    assert_eq!(e.svc.by_pre_enrollment("PEC-ASYNC").unwrap().len(), 1);
}

#[test]
fn resend_is_idempotent_and_a_different_payload_conflicts() {
    let e = env();
    let first = e.svc.issue(&sample("valid-one-dose"), "a").unwrap();
    let again = e.svc.issue(&sample("valid-one-dose"), "a").unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.status, IssueStatus::Existing);

    let mut changed = sample("valid-one-dose");
    changed.vaccination.batch = "OTHER".into();
    match e.svc.issue(&changed, "a") {
        Err(err @ CertError::Conflict { .. }) => {
            assert_eq!(err.http_status(), 409);
            let CertError::Conflict {
                existing_id,
                correction_path,
                ..
            } = err
            else {
                unreachable!()
            };
            assert_eq!(existing_id.as_deref(), Some(first.id.as_str()));
            assert_eq!(
                correction_path,
                Some(format!("/v1/certificates/{}", first.id))
            );
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    // Dose 2 of the same recipient is a different certificate.
    let mut dose2 = sample("valid-one-dose");
    dose2.vaccination.dose = 2;
    assert_eq!(
        e.svc.issue(&dose2, "a").unwrap().status,
        IssueStatus::Created
    );
    assert_eq!(e.svc.by_pre_enrollment("PEC-12346").unwrap().len(), 2);
    assert_eq!(e.db.events_after(0, 100).unwrap().len(), 2);
}

#[test]
fn bad_input_names_the_field_and_stores_nothing() {
    let e = env();
    for case in cases("bad-") {
        let result = if case.starts_with("bad-divoc-") {
            CertifyRequest::from_json(case_json(&case, "payload.json"))
                .and_then(|c| c.into_issue_request("covid-19"))
                .and_then(|r| e.svc.issue(&r, "a"))
        } else {
            IssueRequest::from_json(case_json(&case, "request.json"))
                .and_then(|r| e.svc.issue(&r, "a"))
        };
        match result {
            Err(err @ CertError::Validation(_)) => {
                assert_eq!(err.http_status(), 422);
                let CertError::Validation(fields) = err else {
                    unreachable!()
                };
                assert!(
                    !fields.is_empty() && fields.iter().all(|f| !f.field.is_empty()),
                    "{case}"
                );
            }
            other => panic!("{case}: expected a validation error, got {other:?}"),
        }
    }
    assert!(e.db.events_after(0, 10).unwrap().is_empty());
    assert!(e.db.audit_head().unwrap().is_none());
    assert_eq!(e.db.outbox_counts().unwrap(), Default::default());
    assert!(e.svc.by_pre_enrollment("PEC-12346").unwrap().is_empty());
}

#[test]
fn revoke_suspend_reinstate_and_verify_online_and_offline() {
    let e = env();
    let id = e.svc.issue(&sample("valid-one-dose"), "a").unwrap().id;
    let vc = e.svc.get(&id).unwrap().credential;
    let v = e.svc.verify(VerifyInput::Json(vc.clone())).unwrap();
    assert!(v.valid && v.checks.status == StatusVerdict::Valid, "{v:?}");

    e.svc.suspend(&id, None, "op").unwrap();
    assert_eq!(
        e.svc
            .verify(VerifyInput::Json(vc.clone()))
            .unwrap()
            .checks
            .status,
        StatusVerdict::Suspended
    );
    assert!(
        matches!(e.svc.suspend(&id, Some("2001-01-01"), "op"), Err(CertError::Validation(f)) if f[0].field == "until")
    );
    e.svc.reinstate(&id, "op").unwrap();
    assert!(e.svc.verify(VerifyInput::Json(vc.clone())).unwrap().valid);
    assert!(matches!(
        e.svc.reinstate(&id, "op"),
        Err(CertError::Conflict { .. })
    ));

    // A suspension lifts by itself at its end, at read time. Its end may
    // be given with any offset.
    let until = divoc_time::format_millis(e.clock.now_ms() + 1500);
    e.svc.suspend(&id, Some(&until), "op").unwrap();
    assert_eq!(e.svc.get(&id).unwrap().status, Status::Suspended);
    assert!(!e.svc.verify(VerifyInput::Json(vc.clone())).unwrap().valid);
    e.clock.advance(1499);
    assert!(!e.svc.verify(VerifyInput::Json(vc.clone())).unwrap().valid);
    e.clock.advance(1);
    assert_eq!(e.svc.get(&id).unwrap().status, Status::Valid);
    assert!(e.svc.verify(VerifyInput::Json(vc.clone())).unwrap().valid);
    let list = e.svc.status_list("suspension-0").unwrap();
    let mut lists = StatusLists::default();
    assert!(lists.add(&list, &|k| e.svc.keyring().resolve_public_key(k)));

    let rec = e.svc.revoke(&id, "data entry error", "op").unwrap();
    assert_eq!(rec.status, Status::Revoked);
    let v = e.svc.verify(VerifyInput::Json(vc.clone())).unwrap();
    assert!(!v.valid);
    assert_eq!(v.checks.status, StatusVerdict::Revoked);
    assert!(v.checks.signature.ok);
    assert!(matches!(
        e.svc.suspend(&id, None, "op"),
        Err(CertError::Conflict { .. })
    ));
    assert!(matches!(
        e.svc.revoke("NOPE", "x", "op"),
        Err(CertError::NotFound(_))
    ));

    // Offline without status lists: signature valid, status unknown, and
    // so not valid (fails closed).
    let resolve = |k: &str| e.svc.keyring().resolve_public_key(k);
    let now = e.clock.now_ms();
    let v = verify_credential(&vc, &resolve, &NoStatus, now).unwrap();
    assert!(!v.valid);
    assert!(v.checks.signature.ok);
    assert_eq!(v.checks.status, StatusVerdict::Unknown);

    // With only the suspension list (the revocation list missing), a
    // revoked certificate cannot be shown good: unknown, not valid.
    let v = verify_credential(&vc, &resolve, &lists, now).unwrap();
    assert_eq!(v.checks.status, StatusVerdict::Unknown, "{v:?}");
    assert!(!v.valid);
    assert!(v.message.contains("no status list for"), "{}", v.message);

    // Offline with the signed status lists: revoked.
    let list = e.svc.status_list("revocation-0").unwrap();
    assert_eq!(list["type"][1], "BitstringStatusListCredential");
    assert_eq!(list["credentialSubject"]["statusPurpose"], "revocation");
    assert!(list["credentialSubject"]["encodedList"]
        .as_str()
        .unwrap()
        .starts_with('u'));
    assert!(lists.add(&list, &resolve));
    let v = verify_credential(&vc, &resolve, &lists, now).unwrap();
    assert_eq!(v.checks.status, StatusVerdict::Revoked);
    // A forged list is refused.
    let mut forged = list.clone();
    forged["credentialSubject"]["encodedList"] =
        e.svc.status_list("revocation-1").unwrap()["credentialSubject"]["encodedList"].clone();
    assert!(!StatusLists::default().add(&forged, &resolve));
    assert!(matches!(
        e.svc.status_list("bogus-1"),
        Err(CertError::NotFound(_))
    ));

    let actions: Vec<String> =
        e.db.audit_after(0, 100)
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect();
    assert_eq!(
        actions.first().map(String::as_str),
        Some("certificate.issued")
    );
    assert_eq!(
        actions.last().map(String::as_str),
        Some("certificate.revoked")
    );
    assert!(e.db.verify_audit_chain().unwrap().is_intact());
}

#[test]
fn correction_links_versions_supersedes_and_is_limited() {
    let mut cfg = ServiceConfig::new("https://certs.example.org");
    cfg.max_corrections = 1;
    let e = env_with(cfg);
    let v1 = e.svc.issue(&sample("valid-one-dose"), "a").unwrap().id;
    let mut fixed = sample("valid-one-dose");
    fixed.recipient.name = "Bhaya Mitra K".into();
    let v2 = e.svc.correct(&v1, &fixed, "a").unwrap().id;
    assert_ne!(v1, v2);
    let old = e.svc.get(&v1).unwrap();
    assert_eq!(old.status, Status::Revoked);
    assert_eq!(old.revoked_reason.as_deref(), Some("superseded"));
    let new = e.svc.get(&v2).unwrap();
    assert_eq!(
        (new.version, new.previous_id.as_deref()),
        (2, Some(v1.as_str()))
    );
    let history: Vec<String> = e
        .svc
        .history(&v2)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(history, vec![v1.clone(), v2.clone()]);
    assert_eq!(e.svc.history(&v1).unwrap().len(), 2);

    // Re-sending the corrected payload through issue is idempotent.
    assert_eq!(e.svc.issue(&fixed, "a").unwrap().id, v2);
    // Only the current version can be corrected, and only max_corrections times.
    assert!(matches!(
        e.svc.correct(&v1, &fixed, "a"),
        Err(CertError::Conflict { .. })
    ));
    fixed.recipient.name = "Bhaya Mitra Kumar".into();
    assert!(matches!(
        e.svc.correct(&v2, &fixed, "a"),
        Err(CertError::Conflict { .. })
    ));
    // A correction cannot move the certificate to another dose.
    let mut other = sample("valid-one-dose");
    other.vaccination.dose = 2;
    assert!(matches!(
        e.svc.correct(&v2, &other, "a"),
        Err(CertError::Conflict { .. })
    ));
    assert!(matches!(
        e.svc.correct("NOPE", &sample("valid-one-dose"), "a"),
        Err(CertError::NotFound(_))
    ));
    // The old credential verifies as revoked.
    let v = e.svc.verify(VerifyInput::Json(old.credential)).unwrap();
    assert_eq!(v.checks.status, StatusVerdict::Revoked);
}

#[test]
fn batch_commits_in_groups_with_per_item_results() {
    let e = env();
    let mut reqs: Vec<IssueRequest> = (0..100).map(|i| with_code(&format!("B-{i}"))).collect();
    reqs.push(with_code("B-7")); // same payload as item 7: Existing
    let mut bad = with_code("B-bad");
    bad.vaccination.dose = 0;
    reqs.push(bad);
    let before = e.db.stats().commits;
    let results = e.svc.issue_batch(&reqs, "facility");
    assert_eq!(results.len(), 102);
    assert!(results[..100]
        .iter()
        .all(|r| r.as_ref().unwrap().status == IssueStatus::Created));
    assert_eq!(
        results[100].as_ref().unwrap().id,
        results[7].as_ref().unwrap().id
    );
    assert!(
        matches!(&results[101], Err(CertError::Validation(f)) if f[0].field == "vaccination.dose")
    );
    let commits = e.db.stats().commits - before;
    println!("batch of 100: {commits} commits");
    assert!(commits < 100, "{commits} commits for 100 certificates");
    // Status indexes are unique and survive a restart of the service.
    let mut indexes: Vec<u64> = (0..100)
        .map(|i| {
            e.svc
                .get(&results[i].as_ref().unwrap().id)
                .unwrap()
                .status_index
        })
        .collect();
    let svc2 = divoc_certificates::CertificateService::open(
        e.db.clone(),
        e.svc.keyring().clone(),
        ServiceConfig::new("https://certs.example.org"),
    )
    .unwrap();
    let id = svc2.issue(&with_code("after-restart"), "a").unwrap().id;
    indexes.push(svc2.get(&id).unwrap().status_index);
    let n = indexes.len();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), n);
}

/// Requests issuing one certificate each at the same moment: on PostgreSQL
/// they are stored by one write (merged while the writer was busy), and
/// each still gets the outcome it would get alone — created, the same
/// certificate again for a re-send, a conflict for a changed payload.
#[test]
fn concurrent_single_issues_each_get_their_own_outcome() {
    let e = env();
    let before = e.db.stats().writes;
    // The writer is busy while the requests arrive, so they wait together.
    let busy = e.db.write(|_| {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        Ok(())
    });
    let mut requests: Vec<IssueRequest> = (0..20).map(|i| with_code(&format!("C-{i}"))).collect();
    requests.extend((0..4).map(|_| with_code("C-0")));
    let mut changed = with_code("C-1");
    changed.vaccination.batch = "OTHER".into();
    requests.push(changed);
    let n = requests.len();
    let results: Vec<Result<divoc_certificates::Issued, CertError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .map(|r| scope.spawn(|| e.svc.issue(r, "facility")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    busy.wait().unwrap();

    for (i, r) in results[2..20].iter().enumerate() {
        assert_eq!(
            r.as_ref().unwrap().status,
            IssueStatus::Created,
            "C-{}",
            i + 2
        );
    }
    // C-0 five times: one created, four re-sends of it.
    let c0: Vec<&divoc_certificates::Issued> = std::iter::once(&results[0])
        .chain(&results[20..24])
        .map(|r| r.as_ref().unwrap())
        .collect();
    assert_eq!(
        c0.iter()
            .filter(|r| r.status == IssueStatus::Created)
            .count(),
        1
    );
    assert!(c0.iter().all(|r| r.id == c0[0].id));
    // C-1 and its changed payload: whichever came first is created.
    let pair = [&results[1], &results[24]];
    assert_eq!(pair.iter().filter(|r| r.is_ok()).count(), 1, "{pair:?}");
    assert!(pair
        .iter()
        .any(|r| matches!(r, Err(CertError::Conflict { .. }))));
    for i in 0..20 {
        assert_eq!(e.svc.by_pre_enrollment(&format!("C-{i}")).unwrap().len(), 1);
    }
    assert_eq!(e.db.events_after(0, 100).unwrap().len(), 20);
    let writes = e.db.stats().writes - before;
    println!("{n} requests, {writes} writes");
    if e.db.dialect() == divoc_storage::sql::Dialect::Postgres {
        assert!(writes < 5, "{writes} writes for {n} requests: not merged");
    }
}

/// The bit of certificate `vc` in the served list `list_id`.
fn served_bit(e: &Env, list_id: &str, vc: &serde_json::Value) -> (bool, String) {
    use divoc_certificates::status_list::Bitstring;
    let signed = e.svc.signed_status_list(list_id).unwrap();
    let list: serde_json::Value = serde_json::from_str(&signed.body).unwrap();
    let bits = Bitstring::decode(list["credentialSubject"]["encodedList"].as_str().unwrap());
    let index: u64 = vc["credentialStatus"][0]["statusListIndex"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (bits.unwrap().get(index).unwrap(), signed.etag.clone())
}

#[test]
fn served_status_lists_are_reused_until_a_status_changes_or_a_suspension_lifts() {
    let e = env();
    let id = e.svc.issue(&sample("valid-one-dose"), "a").unwrap().id;
    let vc = e.svc.get(&id).unwrap().credential;

    // Served twice: the same signed list, not a second signing.
    let first = e.svc.signed_status_list("revocation-0").unwrap();
    let again = e.svc.signed_status_list("revocation-0").unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    let cached = e.svc.cached_status_list("revocation-0").unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &cached));
    assert!(e.svc.cached_status_list("revocation-1").is_none());
    assert_eq!(first.max_age_s, 300);
    assert!(first.etag.starts_with("W/\""), "{}", first.etag);
    assert!(!served_bit(&e, "revocation-0", &vc).0);

    // A suspension shows at once, and lifts by itself at its end.
    let until = divoc_time::format_millis(e.clock.now_ms() + 1500);
    e.svc.suspend(&id, Some(&until), "op").unwrap();
    let (suspended, suspended_etag) = served_bit(&e, "suspension-0", &vc);
    assert!(suspended);
    assert_eq!(
        served_bit(&e, "suspension-0", &vc),
        (true, suspended_etag.clone())
    );
    e.clock.advance(1500);
    let (lifted, lifted_etag) = served_bit(&e, "suspension-0", &vc);
    assert!(!lifted);
    assert_ne!(lifted_etag, suspended_etag);

    // A revocation shows at once; the ETag follows the bits.
    e.svc.revoke(&id, "data entry error", "op").unwrap();
    assert!(e.svc.cached_status_list("revocation-0").is_none());
    let (revoked, revoked_etag) = served_bit(&e, "revocation-0", &vc);
    assert!(revoked);
    assert_ne!(revoked_etag, first.etag);

    // So does a correction (the old version revoked as superseded).
    let other = e.svc.issue(&with_code("CACHE-2"), "a").unwrap().id;
    let other_vc = e.svc.get(&other).unwrap().credential;
    assert!(!served_bit(&e, "revocation-0", &other_vc).0);
    let mut fixed = with_code("CACHE-2");
    fixed.vaccination.batch = "FIXED-1".into();
    e.svc.correct(&other, &fixed, "op").unwrap();
    assert!(served_bit(&e, "revocation-0", &other_vc).0);

    // Made-up list numbers are answered but not kept.
    let far = e.svc.signed_status_list("revocation-999999").unwrap();
    let far_again = e.svc.signed_status_list("revocation-999999").unwrap();
    assert!(!std::sync::Arc::ptr_eq(&far, &far_again));
    assert_eq!(far.etag, far_again.etag);
}

/// Online verification finds a certificate's status by the certificate
/// itself (its id and status index), not by comparing its status URLs with
/// today's `public-url`: an operator moving to a real domain must not turn
/// a revoked certificate into "status unknown", let alone "valid".
#[test]
fn a_changed_public_url_does_not_hide_a_revocation() {
    let e = env();
    let id = e.svc.issue(&sample("valid-one-dose"), "a").unwrap().id;
    let vc = e.svc.get(&id).unwrap().credential;
    assert!(vc["credentialStatus"][0]["statusListCredential"]
        .as_str()
        .unwrap()
        .starts_with("https://certs.example.org/"));
    // The same database and keys, served under another name.
    let mut cfg = ServiceConfig::new("https://vaccination.gov.example");
    cfg.clock = e.clock.clone();
    let moved =
        divoc_certificates::CertificateService::open(e.db.clone(), e.svc.keyring().clone(), cfg)
            .unwrap();
    let qr = moved.qr_text(&id).unwrap();
    for input in [
        VerifyInput::Json(vc.clone()),
        VerifyInput::QrText(qr.clone()),
    ] {
        let v = moved.verify(input).unwrap();
        assert!(v.valid && v.checks.status == StatusVerdict::Valid, "{v:?}");
    }
    moved.revoke(&id, "issued in error", "op").unwrap();
    for input in [
        VerifyInput::Json(vc.clone()),
        VerifyInput::QrText(qr.clone()),
    ] {
        let v = moved.verify(input).unwrap();
        assert!(!v.valid, "{v:?}");
        assert_eq!(v.checks.status, StatusVerdict::Revoked);
    }
    let batch = moved.verify_many(vec![VerifyInput::Json(vc.clone()), VerifyInput::QrText(qr)]);
    for v in batch {
        let v = v.unwrap();
        assert!(!v.valid);
        assert_eq!(v.checks.status, StatusVerdict::Revoked);
    }
}

/// A credential signed with this issuer's key that its records do not
/// hold (a database restored from an old backup, a key used elsewhere)
/// cannot be shown good: its own verdict, not valid.
#[test]
fn a_credential_unknown_to_the_records_is_status_unknown() {
    let e = env();
    let id = e.svc.issue(&sample("valid-one-dose"), "a").unwrap().id;
    let vc = e.svc.get(&id).unwrap().credential;
    let mut stray = vc.clone();
    stray.as_object_mut().unwrap().remove("proof");
    stray["id"] = "https://certs.example.org/v1/certificates/NOTSTORED".into();
    let stray = divoc_certificates::credential::sign(&stray, e.svc.keyring()).unwrap();
    let v = e.svc.verify(VerifyInput::Json(stray.clone())).unwrap();
    assert!(v.checks.signature.ok, "{v:?}");
    assert_eq!(v.checks.status, StatusVerdict::Unknown);
    assert!(!v.valid);
    assert!(v.message.contains("no record"), "{}", v.message);
    // The same in a batch, beside a good one.
    let batch = e.svc.verify_many(vec![
        VerifyInput::Json(stray.clone()),
        VerifyInput::Json(vc.clone()),
    ]);
    let verdicts: Vec<_> = batch.into_iter().map(Result::unwrap).collect();
    assert_eq!(verdicts[0].checks.status, StatusVerdict::Unknown);
    assert!(!verdicts[0].valid);
    assert!(verdicts[1].valid);

    // Status entries that point at another certificate's bit: unknown.
    let mut moved_bit = vc.clone();
    moved_bit.as_object_mut().unwrap().remove("proof");
    for entry in moved_bit["credentialStatus"].as_array_mut().unwrap() {
        entry["statusListIndex"] = "7".into();
    }
    let moved_bit = divoc_certificates::credential::sign(&moved_bit, e.svc.keyring()).unwrap();
    let v = e.svc.verify(VerifyInput::Json(moved_bit)).unwrap();
    assert_eq!(v.checks.status, StatusVerdict::Unknown, "{v:?}");
    assert!(!v.valid);
}

/// A status read that fails is an error (HTTP 503), never a verdict.
#[test]
fn a_failing_status_read_is_an_error_not_a_verdict() {
    let e = env();
    let id = e.svc.issue(&sample("valid-one-dose"), "a").unwrap().id;
    let vc = e.svc.get(&id).unwrap().credential;
    // Break the table under the service, as a damaged database would.
    e.db.execute_batch_for_tests("ALTER TABLE certificates RENAME TO certificates_gone")
        .unwrap();
    match e.svc.verify(VerifyInput::Json(vc.clone())) {
        Err(err @ CertError::Unavailable(_)) => assert_eq!(err.http_status(), 503),
        other => panic!("expected unavailable, got {other:?}"),
    }
    for r in e
        .svc
        .verify_many(vec![VerifyInput::Json(vc.clone()), VerifyInput::Json(vc)])
    {
        assert!(matches!(r, Err(CertError::Unavailable(_))), "{r:?}");
    }
}
