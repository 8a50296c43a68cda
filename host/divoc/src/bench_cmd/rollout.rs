//! `divoc bench book` and `divoc bench vaccinate`: the rollout's hot paths
//! over loopback HTTP, on registry records the bench makes itself (a
//! programme, a facility with slots, a vaccinator, and the people).

use serde_json::json;

use super::*;

/// Target: bookings a second (issue "Rollout II").
pub(super) const TARGET_BOOK: f64 = 5_000.0;
/// Target: vaccinations (each with its certificate) a second.
pub(super) const TARGET_VACCINATE: f64 = 2_500.0;

/// What the set-up made.
pub(super) struct Registry {
    pub programme: String,
    pub facility: String,
    pub enrolments: Vec<String>,
}

/// Makes a vaccine, a programme, a facility open every day in 5-minute
/// slots of `seats` seats, a vaccinator, and `people` enrolments.
pub(super) async fn set_up(
    e: &Arc<Endpoint>,
    people: usize,
    seats: u32,
    policy: Option<&str>,
) -> anyhow::Result<Registry> {
    let eligibility = match policy {
        Some(plugin) => json!({"plugin": plugin}),
        None => json!({"rule": {}}),
    };
    let id = run_id();
    let (vaccine, programme, facility) = (format!("BV{id}"), format!("BP{id}"), format!("BF{id}"));
    let records = [
        (
            "/v1/vaccines",
            json!({"code": vaccine, "name": "Bench Vaccine", "manufacturer": "M",
                   "mode": "injection", "doses": 1}),
        ),
        (
            "/v1/programmes",
            json!({"code": programme, "name": "Bench", "startDate": "2021-01-16",
                   "vaccines": [vaccine], "eligibility": eligibility}),
        ),
        (
            "/v1/facilities",
            json!({"code": facility, "name": "Bench Facility", "category": "government",
                   "type": "fixed",
                   "address": {"line1": "1 Road", "district": "D", "state": "S", "country": "IN"},
                   "programmes": [{"programme": programme, "slots": [{
                       "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                       "startTime": "00:00", "endTime": "23:55", "minutes": 5,
                       "capacity": seats}]}]}),
        ),
        (
            "/v1/vaccinators",
            json!({"code": format!("BN{id}"), "name": "Bench Nurse", "facilities": [facility]}),
        ),
    ];
    let jobs: Vec<Job> = records
        .iter()
        .map(|(path, body)| {
            Ok(Job {
                method: "POST",
                path: (*path).to_owned(),
                body: Some(serde_json::to_vec(body)?),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    // One after another: each refers to the one before.
    for job in jobs {
        let (answers, _) = drive(e, 1, Arc::new(vec![job])).await?;
        match answers.first() {
            Some(Some((Ok(r), _))) if r.status == 201 => {}
            Some(Some((Ok(r), _))) => bail!(
                "set-up: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            Some(Some((Err(err), _))) => bail!("set-up failed: {err}"),
            _ => bail!("set-up failed: no answer"),
        }
    }
    let jobs: Vec<Job> = (0..people)
        .map(|i| {
            Ok(Job {
                method: "POST",
                path: "/v1/enrolments".into(),
                body: Some(serde_json::to_vec(&json!({
                    "programme": programme, "name": format!("Person {i}"), "dob": "1980-01-01",
                    "gender": "Female", "phone": format!("7{i:09}"), "nationality": "Indian",
                    "identity": format!("did:bench:{id}{i:09}"),
                    "address": {"line1": "1 Road", "district": "D", "state": "S"}
                }))?),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let (answers, elapsed) = drive(e, 16, Arc::new(jobs)).await?;
    let mut enrolments = Vec::with_capacity(people);
    for a in answers.iter().flatten() {
        match a {
            (Ok(r), _) if r.status == 201 => {
                let v: Value = serde_json::from_slice(&r.body)?;
                enrolments.push(v["code"].as_str().unwrap_or_default().to_owned());
            }
            (Ok(r), _) => bail!(
                "set-up: enrolling: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            (Err(e), _) => bail!("set-up: enrolling: {e}"),
        }
    }
    println!(
        "set-up: {} enrolments in {:.1} s",
        enrolments.len(),
        elapsed.as_secs_f64()
    );
    Ok(Registry {
        programme,
        facility,
        enrolments,
    })
}

/// The facility's slots, `(date, time, capacity, booked)`.
async fn slots(e: &Arc<Endpoint>, r: &Registry) -> anyhow::Result<Vec<(String, String, u64, u64)>> {
    let job = Job {
        method: "GET",
        path: format!(
            "/v1/facilities/{}/slots?programme={}",
            r.facility, r.programme
        ),
        body: None,
    };
    let (answers, _) = drive(e, 1, Arc::new(vec![job])).await?;
    let Some(Some((Ok(reply), _))) = answers.first() else {
        bail!("reading the slots failed");
    };
    ensure!(
        reply.status == 200,
        "reading the slots: HTTP {}",
        reply.status
    );
    let v: Value = serde_json::from_slice(&reply.body)?;
    Ok(v["slots"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["date"].as_str().unwrap_or_default().to_owned(),
                        s["time"].as_str().unwrap_or_default().to_owned(),
                        s["capacity"].as_u64().unwrap_or(0),
                        s["booked"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Books one seat for each person, spread over just enough slots for
/// `fill` of them (the rest are refused as full), `concurrency` at once;
/// then counts the seats booked over any slot's capacity.
pub(super) async fn book(
    e: &Arc<Endpoint>,
    r: &Registry,
    concurrency: usize,
    fill: f64,
) -> anyhow::Result<(Outcome, usize, u64)> {
    let open = slots(e, r).await?;
    ensure!(!open.is_empty(), "the bench facility has no slots");
    let seats = open[0].2.max(1) as usize;
    let wanted = ((r.enrolments.len() as f64 * fill) / seats as f64).ceil() as usize;
    let used = &open[..wanted.clamp(1, open.len())];
    let jobs: Vec<Job> = r
        .enrolments
        .iter()
        .enumerate()
        .map(|(i, code)| {
            let (date, time, _, _) = &used[i % used.len()];
            Ok(Job {
                method: "POST",
                path: "/v1/appointments".into(),
                body: Some(serde_json::to_vec(&json!({
                    "enrolment": code, "facility": r.facility, "date": date, "time": time
                }))?),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let (answers, elapsed) = drive(e, concurrency, Arc::new(jobs)).await?;
    let mut out = Outcome::new(&answers, elapsed);
    let mut refused = 0;
    for a in &answers {
        match a {
            Some((Ok(reply), _)) if reply.status == 201 => out.ok += 1,
            Some((Ok(reply), _))
                if reply.status == 409 && find(&reply.body, b"slot_full").is_some() =>
            {
                refused += 1;
            }
            Some((Ok(reply), _)) => out.fail(1, || {
                format!(
                    "HTTP {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                )
            }),
            Some((Err(err), _)) => out.fail(1, || err.clone()),
            None => out.fail(1, || "not sent".into()),
        }
    }
    let over: u64 = slots(e, r)
        .await?
        .iter()
        .map(|(_, _, capacity, booked)| booked.saturating_sub(*capacity))
        .sum();
    Ok((out, refused, over))
}

/// Records one vaccination (with its certificate) per person.
pub(super) async fn vaccinate(
    e: &Arc<Endpoint>,
    r: &Registry,
    vaccinator: &str,
    vaccine: &str,
    concurrency: usize,
) -> anyhow::Result<Outcome> {
    let jobs: Vec<Job> = r
        .enrolments
        .iter()
        .map(|code| {
            Ok(Job {
                method: "POST",
                path: "/v1/vaccinations".into(),
                body: Some(serde_json::to_vec(&json!({
                    "enrolment": code, "facility": r.facility, "vaccinator": vaccinator,
                    "vaccine": vaccine, "batch": "BENCH-LOT"
                }))?),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let (answers, elapsed) = drive(e, concurrency, Arc::new(jobs)).await?;
    let mut out = Outcome::new(&answers, elapsed);
    for a in &answers {
        match a {
            Some((Ok(reply), _)) if reply.status == 201 => out.ok += 1,
            Some((Ok(reply), _)) => out.fail(1, || {
                format!(
                    "HTTP {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                )
            }),
            Some((Err(err), _)) => out.fail(1, || err.clone()),
            None => out.fail(1, || "not sent".into()),
        }
    }
    Ok(out)
}
