//! The facility's day: recording a vaccination.
//!
//! Staff name the person (enrolment code), the vaccine, its batch and the
//! vaccinator. The service checks what DIVOC left to the facility app: the
//! person, programme, facility and vaccinator are active and belong
//! together; the dose is the person's next one and its interval since the
//! last dose has passed; the programme's policy allows it; and the
//! facility's daily rate in the programme is not reached. Then it issues
//! the certificate through the certificate pipeline
//! ([`CertificateService::issue_alongside`]) and, in the certificate's own
//! transaction, records the dose, counts it against the rate (exact under
//! concurrency: one conditional upsert in the writer), marks the person's
//! appointment for the dose done, and queues the next dose's reminder.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::json;

use divoc_certificates::request as cert;
use divoc_certificates::{CertError, CertificateService, IssueStatus};
use divoc_storage::appointments as booked;
use divoc_storage::vaccinations::{self as store, VaccinationRow};
use divoc_time::Date;

use crate::enrolment::{Enrolment, Gender};
use crate::error::{FieldError, RolloutError};
use crate::model::{minutes_of, Facility, Payment, Programme, Status, Vaccinator, Vaccine};
use crate::service::RolloutService;
use crate::sync::SyncAnswer;

/// How daily rates are held (`[rollout] rate-limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateMode {
    /// Over the rate: refused (429).
    #[default]
    Enforce,
    /// Over the rate: recorded, with an audit entry saying so.
    Warn,
}

/// Settings of recording (`[rollout]` in the host's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingRules {
    /// How daily rates are held.
    pub rate_mode: RateMode,
    /// Days before the next dose's earliest date its reminder goes out.
    pub reminder_days_before: u32,
}

impl Default for RecordingRules {
    fn default() -> Self {
        RecordingRules {
            rate_mode: RateMode::Enforce,
            reminder_days_before: 2,
        }
    }
}

/// A vaccination to record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Vaccinate {
    /// The person's enrolment code.
    pub enrolment: String,
    /// Where.
    pub facility: String,
    /// By whom (vaccinator code).
    pub vaccinator: String,
    /// The vaccine's code (one the programme offers).
    pub vaccine: String,
    /// The batch (lot) number.
    pub batch: String,
    /// Which dose (default: the person's next).
    #[serde(default)]
    pub dose: Option<u32>,
    /// Payment for a paid programme, as the certificate pipeline takes it.
    #[serde(default)]
    pub payment: Option<cert::Payment>,
    /// When it was given (RFC 3339), for one recorded offline: at most
    /// [`OFFLINE_DAYS`] days ago and not in the future; default now.
    #[serde(default)]
    pub at: Option<String>,
}

/// How old a vaccination recorded offline may be.
pub const OFFLINE_DAYS: i64 = 7;

/// Clock skew allowed between a facility's device and the service.
const SKEW_MS: i64 = 5 * 60_000;

/// The next dose of a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NextDose {
    /// Which dose.
    pub dose: u32,
    /// The first day it may be given.
    pub earliest: String,
    /// The last day it should be given, if the vaccine says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
}

/// A recorded vaccination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vaccinated {
    /// The certificate issued.
    pub certificate_id: String,
    /// `false` when the same vaccination was recorded before (the answer
    /// then is the first one's certificate).
    pub created: bool,
    /// The dose given.
    pub dose: u32,
    /// The local date.
    pub date: String,
    /// The appointment marked done, if the person had one for the dose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment: Option<String>,
    /// The next dose of the series, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_dose: Option<NextDose>,
    /// When the next dose's reminder goes out (it waits in the outbox);
    /// none without a next dose or a contact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reminder_at: Option<String>,
}

/// What the certificate's transaction found, when it refused.
type Refusal = Arc<Mutex<Option<RolloutError>>>;

/// One daily count a vaccination adds to, and its limit.
struct Counter {
    /// `facility:<code>:<programme>` or `token:<name>:<programme>`.
    scope: String,
    /// The most a day, if limited.
    rate: Option<u32>,
    /// Whose rate, for the refusal.
    limit: String,
    /// When the count starts again (RFC 3339).
    resets_at: String,
}

impl Counter {
    fn refusal(&self) -> RolloutError {
        RolloutError::RateLimited {
            limit: self.limit.clone(),
            value: self.rate.unwrap_or(0),
            resets_at: self.resets_at.clone(),
        }
    }
}

impl RolloutService {
    /// Records a vaccination and issues its certificate (see the module
    /// docs). Refusals name the field, the rule or the limit; nothing of a
    /// refused vaccination is stored. `staff_rates`: the recording token's
    /// own daily rates by programme.
    pub fn vaccinate(
        &self,
        certificates: &CertificateService,
        v: &Vaccinate,
        actor: &str,
        staff_rates: &std::collections::BTreeMap<String, u32>,
    ) -> Result<Vaccinated, RolloutError> {
        self.vaccinate_keyed(certificates, v, actor, staff_rates, None)
    }

    /// [`vaccinate`](Self::vaccinate); with `sync`, its answer is also
    /// kept under the client's id, in the same transaction.
    pub(crate) fn vaccinate_keyed(
        &self,
        certificates: &CertificateService,
        v: &Vaccinate,
        actor: &str,
        staff_rates: &std::collections::BTreeMap<String, u32>,
        sync: Option<(String, String)>,
    ) -> Result<Vaccinated, RolloutError> {
        let now = self.clock().now_ms();
        // Its day, walk-in hours and daily rate are the facility's, in its
        // time zone; so is a time sent without an offset.
        let facility: Facility = self.get_as(&v.facility, "facility")?;
        let zone = self.zone_of(&facility).clone();
        let given = match &v.at {
            None => now,
            Some(at) => {
                let given = divoc_time::parse_instant(at, &zone)
                    .ok_or_else(|| invalid("at", "must be an RFC 3339 date-time"))?;
                if given > now + SKEW_MS || given < now - OFFLINE_DAYS * 86_400_000 {
                    return Err(invalid(
                        "at",
                        format!("must be within the last {OFFLINE_DAYS} days, not in the future"),
                    ));
                }
                given
            }
        };
        // The day it was given: its dose interval and its daily count.
        let today = Date::in_zone(given, &zone);
        let enrolment: Enrolment = self.get_as(&v.enrolment, "enrolment")?;
        if enrolment.status != Status::Active {
            return Err(invalid("enrolment", "is not active"));
        }
        let programme: Programme = self.get_as(&enrolment.programme, "enrolment")?;
        if programme.status != Status::Active {
            return Err(invalid("enrolment", "its programme is not active"));
        }
        if !programme.vaccines.contains(&v.vaccine) {
            return Err(invalid(
                "vaccine",
                format!("programme {} does not offer it", programme.code),
            ));
        }
        // A paid programme: the price is the certificate pipeline's
        // (`[certificates.programs.<code>.payment]`), which authorises the
        // payment through the payment-provider plugin before signing and
        // captures it once stored. Without a price nothing would charge:
        // refused, not given free.
        if let Payment::Plugin(plugin) = &programme.payment {
            if !certificates.charges(&programme.code) {
                return Err(RolloutError::Unavailable(format!(
                    "programme {} is paid through {plugin}, but no price is configured \
                     ([certificates.programs.{}.payment])",
                    programme.code, programme.code
                )));
            }
            if v.payment.is_none() {
                return Err(invalid(
                    "payment",
                    format!(
                        "programme {} is paid (through {plugin}): give {{\"mode\", \"reference\"}}",
                        programme.code
                    ),
                ));
            }
        }
        let vaccine: Vaccine = self.get_as(&v.vaccine, "vaccine")?;
        if vaccine.status != Status::Active {
            return Err(invalid("vaccine", "is not active"));
        }
        let part = match facility
            .programmes
            .iter()
            .find(|p| p.programme == programme.code && p.status == Status::Active)
        {
            Some(p) if facility.status == Status::Active => p.clone(),
            _ => {
                return Err(invalid(
                    "facility",
                    format!("does not vaccinate in programme {}", programme.code),
                ))
            }
        };
        let vaccinator: Vaccinator = self.get_as(&v.vaccinator, "vaccinator")?;
        if vaccinator.status != Status::Active || !vaccinator.facilities.contains(&v.facility) {
            return Err(invalid(
                "vaccinator",
                format!("is not an active vaccinator of {}", v.facility),
            ));
        }
        if v.batch.trim().is_empty() || v.batch.len() > 64 {
            return Err(invalid("batch", "must be 1-64 characters"));
        }

        // The dose: the next of the person's series, after its interval.
        let previous = self
            .db()
            .read(|r| store::of_enrolment(r, &v.enrolment, &programme.code))?;
        let next = u32::try_from(previous.len()).unwrap_or(u32::MAX) + 1;
        let most = max_dose(&vaccine);
        if v.dose.is_some_and(|d| !(1..=most).contains(&d)) {
            return Err(invalid(
                "dose",
                format!("must be 1-{most} for {}", vaccine.code),
            ));
        }
        // A series given whole: the same vaccination sent again (a retry)
        // is answered with the last dose, not recorded as another.
        if v.dose.is_none() && next > most {
            if let Some(last) = previous.last() {
                return Err(RolloutError::Duplicate {
                    message: format!(
                        "the person's {most} doses of {} are given (the last on {})",
                        vaccine.code, last.date
                    ),
                    existing: last.certificate_id.clone(),
                });
            }
        }
        let dose = v.dose.unwrap_or(next);
        if dose < next {
            if let Some(done) = previous.get(dose as usize - 1) {
                return Err(RolloutError::Duplicate {
                    message: format!("dose {dose} was given on {}", done.date),
                    existing: done.certificate_id.clone(),
                });
            }
        }
        if dose > next {
            return Err(invalid(
                "dose",
                format!("the person's next dose is dose {next}"),
            ));
        }
        if let Some(last) = previous.last() {
            let earliest = earliest_after(&vaccine, dose, &last.date);
            if let Some(earliest) = earliest.filter(|e| today < *e) {
                return Err(invalid(
                    "dose",
                    format!(
                        "dose {dose} is possible from {earliest} ({} days after dose {})",
                        interval(&vaccine, dose).map_or(0, |i| i.min_days),
                        dose - 1
                    ),
                ));
            }
        }
        self.check_eligible(&programme, &enrolment, dose, today)?;
        let rate = part.daily_rate;
        // Without an appointment for the dose, a person comes in the
        // facility's walk-in hours, when it keeps any.
        if !part.walk_in.is_empty() {
            let programme_code = programme.code.clone();
            let booked = self.db().read(|r| {
                booked::open_booking(r, &v.enrolment, &programme_code, i64::from(dose))
            })?;
            let minute =
                u32::try_from((given - zone.start_of_day_ms(today)) / 60_000).unwrap_or(u32::MAX);
            let weekday = today.weekday();
            let open = part.walk_in.iter().any(|w| {
                w.days.iter().any(|d| d.index() == weekday)
                    && minutes_of(&w.start_time).is_some_and(|s| s <= minute)
                    && minutes_of(&w.end_time).is_some_and(|e| minute < e)
            });
            // An appointment here today; one elsewhere or on another day
            // does not let a person in outside the walk-in hours.
            let here = booked
                .as_ref()
                .is_some_and(|a| a.facility == v.facility && a.date == today.to_string());
            if !here && !open {
                return Err(invalid(
                    "appointment",
                    format!(
                        "{} takes people without an appointment only in its walk-in hours",
                        facility.code
                    ),
                ));
            }
        }

        // Before signing: a facility at its rate is refused cheaply here;
        // the count inside the write decides.
        let date = today.to_string();
        let mode = self.recording_rules().rate_mode;
        // What is counted: the facility in the programme, always (its
        // rate, if it has one, limits it), and the staff token's own rate.
        let resets_at = today
            .add_days(1)
            .map(|d| divoc_time::format_millis(zone.start_of_day_ms(d)))
            .unwrap_or_default();
        let mut counters = vec![Counter {
            scope: format!("facility:{}:{}", v.facility, programme.code),
            rate,
            limit: format!("facility {} in programme {}", v.facility, programme.code),
            resets_at: resets_at.clone(),
        }];
        if let Some(r) = staff_rates.get(&programme.code).copied() {
            counters.push(Counter {
                scope: format!("token:{actor}:{}", programme.code),
                rate: Some(r),
                limit: format!("this token in programme {}", programme.code),
                resets_at,
            });
        }
        if mode == RateMode::Enforce {
            for c in &counters {
                let Some(rate) = c.rate else { continue };
                let counted = self.db().read(|r| store::count(r, &c.scope, &date))?;
                if counted >= i64::from(rate) {
                    return Err(c.refusal());
                }
            }
        }

        let request = issue_request(
            &enrolment,
            &programme,
            &vaccine,
            &facility,
            &vaccinator,
            v,
            dose,
            given,
        );
        let next_dose = next_dose(&vaccine, dose, today);
        let reminder = next_dose
            .as_ref()
            .and_then(|n| self.reminder(&enrolment, &facility, n, now));
        let reminder_at = reminder
            .as_ref()
            .map(|(_, at)| divoc_time::format_millis(*at));
        let refusal: Refusal = Arc::new(Mutex::new(None));
        let marked: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        // The answer as an offline app is given it, kept with the dose.
        let answer_of = {
            let (date, next_dose, reminder_at) =
                (date.clone(), next_dose.clone(), reminder_at.clone());
            move |certificate_id: &str, appointment: Option<String>| Vaccinated {
                certificate_id: certificate_id.to_owned(),
                created: true,
                dose,
                date,
                appointment,
                next_dose,
                reminder_at,
            }
        };
        let row = VaccinationRow {
            enrolment: v.enrolment.clone(),
            programme: programme.code.clone(),
            dose: i64::from(dose),
            certificate_id: String::new(),
            vaccine: v.vaccine.clone(),
            batch: v.batch.clone(),
            facility: v.facility.clone(),
            vaccinator: v.vaccinator.clone(),
            date: date.clone(),
            at_ms: now,
            actor: actor.to_owned(),
        };
        let alongside = {
            let (refusal, marked) = (refusal.clone(), marked.clone());
            Box::new(move |tx: &divoc_storage::Tx<'_>, certificate_id: &str| {
                let refuse = |e: RolloutError| {
                    let message = e.to_string();
                    if let Ok(mut slot) = refusal.lock() {
                        *slot = Some(e);
                    }
                    Err(divoc_storage::StorageError::Rejected(message))
                };
                for c in counters {
                    let limit = match mode {
                        RateMode::Enforce => c.rate.map(i64::from),
                        RateMode::Warn => None,
                    };
                    let Some(count) = store::count_up(tx, &c.scope, &row.date, limit)? else {
                        return refuse(c.refusal());
                    };
                    // The count that fills the rate: an event for the
                    // dashboards (and the facility's day ends here).
                    if c.rate.is_some_and(|r| count == i64::from(r)) {
                        divoc_storage::events::append_event(
                            tx,
                            "rollout.rate.reached",
                            &c.scope,
                            &json!({"day": row.date, "rate": c.rate}),
                        )?;
                    }
                    if let (Some(r), RateMode::Warn) = (c.rate, mode) {
                        if count > i64::from(r) {
                            divoc_storage::audit::append_audit(
                                tx,
                                &row.actor,
                                "rate.exceeded",
                                &c.scope,
                                &json!({"day": row.date, "rate": r, "count": count}),
                            )?;
                        }
                    }
                }
                let mut row = row;
                row.certificate_id = certificate_id.to_owned();
                if !store::insert(tx, &row)? {
                    return refuse(RolloutError::Conflict(format!(
                        "dose {} of this person is recorded already",
                        row.dose
                    )));
                }
                let mut appointment = None;
                if let Some(mut a) =
                    booked::open_booking(&tx.reader(), &row.enrolment, &row.programme, row.dose)?
                {
                    a.actor = row.actor.clone();
                    a.updated_ms = row.at_ms;
                    if a.facility == row.facility && a.date == row.date {
                        a.status = "done".into();
                        booked::update(tx, &a)?;
                        appointment = Some(a.id.clone());
                        if let Ok(mut m) = marked.lock() {
                            *m = Some(a.id);
                        }
                    } else {
                        // The dose was given elsewhere or on another day:
                        // that booking's seat goes back to its slot.
                        booked::free_seat(
                            tx,
                            booked::SlotKey {
                                facility: &a.facility,
                                programme: &a.programme,
                                date: &a.date,
                                start: &a.start,
                            },
                        )?;
                        a.status = "cancelled".into();
                        booked::update(tx, &a)?;
                        let detail = json!({
                            "enrolment": a.enrolment, "programme": a.programme,
                            "facility": a.facility, "dose": a.dose, "date": a.date,
                            "time": a.start, "reason": "dose given elsewhere",
                        });
                        divoc_storage::events::append_event(
                            tx,
                            "rollout.appointment.cancelled",
                            &a.id,
                            &detail,
                        )?;
                    }
                }
                if let Some((facility, client_id)) = &sync {
                    let answer = serde_json::to_string(&SyncAnswer::Done(answer_of(
                        certificate_id,
                        appointment,
                    )))
                    .map_err(|e| divoc_storage::StorageError::InvalidArgument(e.to_string()))?;
                    // The same item applied meanwhile by another request:
                    // its answer stands, and this one is undone.
                    if !store::keep_sync_answer(tx, facility, client_id, &answer, row.at_ms)? {
                        return refuse(RolloutError::Conflict(
                            "this item was answered meanwhile".into(),
                        ));
                    }
                }
                let detail = json!({
                    "enrolment": row.enrolment, "programme": row.programme, "dose": row.dose,
                    "certificate": certificate_id, "facility": row.facility,
                    "vaccinator": row.vaccinator, "vaccine": row.vaccine, "date": row.date,
                });
                divoc_storage::audit::append_audit(
                    tx,
                    &row.actor,
                    "vaccination.recorded",
                    certificate_id,
                    &detail,
                )?;
                divoc_storage::events::append_event(
                    tx,
                    "rollout.vaccinated",
                    certificate_id,
                    &detail,
                )?;
                if let Some((payload, at)) = reminder {
                    divoc_storage::outbox::enqueue(
                        tx,
                        divoc_storage::outbox::NOTIFY,
                        divoc_storage::outbox::NOTIFY_UNROUTED,
                        &payload,
                        at,
                    )?;
                }
                Ok(())
            })
        };
        let issued = certificates.issue_alongside(&request, actor, alongside);
        if let Some(e) = refusal.lock().ok().and_then(|mut r| r.take()) {
            return Err(e);
        }
        let issued = issued.map_err(certificate_error)?;
        let appointment = marked.lock().ok().and_then(|mut m| m.take());
        Ok(Vaccinated {
            certificate_id: issued.id,
            created: issued.status == IssueStatus::Created,
            dose,
            date,
            appointment,
            next_dose,
            // Queued only with a certificate made now.
            reminder_at: reminder_at.filter(|_| issued.status == IssueStatus::Created),
        })
    }

    /// The record `code` of kind `T`, or a refusal naming `field`.
    fn get_as<T: crate::service::RecordKind>(
        &self,
        code: &str,
        field: &str,
    ) -> Result<T, RolloutError> {
        match self.get::<T>(code) {
            Ok(s) => Ok(s.record),
            Err(RolloutError::NotFound(_)) => {
                Err(invalid(field, format!("no {} with this code", T::KIND)))
            }
            Err(e) => Err(e),
        }
    }

    /// The reminder of the next dose: the outbox payload and when it goes
    /// out (at 09:00 local, `reminder_days_before` days before the
    /// earliest date; at once if that has passed). `None` without a
    /// contact.
    fn reminder(
        &self,
        e: &Enrolment,
        facility: &Facility,
        next: &NextDose,
        now: i64,
    ) -> Option<(serde_json::Value, i64)> {
        let mut contacts = Vec::new();
        if let Some(p) = &e.phone {
            contacts.push(format!("tel:{p}"));
        }
        if let Some(m) = &e.email {
            contacts.push(format!("mailto:{m}"));
        }
        if contacts.is_empty() {
            return None;
        }
        let earliest = divoc_time::parse_date(&next.earliest)?;
        let send_on = earliest.add_days(-i64::from(self.recording_rules().reminder_days_before))?;
        let at = self.zone_of(facility).local_ms(send_on, 9, 0)?.max(now);
        let payload = json!({
            "template": "dose-reminder",
            "recipient_name": e.name,
            "contacts": contacts,
            "subject": e.code,
            "variables": {
                "enrolment": e.code,
                "programme": e.programme,
                "dose": next.dose.to_string(),
                "earliest": next.earliest,
                "latest": next.latest.clone().unwrap_or_default(),
                "facility": facility.name,
            },
        });
        Some((payload, at))
    }
}

impl RolloutService {
    /// Whether `dose` may be booked on `date`: the person's doses so far
    /// leave it next, and its interval since the last one has passed (the
    /// vaccine is the one of the last dose, else the programme's only one).
    pub(crate) fn check_interval(
        &self,
        programme: &Programme,
        enrolment: &str,
        dose: u32,
        date: Date,
    ) -> Result<(), RolloutError> {
        let previous = self
            .db()
            .read(|r| store::of_enrolment(r, enrolment, &programme.code))?;
        let next = u32::try_from(previous.len()).unwrap_or(u32::MAX) + 1;
        if dose != next {
            return Err(invalid(
                "dose",
                format!("the person's next dose is dose {next}"),
            ));
        }
        let Some(last) = previous.last() else {
            return Ok(());
        };
        let vaccine: Vaccine = self.get_as(&last.vaccine, "dose")?;
        match earliest_after(&vaccine, dose, &last.date) {
            Some(earliest) if date < earliest => Err(invalid(
                "date",
                format!("dose {dose} is possible from {earliest}"),
            )),
            _ => Ok(()),
        }
    }
}

/// A programme's progress, for controllers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The programme.
    pub programme: String,
    /// People enrolled.
    pub enrolled: i64,
    /// Open bookings.
    pub booked: i64,
    /// Doses given, by dose (`"1"`, `"2"`, …).
    pub vaccinated: std::collections::BTreeMap<String, i64>,
    /// The same by the people's district: `enrolled` and doses by dose.
    pub districts: std::collections::BTreeMap<String, DistrictProgress>,
}

/// One district's part of [`Progress`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DistrictProgress {
    /// People enrolled.
    pub enrolled: i64,
    /// Doses given, by dose.
    pub vaccinated: std::collections::BTreeMap<String, i64>,
}

impl RolloutService {
    /// How far a programme has got: enrolled, booked, vaccinated by dose,
    /// each by district (404 if there is no such programme).
    pub fn progress(&self, programme: &str) -> Result<Progress, RolloutError> {
        let _ = self.get::<Programme>(programme)?;
        let counts = self.db().read(|r| store::progress(r, programme))?;
        let mut out = Progress {
            programme: programme.to_owned(),
            enrolled: 0,
            booked: counts.booked,
            vaccinated: Default::default(),
            districts: Default::default(),
        };
        for (district, n) in counts.enrolled {
            out.enrolled += n;
            out.districts.entry(district).or_default().enrolled += n;
        }
        for (district, dose, n) in counts.vaccinated {
            *out.vaccinated.entry(dose.to_string()).or_default() += n;
            *out.districts
                .entry(district)
                .or_default()
                .vaccinated
                .entry(dose.to_string())
                .or_default() += n;
        }
        Ok(out)
    }
}

fn invalid(field: &str, message: impl Into<String>) -> RolloutError {
    RolloutError::Validation(vec![FieldError::new(field, message)])
}

/// The most doses of a vaccine: its series and its boosters.
fn max_dose(vaccine: &Vaccine) -> u32 {
    vaccine
        .doses
        .saturating_add(vaccine.booster.as_ref().map_or(0, |b| b.max_boosters))
        .max(1)
}

/// The interval before `dose` (dose 2 is the first interval).
fn interval(vaccine: &Vaccine, dose: u32) -> Option<&crate::model::DoseInterval> {
    let i = usize::try_from(dose.checked_sub(2)?).ok()?;
    vaccine.intervals.get(i).or_else(|| {
        // A booster after the series: the last interval, if any.
        (dose > vaccine.doses)
            .then(|| vaccine.intervals.last())
            .flatten()
    })
}

/// The first day `dose` may be given after the previous dose on `last`
/// (a booster: the vaccine's days after the last dose).
pub(crate) fn earliest_after(vaccine: &Vaccine, dose: u32, last: &str) -> Option<Date> {
    let last = divoc_time::parse_date(last)?;
    let days = match (&vaccine.booster, dose > vaccine.doses) {
        (Some(b), true) => b.min_days_after_last,
        _ => interval(vaccine, dose)?.min_days,
    };
    last.add_days(i64::from(days))
}

/// The dose after `dose` given on `on`, if the series has one.
fn next_dose(vaccine: &Vaccine, dose: u32, on: Date) -> Option<NextDose> {
    let next = dose + 1;
    if next > vaccine.doses {
        return None;
    }
    let i = interval(vaccine, next)?;
    Some(NextDose {
        dose: next,
        earliest: on.add_days(i64::from(i.min_days))?.to_string(),
        latest: i
            .max_days
            .and_then(|m| on.add_days(i64::from(m)))
            .map(|d| d.to_string()),
    })
}

/// The certificate request of a vaccination, from the registry's records.
#[allow(clippy::too_many_arguments)]
fn issue_request(
    e: &Enrolment,
    programme: &Programme,
    vaccine: &Vaccine,
    facility: &Facility,
    vaccinator: &Vaccinator,
    v: &Vaccinate,
    dose: u32,
    now: i64,
) -> cert::IssueRequest {
    // DIVOC's identities are `did:<scheme>:<number>`.
    let identity = match e.identity.as_deref() {
        Some(id) => match id
            .strip_prefix("did:")
            .and_then(|rest| rest.rsplit_once(':'))
        {
            Some((scheme, number)) => cert::Identity {
                kind: scheme.to_owned(),
                value: number.to_owned(),
            },
            None => cert::Identity {
                kind: "national-id".into(),
                value: id.to_owned(),
            },
        },
        None => cert::Identity {
            kind: "enrolment".into(),
            value: e.code.clone(),
        },
    };
    let mut contacts = Vec::new();
    if let Some(p) = &e.phone {
        contacts.push(format!("tel:{p}"));
    }
    if let Some(m) = &e.email {
        contacts.push(format!("mailto:{m}"));
    }
    cert::IssueRequest {
        recipient: cert::Recipient {
            name: e.name.clone(),
            dob: Some(e.dob.clone()),
            age: None,
            gender: match e.gender {
                Gender::Male => "Male",
                Gender::Female => "Female",
                Gender::Other => "Other",
            }
            .into(),
            nationality: e.nationality.clone().unwrap_or_default(),
            identity,
            contacts,
            address: cert::Address {
                line1: e.address.line1.clone(),
                line2: e.address.line2.clone().unwrap_or_default(),
                district: e.address.district.clone(),
                state: e.address.state.clone(),
                pincode: e.address.pincode.clone().unwrap_or_default(),
                country: String::new(),
            },
        },
        vaccination: cert::Vaccination {
            program: programme.code.clone(),
            vaccine: vaccine.name.clone(),
            manufacturer: vaccine.manufacturer.clone(),
            batch: v.batch.clone(),
            date: divoc_time::format_millis(now),
            dose,
            total_doses: vaccine.doses,
            effective_start: None,
            effective_until: None,
        },
        facility: cert::Facility {
            id: Some(facility.code.clone()),
            name: facility.name.clone(),
            address: cert::Address {
                line1: facility.address.line1.clone(),
                line2: facility.address.line2.clone().unwrap_or_default(),
                district: facility.address.district.clone(),
                state: facility.address.state.clone(),
                pincode: facility.address.pincode.clone().unwrap_or_default(),
                country: facility.address.country.clone(),
            },
        },
        vaccinator: cert::Vaccinator {
            name: vaccinator.name.clone(),
        },
        pre_enrollment_code: e.code.clone(),
        meta: None,
        payment: v.payment.clone(),
    }
}

/// A certificate pipeline error as the rollout answers it: a field the
/// certificate needs and the records lack is named where it is kept
/// (`recipient.nationality` → `enrolment.nationality`).
fn certificate_error(e: CertError) -> RolloutError {
    match e {
        CertError::Validation(fields) => RolloutError::Validation(
            fields
                .into_iter()
                .map(|f| {
                    let field = match f.field.split_once('.') {
                        Some(("recipient", rest)) => format!("enrolment.{rest}"),
                        Some(("vaccination", rest)) => format!("vaccination.{rest}"),
                        _ => f.field,
                    };
                    FieldError::new(field, f.message)
                })
                .collect(),
        ),
        other => RolloutError::Certificate(other),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use divoc_certificates::ServiceConfig;
    use divoc_crypto::keys::{IssuerConfig, Keyring};
    use divoc_storage::{Database, DbOptions};
    use divoc_time::ManualClock;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// Monday 2026-12-07, 06:00 UTC.
    const MONDAY_6AM: i64 = 1_796_623_200_000;
    const DAY: i64 = 86_400_000;

    struct World {
        _dir: tempfile::TempDir,
        clock: Arc<ManualClock>,
        svc: RolloutService,
        certs: CertificateService,
    }

    fn world(rate: u32, mode: RateMode) -> World {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let clock = ManualClock::new(MONDAY_6AM);
        let svc = RolloutService::new(db.clone(), clock.clone()).with_recording(RecordingRules {
            rate_mode: mode,
            reminder_days_before: 2,
        });
        let keyring = Keyring::open_or_create(
            &dir.path().join("keys"),
            &IssuerConfig::new("did:web:example.org"),
        )
        .unwrap();
        let mut cfg = ServiceConfig::new("https://example.org");
        cfg.clock = clock.clone();
        let certs = CertificateService::open(db, keyring, cfg).unwrap();
        let records = [
            json!({"code": "COVAX", "name": "CoVax", "manufacturer": "COVPharma",
                   "mode": "injection", "doses": 2, "intervals": [{"minDays": 28, "maxDays": 84}]}),
        ];
        svc.create::<Vaccine>(serde_json::from_value(records[0].clone()).unwrap(), "ctl")
            .unwrap();
        svc.create::<Programme>(
            serde_json::from_value(json!({"code": "C19", "name": "COVID-19",
                "startDate": "2021-01-16", "vaccines": ["COVAX"],
                "eligibility": {"rule": {"minAge": 12}}}))
            .unwrap(),
            "ctl",
        )
        .unwrap();
        svc.create::<Facility>(
            serde_json::from_value(json!({"code": "F1", "name": "PHC One",
                "category": "government", "type": "fixed",
                "address": {"line1": "Main Road", "district": "D", "state": "S", "country": "IN"},
                "programmes": [{"programme": "C19", "dailyRate": rate, "slots": [{
                    "days": ["mon"], "startTime": "09:00", "endTime": "10:00",
                    "minutes": 60, "capacity": 10}]}]}))
            .unwrap(),
            "ctl",
        )
        .unwrap();
        svc.create::<Vaccinator>(
            serde_json::from_value(json!({"code": "V1", "name": "Nurse One",
                "facilities": ["F1"]}))
            .unwrap(),
            "ctl",
        )
        .unwrap();
        World {
            _dir: dir,
            clock,
            svc,
            certs,
        }
    }

    fn enrol(svc: &RolloutService, n: usize) -> String {
        let e: Enrolment = serde_json::from_value(json!({
            "programme": "C19", "name": format!("Person {n}"), "dob": "1980-01-01",
            "gender": "Female", "phone": format!("98{n:08}"), "nationality": "Indian",
            "identity": format!("did:in.gov.uidai.aadhaar:{n:012}"),
            "address": {"line1": "Road", "district": "D", "state": "S"}
        }))
        .unwrap();
        svc.enrol(e, "ctl").unwrap().record.code
    }

    /// Payment checks as a payment-provider plugin makes them: programme
    /// C19 costs 100.00 INR; a voucher `GOOD` pays.
    struct Charging;

    impl divoc_certificates::IssueHooks for Charging {
        fn check_identity(
            &self,
            _: &divoc_certificates::hooks::IdentityClaim<'_>,
        ) -> Result<divoc_certificates::hooks::IdentityCheck, divoc_certificates::hooks::HookError>
        {
            Ok(divoc_certificates::hooks::IdentityCheck::NotConfigured)
        }

        fn check_payment(
            &self,
            claim: &divoc_certificates::hooks::PaymentClaim<'_>,
        ) -> Result<divoc_certificates::hooks::PaymentCheck, divoc_certificates::hooks::HookError>
        {
            use divoc_certificates::hooks::{PaymentCheck, PaymentReceipt};
            Ok(match claim.payment {
                Some(p) if p.reference == "GOOD" => PaymentCheck::Authorized(PaymentReceipt {
                    provider: "pay-test".into(),
                    provider_reference: "r-1".into(),
                    status: "authorized".into(),
                    mode: p.mode.clone(),
                    currency: "INR".into(),
                    amount_minor_units: 10_000,
                }),
                _ => PaymentCheck::Rejected {
                    field: "payment.reference".into(),
                    reason: "not a valid voucher".into(),
                },
            })
        }

        fn charges(&self, program: &str) -> bool {
            program == "C19"
        }
    }

    #[test]
    fn a_paid_programme_takes_payment_through_the_pipeline() {
        let w = world(100, RateMode::Enforce);
        let mut programme = w.svc.get::<Programme>("C19").unwrap().record;
        programme.payment = Payment::Plugin("pay-test".into());
        w.svc.replace("C19", programme, None, "ctl").unwrap();
        let a = enrol(&w.svc, 1);
        // No price configured: refused, never given free.
        match w.svc.vaccinate(&w.certs, &jab(&a), "staff", &none()) {
            Err(RolloutError::Unavailable(m)) => assert!(m.contains("no price"), "{m}"),
            other => panic!("{other:?}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open_or_create(
            &dir.path().join("keys"),
            &IssuerConfig::new("did:web:example.org"),
        )
        .unwrap();
        let certs = CertificateService::open_with_hooks(
            w.svc.db().clone(),
            keyring,
            ServiceConfig::new("https://example.org"),
            Arc::new(Charging),
        )
        .unwrap();
        match w.svc.vaccinate(&certs, &jab(&a), "staff", &none()) {
            Err(RolloutError::Validation(f)) => assert_eq!(f[0].field, "payment"),
            other => panic!("{other:?}"),
        }
        let pay = |reference: &str| Vaccinate {
            payment: Some(cert::Payment {
                mode: "voucher".into(),
                reference: reference.into(),
            }),
            ..jab(&a)
        };
        match w.svc.vaccinate(&certs, &pay("BAD"), "staff", &none()) {
            Err(RolloutError::Validation(f)) => assert_eq!(f[0].field, "payment.reference"),
            other => panic!("{other:?}"),
        }
        assert!(certs.by_pre_enrollment(&a).unwrap().is_empty());
        let done = w
            .svc
            .vaccinate(&certs, &pay("GOOD"), "staff", &none())
            .unwrap();
        assert_eq!(done.dose, 1);
    }

    fn none() -> std::collections::BTreeMap<String, u32> {
        std::collections::BTreeMap::new()
    }

    fn jab(enrolment: &str) -> Vaccinate {
        Vaccinate {
            enrolment: enrolment.into(),
            facility: "F1".into(),
            vaccinator: "V1".into(),
            vaccine: "COVAX".into(),
            batch: "B-1".into(),
            dose: None,
            payment: None,
            at: None,
        }
    }

    #[test]
    fn a_dose_issues_its_certificate_and_opens_the_next() {
        let w = world(100, RateMode::Enforce);
        let a = enrol(&w.svc, 1);
        let booked = w
            .svc
            .book(
                &crate::Booking {
                    enrolment: a.clone(),
                    facility: "F1".into(),
                    date: "2026-12-07".into(),
                    time: "09:00".into(),
                    dose: None,
                },
                "staff",
            )
            .unwrap();
        let first = w
            .svc
            .vaccinate(&w.certs, &jab(&a), "staff", &none())
            .unwrap();
        assert!(first.created);
        assert_eq!((first.dose, first.date.as_str()), (1, "2026-12-07"));
        assert_eq!(first.appointment.as_deref(), Some(booked.id.as_str()));
        assert_eq!(w.svc.appointment(&booked.id).unwrap().status, "done");
        let next = first.next_dose.clone().unwrap();
        assert_eq!(
            (next.dose, next.earliest.as_str(), next.latest.as_deref()),
            (2, "2027-01-04", Some("2027-03-01"))
        );
        // The certificate is the pipeline's: signed, under the enrolment code.
        let cert = w.certs.get(&first.certificate_id).unwrap();
        let subject = &cert.credential["credentialSubject"];
        assert_eq!(subject["name"], "Person 1", "{subject}");
        assert_eq!(w.certs.by_pre_enrollment(&a).unwrap().len(), 1);
        // The reminder waits in the outbox until 2027-01-02 09:00 UTC.
        let notices = w
            .svc
            .db()
            .read(|r| divoc_storage::outbox::list(r, divoc_storage::OutboxStatus::Pending, 50))
            .unwrap();
        let reminder = notices
            .iter()
            .find(|n| n.payload["template"] == "dose-reminder")
            .unwrap();
        assert_eq!(reminder.payload["variables"]["earliest"], "2027-01-04");
        assert_eq!(first.reminder_at.as_deref(), Some("2027-01-02T09:00:00Z"));
        assert_eq!(
            reminder.next_attempt_at_ms,
            MONDAY_6AM + 26 * DAY + 3 * 3_600_000
        );
        // Dose 2 cannot be booked before its interval; on its first day it can.
        let mut early = crate::Booking {
            enrolment: a.clone(),
            facility: "F1".into(),
            date: "2026-12-14".into(),
            time: "09:00".into(),
            dose: Some(2),
        };
        let e = w.svc.book(&early, "staff").unwrap_err();
        assert!(
            matches!(&e, RolloutError::Validation(f) if f[0].field == "date" && f[0].message.contains("2027-01-04")),
            "{e}"
        );
        early.dose = Some(3);
        assert!(w.svc.book(&early, "staff").is_err(), "not the next dose");
        // Booked on its first day, it cannot be moved into the interval.
        early.dose = Some(2);
        early.date = "2027-01-04".into();
        w.clock.set(MONDAY_6AM + 14 * DAY);
        let booked = w.svc.book(&early, "staff").unwrap();
        let into = crate::Reschedule {
            facility: None,
            date: "2026-12-28".into(),
            time: "09:00".into(),
        };
        let e = w
            .svc
            .reschedule(&booked.id, &into, "staff", false)
            .unwrap_err();
        assert!(
            matches!(&e, RolloutError::Validation(f) if f[0].field == "date" && f[0].message.contains("2027-01-04")),
            "{e}"
        );
        w.svc
            .cancel_appointment(&booked.id, "staff", false)
            .unwrap();
        w.clock.set(MONDAY_6AM);
        // Too early for dose 2: refused with the date it becomes possible.
        let e = w
            .svc
            .vaccinate(&w.certs, &jab(&a), "staff", &none())
            .unwrap_err();
        assert!(
            matches!(&e, RolloutError::Validation(f) if f[0].field == "dose" && f[0].message.contains("2027-01-04")),
            "{e}"
        );
        // Dose 1 again: the first one's certificate is named.
        let again = Vaccinate {
            dose: Some(1),
            ..jab(&a)
        };
        let e = w
            .svc
            .vaccinate(&w.certs, &again, "staff", &none())
            .unwrap_err();
        assert!(
            matches!(&e, RolloutError::Duplicate { existing, .. } if *existing == first.certificate_id),
            "{e}"
        );
        // 28 days on, dose 2 goes, and the series is complete.
        w.clock.set(MONDAY_6AM + 28 * DAY);
        let second = w
            .svc
            .vaccinate(&w.certs, &jab(&a), "staff", &none())
            .unwrap();
        assert_eq!((second.dose, second.next_dose.as_ref()), (2, None));
        assert_eq!(w.certs.by_pre_enrollment(&a).unwrap().len(), 2);
        let p = w.svc.progress("C19").unwrap();
        assert_eq!((p.enrolled, p.booked), (1, 0));
        assert_eq!(
            p.vaccinated,
            BTreeMap::from([("1".into(), 1), ("2".into(), 1)])
        );
        assert_eq!(p.districts["D"].enrolled, 1);
        assert_eq!(p.districts["D"].vaccinated["2"], 1);
        assert!(matches!(
            w.svc.progress("NOPE"),
            Err(RolloutError::NotFound(_))
        ));
    }

    #[test]
    fn refusals_name_the_field_and_store_nothing() {
        let w = world(100, RateMode::Enforce);
        let a = enrol(&w.svc, 1);
        for (bad, field) in [
            (
                Vaccinate {
                    enrolment: "00000000000".into(),
                    ..jab(&a)
                },
                "enrolment",
            ),
            (
                Vaccinate {
                    facility: "F9".into(),
                    ..jab(&a)
                },
                "facility",
            ),
            (
                Vaccinate {
                    vaccinator: "V9".into(),
                    ..jab(&a)
                },
                "vaccinator",
            ),
            (
                Vaccinate {
                    vaccine: "OTHER".into(),
                    ..jab(&a)
                },
                "vaccine",
            ),
            (
                Vaccinate {
                    batch: " ".into(),
                    ..jab(&a)
                },
                "batch",
            ),
            (
                Vaccinate {
                    dose: Some(2),
                    ..jab(&a)
                },
                "dose",
            ),
        ] {
            match w.svc.vaccinate(&w.certs, &bad, "staff", &none()) {
                Err(RolloutError::Validation(f)) => assert_eq!(f[0].field, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(w.certs.by_pre_enrollment(&a).unwrap().is_empty());
        // What the certificate needs and the enrolment lacks is named there.
        let mut stateless: Enrolment = w.svc.get::<Enrolment>(&a).unwrap().record;
        stateless.nationality = None;
        stateless.code = String::new();
        stateless.name = "No Nationality".into();
        stateless.identity = None;
        let b = w.svc.enrol(stateless, "ctl").unwrap().record.code;
        match w.svc.vaccinate(&w.certs, &jab(&b), "staff", &none()) {
            Err(RolloutError::Validation(f)) => assert_eq!(f[0].field, "enrolment.nationality"),
            other => panic!("{other:?}"),
        }
        assert!(w.certs.by_pre_enrollment(&b).unwrap().is_empty());
    }

    #[test]
    fn sixty_four_recorders_against_a_rate_of_a_hundred_record_a_hundred() {
        let w = world(100, RateMode::Enforce);
        let people: Vec<String> = (0..192).map(|n| enrol(&w.svc, n)).collect();
        let threads: Vec<_> = people
            .chunks(3)
            .map(|chunk| {
                let (svc, certs, chunk) = (w.svc.clone(), w.certs.clone(), chunk.to_vec());
                std::thread::spawn(move || {
                    chunk
                        .iter()
                        .map(|p| (p.clone(), svc.vaccinate(&certs, &jab(p), "staff", &none())))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        assert_eq!(threads.len(), 64);
        let results: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let done = results.iter().filter(|(_, r)| r.is_ok()).count();
        let limited: Vec<&String> = results
            .iter()
            .filter(|(_, r)| matches!(r, Err(RolloutError::RateLimited { value: 100, .. })))
            .map(|(p, _)| p)
            .collect();
        assert_eq!((done, limited.len()), (100, 92));
        let reached = w
            .svc
            .db()
            .read(|r| divoc_storage::events::events_after(r, 0, 10_000))
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "rollout.rate.reached")
            .count();
        assert_eq!(reached, 1, "the rate is reached once");
        // A refused vaccination left no certificate behind.
        for p in limited {
            assert!(w.certs.by_pre_enrollment(p).unwrap().is_empty());
        }
        let e = w
            .svc
            .vaccinate(&w.certs, &jab(&people[0]), "staff", &none());
        assert!(e.is_err());
    }

    #[test]
    fn warn_only_records_over_the_rate_and_says_so() {
        let w = world(1, RateMode::Warn);
        let (a, b) = (enrol(&w.svc, 1), enrol(&w.svc, 2));
        w.svc
            .vaccinate(&w.certs, &jab(&a), "staff", &none())
            .unwrap();
        w.svc
            .vaccinate(&w.certs, &jab(&b), "staff", &none())
            .unwrap();
        let audit = w
            .svc
            .db()
            .read(|r| divoc_storage::audit::audit_after(r, 0, 1000))
            .unwrap();
        assert_eq!(
            audit.iter().filter(|a| a.action == "rate.exceeded").count(),
            1
        );
        // Enforced, the second is refused until the next local day.
        let w = world(1, RateMode::Enforce);
        let (a, b) = (enrol(&w.svc, 1), enrol(&w.svc, 2));
        w.svc
            .vaccinate(&w.certs, &jab(&a), "staff", &none())
            .unwrap();
        let e = w
            .svc
            .vaccinate(&w.certs, &jab(&b), "staff", &none())
            .unwrap_err();
        assert!(
            matches!(&e, RolloutError::RateLimited { resets_at, .. } if resets_at == "2026-12-08T00:00:00Z"),
            "{e}"
        );
        w.clock.set(MONDAY_6AM + DAY);
        w.svc
            .vaccinate(&w.certs, &jab(&b), "staff", &none())
            .unwrap();
    }

    #[test]
    fn offline_items_are_applied_in_order_once_and_answered_the_same_again() {
        use crate::sync::{SyncAnswer, SyncItem, SyncRequest};
        let w = world(2, RateMode::Enforce);
        let (a, b, c) = (enrol(&w.svc, 1), enrol(&w.svc, 2), enrol(&w.svc, 3));
        let at =
            |minutes: i64| divoc_time::format_millis(MONDAY_6AM - 3_600_000 + minutes * 60_000);
        let item = |id: &str, who: &str, m: i64| SyncItem {
            client_id: id.into(),
            vaccination: Vaccinate {
                at: Some(at(m)),
                ..jab(who)
            },
        };
        let request = SyncRequest {
            facility: "F1".into(),
            items: vec![
                item("app-1", &a, 0),
                item("app-2", &a, 5),  // a's dose 2, too early
                item("app-3", &b, 10), // the rate (2) is reached here
                item("app-4", &c, 15), // past the rate
            ],
        };
        let first = w
            .svc
            .sync_vaccinations(&w.certs, &request, "staff", &none())
            .unwrap();
        let statuses: Vec<(&str, &str)> = first
            .iter()
            .map(|r| {
                let s = match &r.answer {
                    SyncAnswer::Done(_) => "done",
                    SyncAnswer::Refused { code, .. } => code.as_str(),
                    SyncAnswer::Retry { .. } => "retry",
                };
                (r.client_id.as_str(), s)
            })
            .collect();
        assert_eq!(
            statuses,
            [
                ("app-1", "done"),
                ("app-2", "invalid_input"),
                ("app-3", "done"),
                ("app-4", "rate_limited")
            ]
        );
        let SyncAnswer::Done(done) = &first[0].answer else {
            panic!()
        };
        assert_eq!(done.date, "2026-12-07");
        // Sent again (the app did not hear back): the same answers, nothing
        // applied twice.
        let again = w
            .svc
            .sync_vaccinations(&w.certs, &request, "staff", &none())
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(w.certs.by_pre_enrollment(&a).unwrap().len(), 1);
        assert_eq!(w.certs.by_pre_enrollment(&b).unwrap().len(), 1);
        assert!(w.certs.by_pre_enrollment(&c).unwrap().is_empty());
        // A malformed request is refused whole, naming the item's field.
        let bad = SyncRequest {
            facility: "F1".into(),
            items: vec![
                SyncItem {
                    client_id: "x".into(),
                    vaccination: jab(&c),
                },
                item("x", &c, 1),
                SyncItem {
                    client_id: "y".into(),
                    vaccination: Vaccinate {
                        facility: "F2".into(),
                        ..item("y", &c, 1).vaccination
                    },
                },
            ],
        };
        match w.svc.sync_vaccinations(&w.certs, &bad, "staff", &none()) {
            Err(RolloutError::Validation(f)) => {
                let fields: Vec<&str> = f.iter().map(|f| f.field.as_str()).collect();
                assert_eq!(
                    fields,
                    [
                        "items[0].vaccination.at",
                        "items[1].clientId",
                        "items[2].vaccination.facility"
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        // An `at` in the future or too long ago is named.
        let late = Vaccinate {
            at: Some(divoc_time::format_millis(MONDAY_6AM - 8 * DAY)),
            ..jab(&c)
        };
        match w.svc.vaccinate(&w.certs, &late, "staff", &none()) {
            Err(RolloutError::Validation(f)) => assert_eq!(f[0].field, "at"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_offline_app_gets_what_changed_since_its_last_sync() {
        let w = world(100, RateMode::Enforce);
        let mut e: Enrolment = serde_json::from_value(json!({
            "programme": "C19", "name": "At F1", "dob": "1980-01-01", "gender": "Male",
            "facility": "F1", "address": {"line1": "Road", "district": "D", "state": "S"}
        }))
        .unwrap();
        let code = w.svc.enrol(e.clone(), "ctl").unwrap().record.code;
        enrol(&w.svc, 9); // enrolled nowhere in particular: not F1's
        let full = w.svc.facility_snapshot("F1", None, None).unwrap();
        assert!(full.facility.is_some());
        assert_eq!(full.programmes.len(), 1);
        assert_eq!(full.vaccines[0].record.code, "COVAX");
        assert_eq!(full.vaccinators[0].record.code, "V1");
        assert_eq!(full.enrolments.len(), 1);
        assert_eq!(full.enrolments[0].record.code, code);
        // An hour later only the changed enrolment comes.
        w.clock.set(MONDAY_6AM + 3_600_000);
        let cursor: i64 = full.cursor.parse().unwrap();
        assert_eq!(cursor, MONDAY_6AM - crate::sync::SYNC_OVERLAP_MS);
        e.code = code.clone();
        e.name = "At F1, renamed".into();
        w.svc.replace(&code, e, None, "ctl").unwrap();
        let since = w
            .svc
            .facility_snapshot("F1", Some(MONDAY_6AM + 1), None)
            .unwrap();
        assert!(since.facility.is_none() && since.programmes.is_empty());
        assert!(since.vaccines.is_empty() && since.vaccinators.is_empty());
        assert_eq!(since.enrolments.len(), 1);
        assert_eq!(since.enrolments[0].record.name, "At F1, renamed");
    }

    #[test]
    fn without_an_appointment_people_come_in_walk_in_hours() {
        let w = world(100, RateMode::Enforce);
        let mut f: Facility = w.svc.get::<Facility>("F1").unwrap().record;
        // Walk-ins on Mondays 10:00-12:00; it is Monday 06:00.
        f.programmes[0].walk_in = vec![crate::model::Schedule {
            days: vec![crate::model::Weekday::Mon],
            start_time: "10:00".into(),
            end_time: "12:00".into(),
        }];
        w.svc.replace("F1", f, None, "ctl").unwrap();
        let (a, b) = (enrol(&w.svc, 1), enrol(&w.svc, 2));
        match w.svc.vaccinate(&w.certs, &jab(&a), "staff", &none()) {
            Err(RolloutError::Validation(f)) => assert_eq!(f[0].field, "appointment"),
            other => panic!("{other:?}"),
        }
        // With an appointment it goes; and at 10:30 anyone does.
        w.svc
            .book(
                &crate::Booking {
                    enrolment: a.clone(),
                    facility: "F1".into(),
                    date: "2026-12-07".into(),
                    time: "09:00".into(),
                    dose: None,
                },
                "staff",
            )
            .unwrap();
        w.svc
            .vaccinate(&w.certs, &jab(&a), "staff", &none())
            .unwrap();
        w.clock.set(MONDAY_6AM + 4 * 3_600_000 + 30 * 60_000);
        // b is booked for next Monday; given today in walk-in hours, that
        // booking gives its seat back.
        let later = w
            .svc
            .book(
                &crate::Booking {
                    enrolment: b.clone(),
                    facility: "F1".into(),
                    date: "2026-12-14".into(),
                    time: "09:00".into(),
                    dose: None,
                },
                "staff",
            )
            .unwrap();
        let done = w
            .svc
            .vaccinate(&w.certs, &jab(&b), "staff", &none())
            .unwrap();
        assert_eq!(done.appointment, None);
        assert_eq!(w.svc.appointment(&later.id).unwrap().status, "cancelled");
        let slot = &w
            .svc
            .slots("F1", "C19", Some("2026-12-14"), Some(1))
            .unwrap()[0];
        assert_eq!(slot.booked, 0);
    }

    #[test]
    fn a_retry_is_not_another_dose_and_doses_are_bounded() {
        let w = world(100, RateMode::Enforce);
        let a = enrol(&w.svc, 1);
        for bad in [0, 3, 99] {
            let v = Vaccinate {
                dose: Some(bad),
                ..jab(&a)
            };
            match w.svc.vaccinate(&w.certs, &v, "staff", &none()) {
                Err(RolloutError::Validation(f)) => assert_eq!(f[0].field, "dose", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        w.svc
            .vaccinate(&w.certs, &jab(&a), "staff", &none())
            .unwrap();
        w.clock.set(MONDAY_6AM + 28 * DAY);
        let second = w
            .svc
            .vaccinate(&w.certs, &jab(&a), "staff", &none())
            .unwrap();
        // The series (2 doses, no boosters) is given: the same request
        // again names the last certificate.
        match w.svc.vaccinate(&w.certs, &jab(&a), "staff", &none()) {
            Err(RolloutError::Duplicate { existing, .. }) => {
                assert_eq!(existing, second.certificate_id)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w.certs.by_pre_enrollment(&a).unwrap().len(), 2);
    }

    #[test]
    fn a_policy_plugin_is_told_the_doses_given() {
        #[derive(Default)]
        struct Recorder(Mutex<Vec<crate::EligibilityQuery>>);
        impl crate::PolicyPlugins for Recorder {
            fn evaluate(
                &self,
                _: &str,
                q: &crate::EligibilityQuery,
            ) -> Result<crate::Decision, String> {
                self.0.lock().unwrap().push(q.clone());
                Ok(crate::Decision::Allow)
            }
        }
        let w = world(100, RateMode::Enforce);
        let recorder = Arc::new(Recorder::default());
        let svc = w.svc.clone().with_policies(recorder.clone());
        let mut c19 = svc.get::<Programme>("C19").unwrap().record;
        c19.eligibility = crate::model::Eligibility::Plugin("recorder".into());
        svc.replace("C19", c19, None, "ctl").unwrap();
        let a = enrol(&svc, 1);
        svc.vaccinate(&w.certs, &jab(&a), "staff", &none()).unwrap();
        w.clock.set(MONDAY_6AM + 30 * DAY);
        svc.vaccinate(&w.certs, &jab(&a), "staff", &none()).unwrap();
        let last = recorder.0.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last.dose, 2);
        let given: Vec<(String, u32, String)> = last
            .previous_doses
            .iter()
            .map(|(v, d, on)| (v.clone(), *d, on.to_string()))
            .collect();
        assert_eq!(given, [("COVAX".to_string(), 1, "2026-12-07".to_string())]);
    }

    #[test]
    fn the_same_offline_item_sent_at_once_is_applied_once() {
        use crate::sync::{SyncItem, SyncRequest};
        let w = world(100, RateMode::Enforce);
        let a = enrol(&w.svc, 1);
        let request = SyncRequest {
            facility: "F1".into(),
            items: vec![SyncItem {
                client_id: "app-1".into(),
                vaccination: Vaccinate {
                    at: Some(divoc_time::format_millis(MONDAY_6AM - 3_600_000)),
                    ..jab(&a)
                },
            }],
        };
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (svc, certs, request) = (w.svc.clone(), w.certs.clone(), request.clone());
                std::thread::spawn(move || {
                    svc.sync_vaccinations(&certs, &request, "staff", &BTreeMap::new())
                        .unwrap()
                })
            })
            .collect();
        let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        assert!(matches!(answers[0][0].answer, crate::SyncAnswer::Done(_)));
        assert_eq!(w.certs.by_pre_enrollment(&a).unwrap().len(), 1);
    }

    #[test]
    fn a_staff_token_has_its_own_rate() {
        let w = world(100, RateMode::Enforce);
        let (a, b) = (enrol(&w.svc, 1), enrol(&w.svc, 2));
        let one = std::collections::BTreeMap::from([("C19".to_string(), 1)]);
        w.svc
            .vaccinate(&w.certs, &jab(&a), "token:t1", &one)
            .unwrap();
        let e = w
            .svc
            .vaccinate(&w.certs, &jab(&b), "token:t1", &one)
            .unwrap_err();
        assert!(
            matches!(&e, RolloutError::RateLimited { limit, value: 1, .. } if limit.contains("token")),
            "{e}"
        );
        // Another token at the same facility goes on.
        w.svc
            .vaccinate(&w.certs, &jab(&b), "token:t2", &one)
            .unwrap();
    }
}
