//! Appointments: the slots a facility offers in a programme, and booking,
//! cancelling and rescheduling them.
//!
//! Slots are not stored: they follow from the facility's `slots` windows
//! ([`crate::model::SlotWindow`]) for each date from today to
//! [`BookingRules::days_ahead`] days ahead, in the facilities' time zone, so
//! a schedule changed now applies to every date at once. What is stored is
//! each appointment and the seats taken per slot. A booking takes its seat
//! with one conditional statement inside the writer's transaction
//! (`booked < capacity`), so concurrent bookings can never take more seats
//! than a slot has — DIVOC's GET-then-DECR on Redis could.

use serde::{Deserialize, Serialize};
use serde_json::json;

use divoc_storage::appointments::{self as store, AppointmentRow, SlotKey};
use divoc_storage::rollout as records;
use divoc_time::Date;

use crate::enrolment::Enrolment;
use crate::error::{FieldError, RolloutError};
use crate::model::{minutes_of, Facility, Programme, Status};
use crate::service::{flatten, Decided, RecordKind, RolloutService};

/// Appointment rules (`[rollout]` in the host's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingRules {
    /// How many days ahead slots can be booked (today is day 0).
    pub days_ahead: u32,
    /// A recipient cannot cancel or move a booking later than this many
    /// hours before its slot (staff can).
    pub cancel_cutoff_hours: u32,
    /// How many times one booking may be moved.
    pub reschedule_limit: u32,
}

impl Default for BookingRules {
    fn default() -> Self {
        BookingRules {
            days_ahead: 14,
            cancel_cutoff_hours: 2,
            reschedule_limit: 2,
        }
    }
}

/// One bookable slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    /// Local date, `YYYY-MM-DD`.
    pub date: String,
    /// Local start, `HH:MM`.
    pub time: String,
    /// Local end, `HH:MM`.
    pub end: String,
    /// Seats.
    pub capacity: u32,
    /// Seats taken.
    pub booked: u32,
    /// Seats left.
    pub free: u32,
}

/// A booking request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Booking {
    /// The person's enrolment code (their programme is the booking's).
    pub enrolment: String,
    /// The facility.
    pub facility: String,
    /// Local date, `YYYY-MM-DD`.
    pub date: String,
    /// The slot's local start, `HH:MM`.
    pub time: String,
    /// Which dose (default 1).
    #[serde(default)]
    pub dose: Option<u32>,
}

/// Where to move a booking.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Reschedule {
    /// Another facility (default: the same).
    #[serde(default)]
    pub facility: Option<String>,
    /// Local date, `YYYY-MM-DD`.
    pub date: String,
    /// The slot's local start, `HH:MM`.
    pub time: String,
}

/// An appointment, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    /// `apt_…`.
    pub id: String,
    /// The enrolment code.
    pub enrolment: String,
    /// The programme.
    pub programme: String,
    /// The facility.
    pub facility: String,
    /// Which dose.
    pub dose: i64,
    /// Local date.
    pub date: String,
    /// Local start.
    pub time: String,
    /// The slot's start (RFC 3339, UTC).
    pub starts_at: String,
    /// `booked`, `cancelled` or `done`.
    pub status: String,
    /// Times it was moved.
    pub reschedules: i64,
    /// When it was booked.
    pub booked_at: String,
    /// When it last changed.
    pub updated_at: String,
}

impl From<AppointmentRow> for Appointment {
    fn from(a: AppointmentRow) -> Appointment {
        Appointment {
            id: a.id,
            enrolment: a.enrolment,
            programme: a.programme,
            facility: a.facility,
            dose: a.dose,
            date: a.date,
            time: a.start,
            starts_at: divoc_time::format_millis(a.starts_ms),
            status: a.status,
            reschedules: a.reschedules,
            booked_at: divoc_time::format_millis(a.created_ms),
            updated_at: divoc_time::format_millis(a.updated_ms),
        }
    }
}

/// One line of a facility's day: the appointment and who it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayEntry {
    /// The appointment.
    #[serde(flatten)]
    pub appointment: Appointment,
    /// The person's name (from the enrolment; empty if it was erased).
    pub name: String,
}

/// Most slots or appointments one answer lists.
const MAX_LIST: usize = 5000;

/// A date and time checked for booking: in the window, not past.
struct When {
    date: Date,
    time: String,
    starts_ms: i64,
}

impl RolloutService {
    /// A slot's date and time at `facility`, read in its time zone.
    fn when(&self, facility: &str, date: &str, time: &str) -> Result<When, RolloutError> {
        let zone = match self.get::<Facility>(facility) {
            Ok(f) => self.zone_of(&f.record).clone(),
            Err(RolloutError::NotFound(_)) => {
                return Err(RolloutError::Validation(vec![FieldError::new(
                    "facility",
                    "no facility with this code",
                )]))
            }
            Err(e) => return Err(e),
        };
        let mut errors = Vec::new();
        let parsed_date = divoc_time::parse_date(date);
        if parsed_date.is_none() {
            errors.push(FieldError::new("date", "must be a date YYYY-MM-DD"));
        }
        let minutes = minutes_of(time);
        if minutes.is_none() {
            errors.push(FieldError::new("time", "must be a time HH:MM"));
        }
        let (Some(date), Some(minutes)) = (parsed_date, minutes) else {
            return Err(RolloutError::Validation(errors));
        };
        let now = self.clock().now_ms();
        let today = Date::in_zone(now, &zone);
        let ahead = self.booking_rules().days_ahead;
        if date < today || today.days_until(date) > i64::from(ahead) {
            return Err(RolloutError::Validation(vec![FieldError::new(
                "date",
                format!("must be from today ({today}) to {ahead} days ahead"),
            )]));
        }
        let starts_ms = zone
            .local_ms(date, minutes / 60, minutes % 60)
            .ok_or_else(|| {
                RolloutError::Validation(vec![FieldError::new("time", "no such time")])
            })?;
        if starts_ms <= now {
            return Err(RolloutError::Validation(vec![FieldError::new(
                "time",
                "this slot has started already",
            )]));
        }
        Ok(When {
            date,
            time: time.to_owned(),
            starts_ms,
        })
    }

    /// The slots `facility` offers in `programme` from `from` (default
    /// today) for `days` days (default and at most to the booking window's
    /// end), with the seats left; slots that have started are left out.
    pub fn slots(
        &self,
        facility: &str,
        programme: &str,
        from: Option<&str>,
        days: Option<u32>,
    ) -> Result<Vec<Slot>, RolloutError> {
        let f: Facility = self.get(facility)?.record;
        let zone = self.zone_of(&f);
        let now = self.clock().now_ms();
        let today = Date::in_zone(now, zone);
        let from = match from {
            None => today,
            Some(s) => divoc_time::parse_date(s).ok_or_else(|| {
                RolloutError::Validation(vec![FieldError::new("from", "must be a date YYYY-MM-DD")])
            })?,
        }
        .max(today);
        let last = today
            .add_days(i64::from(self.booking_rules().days_ahead))
            .unwrap_or(today);
        let last = match days {
            Some(0) => {
                return Err(RolloutError::Validation(vec![FieldError::new(
                    "days",
                    "must be at least 1",
                )]))
            }
            Some(d) => from.add_days(i64::from(d) - 1).unwrap_or(last).min(last),
            None => last,
        };
        let Some(p) = f.programmes.iter().find(|p| {
            p.programme == programme && p.status == Status::Active && f.status == Status::Active
        }) else {
            return Ok(Vec::new());
        };
        let taken = self
            .db()
            .read(|r| store::seats(r, facility, programme, &from.to_string(), &last.to_string()))?;
        let taken: std::collections::HashMap<(String, String), i64> =
            taken.into_iter().map(|(d, t, n)| ((d, t), n)).collect();
        let mut out = Vec::new();
        let mut date = from;
        while date <= last && out.len() < MAX_LIST {
            let mut day: Vec<Slot> = Vec::new();
            for w in p
                .slots
                .iter()
                .filter(|w| w.days.iter().any(|d| d.index() == date.weekday()))
            {
                for start in w.starts() {
                    let starts_ms = zone.local_ms(date, start / 60, start % 60);
                    if starts_ms.is_none_or(|ms| ms <= now) {
                        continue;
                    }
                    let time = hhmm(start);
                    if day.iter().any(|s| s.time == time) {
                        continue;
                    }
                    let booked = taken
                        .get(&(date.to_string(), time.clone()))
                        .copied()
                        .unwrap_or(0);
                    let booked = u32::try_from(booked).unwrap_or(0);
                    day.push(Slot {
                        date: date.to_string(),
                        end: hhmm(start + w.minutes),
                        capacity: w.capacity,
                        booked,
                        free: w.capacity.saturating_sub(booked),
                        time,
                    });
                }
            }
            day.sort_by(|a, b| a.time.cmp(&b.time));
            out.extend(day);
            let Some(next) = date.add_days(1) else { break };
            date = next;
        }
        out.truncate(MAX_LIST);
        Ok(out)
    }

    /// Books a seat: 201 with the appointment; 409 `slot_full` when no
    /// seat is left, 409 `duplicate` (with its id) when the person has a
    /// booking for that dose already; 422 naming the field otherwise.
    pub fn book(&self, booking: &Booking, actor: &str) -> Result<Appointment, RolloutError> {
        let dose = booking.dose.unwrap_or(1);
        if !(1..=20).contains(&dose) {
            return Err(RolloutError::Validation(vec![FieldError::new(
                "dose",
                "must be 1-20",
            )]));
        }
        let when = self.when(&booking.facility, &booking.date, &booking.time)?;
        // Eligibility and the dose's interval on the slot's date, decided
        // before the write (a plugin call does not hold the writer).
        if let Ok(enrolment) = self.get::<Enrolment>(&booking.enrolment) {
            if let Ok(programme) = self.get::<Programme>(&enrolment.record.programme) {
                self.check_eligible(&programme.record, &enrolment.record, dose, when.date)?;
                self.check_interval(&programme.record, &booking.enrolment, dose, when.date)?;
            }
        }
        let now = self.clock().now_ms();
        let id = new_id();
        let (b, actor) = (booking.clone(), actor.to_owned());
        let row = flatten(
            self.db()
                .write(move |tx| -> Decided<AppointmentRow> {
                    let reader = tx.reader();
                    let Some(rec) = records::get(&reader, Enrolment::KIND, &b.enrolment)? else {
                        return Ok(Err(invalid("enrolment", "no enrolment with this code")));
                    };
                    let enrolment: Enrolment = parse(&rec.body)?;
                    if enrolment.status != Status::Active {
                        return Ok(Err(invalid("enrolment", "is not active")));
                    }
                    let programme = enrolment.programme.clone();
                    match records::get(&reader, Programme::KIND, &programme)? {
                        Some(p) if parse::<Programme>(&p.body)?.status == Status::Active => {}
                        _ => {
                            return Ok(Err(invalid(
                                "enrolment",
                                format!("its programme {programme} is not active"),
                            )))
                        }
                    }
                    let capacity = match slot_capacity(tx, &b.facility, &programme, &when)? {
                        Ok(c) => c,
                        Err(e) => return Ok(Err(e)),
                    };
                    let dose = i64::from(dose);
                    if let Some(open) =
                        store::open_booking(&reader, &b.enrolment, &programme, dose)?
                    {
                        return Ok(Err(RolloutError::Duplicate {
                            message: format!(
                                "this person has a booking for dose {dose} (on {} at {})",
                                open.date, open.start
                            ),
                            existing: open.id,
                        }));
                    }
                    let date = when.date.to_string();
                    let slot = SlotKey {
                        facility: &b.facility,
                        programme: &programme,
                        date: &date,
                        start: &when.time,
                    };
                    if !store::take_seat(tx, slot, i64::from(capacity))? {
                        return Ok(Err(full(&b.facility, &date, &when.time, capacity)));
                    }
                    let row = AppointmentRow {
                        id,
                        enrolment: b.enrolment.clone(),
                        programme,
                        facility: b.facility.clone(),
                        dose,
                        date,
                        start: when.time.clone(),
                        starts_ms: when.starts_ms,
                        status: "booked".into(),
                        reschedules: 0,
                        actor: actor.clone(),
                        created_ms: now,
                        updated_ms: now,
                    };
                    // The open booking was looked for in this same write.
                    if !store::insert(tx, &row)? {
                        return Err(divoc_storage::StorageError::InvalidArgument(
                            "an open booking appeared inside the write".into(),
                        ));
                    }
                    log(tx, &actor, "booked", &row)?;
                    Ok(Ok(row))
                })
                .wait(),
        )?;
        Ok(row.into())
    }

    /// Cancels a booking and gives its seat back. `by_recipient`: the
    /// person themself, who cannot within the cut-off before the slot.
    pub fn cancel_appointment(
        &self,
        id: &str,
        actor: &str,
        by_recipient: bool,
    ) -> Result<Appointment, RolloutError> {
        let now = self.clock().now_ms();
        let cutoff = self.cutoff_ms(by_recipient);
        let (id, actor) = (id.to_owned(), actor.to_owned());
        let row = flatten(
            self.db()
                .write(move |tx| -> Decided<AppointmentRow> {
                    let mut a = match open_for_change(tx, &id, now, cutoff)? {
                        Ok(a) => a,
                        Err(e) => return Ok(Err(e)),
                    };
                    store::free_seat(tx, key(&a))?;
                    a.status = "cancelled".into();
                    a.actor = actor.clone();
                    a.updated_ms = now;
                    store::update(tx, &a)?;
                    log(tx, &actor, "cancelled", &a)?;
                    Ok(Ok(a))
                })
                .wait(),
        )?;
        Ok(row.into())
    }

    /// Moves a booking to another slot (of the same or another facility):
    /// the new seat is taken before the old one is given back, in one
    /// transaction, so a full slot leaves the booking where it was.
    pub fn reschedule(
        &self,
        id: &str,
        to: &Reschedule,
        actor: &str,
        by_recipient: bool,
    ) -> Result<Appointment, RolloutError> {
        // The new date is asked about as a booking is: the person's policy
        // and the dose's interval.
        let current = self.appointment(id)?;
        let facility = to.facility.as_deref().unwrap_or(&current.facility);
        let when = self.when(facility, &to.date, &to.time)?;
        let enrolment = self.get::<Enrolment>(&current.enrolment)?.record;
        if enrolment.status != Status::Active {
            return Err(invalid("enrolment", "is not active"));
        }
        let programme = self.get::<Programme>(&current.programme)?.record;
        let dose = u32::try_from(current.dose).unwrap_or(u32::MAX);
        self.check_eligible(&programme, &enrolment, dose, when.date)?;
        self.check_interval(&programme, &current.enrolment, dose, when.date)?;
        let now = self.clock().now_ms();
        let cutoff = self.cutoff_ms(by_recipient);
        let limit = i64::from(self.booking_rules().reschedule_limit);
        let (id, to, actor) = (id.to_owned(), to.clone(), actor.to_owned());
        let row = flatten(
            self.db()
                .write(move |tx| -> Decided<AppointmentRow> {
                    let mut a = match open_for_change(tx, &id, now, cutoff)? {
                        Ok(a) => a,
                        Err(e) => return Ok(Err(e)),
                    };
                    if a.reschedules >= limit {
                        return Ok(Err(RolloutError::Conflict(format!(
                            "this booking was moved {} times: the limit (cancel it and book again)",
                            a.reschedules
                        ))));
                    }
                    let facility = to.facility.clone().unwrap_or_else(|| a.facility.clone());
                    let date = when.date.to_string();
                    if facility == a.facility && date == a.date && when.time == a.start {
                        return Ok(Ok(a));
                    }
                    let capacity = match slot_capacity(tx, &facility, &a.programme, &when)? {
                        Ok(c) => c,
                        Err(e) => return Ok(Err(e)),
                    };
                    let slot = SlotKey {
                        facility: &facility,
                        programme: &a.programme,
                        date: &date,
                        start: &when.time,
                    };
                    if !store::take_seat(tx, slot, i64::from(capacity))? {
                        return Ok(Err(full(&facility, &date, &when.time, capacity)));
                    }
                    store::free_seat(tx, key(&a))?;
                    a.facility = facility;
                    a.date = date;
                    a.start = when.time.clone();
                    a.starts_ms = when.starts_ms;
                    a.reschedules += 1;
                    a.actor = actor.clone();
                    a.updated_ms = now;
                    store::update(tx, &a)?;
                    log(tx, &actor, "rescheduled", &a)?;
                    Ok(Ok(a))
                })
                .wait(),
        )?;
        Ok(row.into())
    }

    /// The appointment with this id.
    pub fn appointment(&self, id: &str) -> Result<Appointment, RolloutError> {
        self.db()
            .read(|r| store::get(r, id))?
            .map(Appointment::from)
            .ok_or_else(|| RolloutError::NotFound(format!("appointment {id}")))
    }

    /// A person's appointments, oldest first.
    pub fn appointments_of(&self, enrolment: &str) -> Result<Vec<Appointment>, RolloutError> {
        Ok(self
            .db()
            .read(|r| store::of_enrolment(r, enrolment))?
            .into_iter()
            .map(Appointment::from)
            .collect())
    }

    /// A facility's appointments on a local date (`None`: today), in time
    /// order, with the names of the people booked.
    pub fn day(&self, facility: &str, date: Option<&str>) -> Result<Vec<DayEntry>, RolloutError> {
        let f: Facility = self.get(facility)?.record;
        let date = match date {
            None => Date::in_zone(self.clock().now_ms(), self.zone_of(&f)),
            Some(d) => divoc_time::parse_date(d).ok_or_else(|| {
                RolloutError::Validation(vec![FieldError::new("date", "must be a date YYYY-MM-DD")])
            })?,
        }
        .to_string();
        self.db()
            .read(|r| {
                let rows = store::day(r, facility, &date, None, MAX_LIST)?;
                rows.into_iter()
                    .map(|a| {
                        let name = records::get(r, Enrolment::KIND, &a.enrolment)?
                            .and_then(|rec| serde_json::from_str::<Enrolment>(&rec.body).ok())
                            .map(|e| e.name)
                            .unwrap_or_default();
                        Ok(DayEntry {
                            appointment: a.into(),
                            name,
                        })
                    })
                    .collect::<divoc_storage::Result<Vec<_>>>()
            })
            .map_err(RolloutError::from)
    }

    fn cutoff_ms(&self, by_recipient: bool) -> i64 {
        if by_recipient {
            i64::from(self.booking_rules().cancel_cutoff_hours) * 3_600_000
        } else {
            0
        }
    }
}

/// The capacity of the slot at `when` that `facility` offers in
/// `programme`, read inside the write; a refusal naming the field if there
/// is none.
fn slot_capacity(
    tx: &divoc_storage::Tx<'_>,
    facility: &str,
    programme: &str,
    when: &When,
) -> divoc_storage::Result<Result<u32, RolloutError>> {
    let Some(rec) = records::get(&tx.reader(), Facility::KIND, facility)? else {
        return Ok(Err(invalid("facility", "no facility with this code")));
    };
    let f: Facility = parse(&rec.body)?;
    if f.status != Status::Active {
        return Ok(Err(invalid("facility", "is not active")));
    }
    let Some(p) = f
        .programmes
        .iter()
        .find(|p| p.programme == programme && p.status == Status::Active)
    else {
        return Ok(Err(invalid(
            "facility",
            format!("does not vaccinate in programme {programme}"),
        )));
    };
    let Some(minutes) = minutes_of(&when.time) else {
        return Ok(Err(invalid("time", "must be a time HH:MM")));
    };
    let weekday = when.date.weekday();
    let capacity = p
        .slots
        .iter()
        .filter(|w| w.days.iter().any(|d| d.index() == weekday))
        .find(|w| w.starts().contains(&minutes))
        .map(|w| w.capacity);
    Ok(capacity.ok_or_else(|| {
        invalid(
            "time",
            format!(
                "{facility} has no slot at {} on {} (GET /v1/facilities/{facility}/slots)",
                when.time, when.date
            ),
        )
    }))
}

/// The booking `id`, if it is open and may still be changed `cutoff_ms`
/// before its slot.
fn open_for_change(
    tx: &divoc_storage::Tx<'_>,
    id: &str,
    now: i64,
    cutoff_ms: i64,
) -> divoc_storage::Result<Result<AppointmentRow, RolloutError>> {
    let Some(a) = store::get(&tx.reader(), id)? else {
        return Ok(Err(RolloutError::NotFound(format!("appointment {id}"))));
    };
    if a.status != "booked" {
        return Ok(Err(RolloutError::Conflict(format!(
            "appointment {id} is {}",
            a.status
        ))));
    }
    if now > a.starts_ms - cutoff_ms {
        return Ok(Err(RolloutError::Conflict(format!(
            "a booking can be changed until {} hours before its slot ({})",
            cutoff_ms / 3_600_000,
            divoc_time::format_millis(a.starts_ms - cutoff_ms)
        ))));
    }
    Ok(Ok(a))
}

fn key(a: &AppointmentRow) -> SlotKey<'_> {
    SlotKey {
        facility: &a.facility,
        programme: &a.programme,
        date: &a.date,
        start: &a.start,
    }
}

/// The audit record and event of a change; ids only.
fn log(
    tx: &divoc_storage::Tx<'_>,
    actor: &str,
    what: &str,
    a: &AppointmentRow,
) -> divoc_storage::Result<()> {
    let detail = json!({
        "enrolment": a.enrolment, "programme": a.programme, "facility": a.facility,
        "dose": a.dose, "date": a.date, "time": a.start,
    });
    divoc_storage::audit::append_audit(tx, actor, &format!("appointment.{what}"), &a.id, &detail)?;
    divoc_storage::events::append_event(
        tx,
        &format!("rollout.appointment.{what}"),
        &a.id,
        &detail,
    )?;
    Ok(())
}

fn full(facility: &str, date: &str, time: &str, capacity: u32) -> RolloutError {
    RolloutError::Full(format!(
        "the slot at {facility} on {date} at {time} is full ({capacity} seats)"
    ))
}

fn invalid(field: &str, message: impl Into<String>) -> RolloutError {
    RolloutError::Validation(vec![FieldError::new(field, message)])
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> divoc_storage::Result<T> {
    serde_json::from_str(body)
        .map_err(|e| divoc_storage::StorageError::InvalidArgument(e.to_string()))
}

fn hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60 % 24, minutes % 60)
}

fn new_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("apt_{}", hex::encode(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use divoc_storage::{Database, DbOptions};
    use divoc_time::ManualClock;
    use serde_json::json;
    use std::sync::Arc;

    /// Monday 2026-12-07, 06:00 UTC.
    const MONDAY_6AM: i64 = 1_796_623_200_000;
    const HOUR: i64 = 3_600_000;

    fn service() -> (tempfile::TempDir, Arc<ManualClock>, RolloutService) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let clock = ManualClock::new(MONDAY_6AM);
        let svc = RolloutService::new(db, clock.clone());
        crate::test_support::seed_c19(&svc);
        (dir, clock, svc)
    }

    /// A facility taking appointments in C19 on weekdays, 09:00-11:00 in
    /// slots of 30 minutes with `capacity` seats.
    fn facility(svc: &RolloutService, code: &str, capacity: u32) {
        let f: Facility = serde_json::from_value(json!({
            "code": code, "name": "PHC", "category": "government", "type": "fixed",
            "address": {"line1": "Main Road", "district": "D", "state": "S", "country": "IN"},
            "programmes": [{"programme": "C19", "slots": [{
                "days": ["mon", "tue", "wed", "thu", "fri"], "startTime": "09:00",
                "endTime": "11:00", "minutes": 30, "capacity": capacity
            }]}]
        }))
        .unwrap();
        svc.create(f, "ctl").unwrap();
    }

    fn enrol(svc: &RolloutService, n: usize) -> String {
        let e: Enrolment = serde_json::from_value(json!({
            "programme": "C19", "name": format!("Person {n}"), "dob": "1980-01-01",
            "gender": "Female", "identity": format!("ID-{n}"),
            "address": {"line1": "Road", "district": "D", "state": "S"}
        }))
        .unwrap();
        svc.enrol(e, "ctl").unwrap().record.code
    }

    fn booking(enrolment: &str, facility: &str, date: &str, time: &str) -> Booking {
        Booking {
            enrolment: enrolment.into(),
            facility: facility.into(),
            date: date.into(),
            time: time.into(),
            dose: None,
        }
    }

    #[test]
    fn schedules_expand_into_slots_in_the_window() {
        let (_d, clock, svc) = service();
        facility(&svc, "F1", 2);
        let slots = svc.slots("F1", "C19", None, Some(1)).unwrap();
        let times: Vec<&str> = slots.iter().map(|s| s.time.as_str()).collect();
        assert_eq!(times, ["09:00", "09:30", "10:00", "10:30"]);
        assert_eq!((slots[0].end.as_str(), slots[0].free), ("09:30", 2));
        // The whole window: 14 days ahead, weekdays only (Mon 7 to Mon 21).
        let all = svc.slots("F1", "C19", None, None).unwrap();
        assert_eq!(all.len(), 11 * 4);
        assert!(all.iter().all(|s| s.date.as_str() <= "2026-12-21"));
        // Started slots are gone; other programmes have none.
        clock.set(MONDAY_6AM + 3 * HOUR + 15 * 60_000);
        let later = svc.slots("F1", "C19", None, Some(1)).unwrap();
        assert_eq!(later.len(), 3, "09:00 has started: {later:?}");
        assert!(svc.slots("F1", "OTHER", None, None).unwrap().is_empty());
        assert!(matches!(
            svc.slots("F9", "C19", None, None),
            Err(RolloutError::NotFound(_))
        ));
    }

    #[test]
    fn a_facility_in_its_own_time_zone_books_in_its_local_time() {
        // The deployment is in UTC; F2 is in Kolkata (UTC+05:30), where
        // 06:00 UTC is 11:30: its morning slots have started.
        let (_d, _clock, svc) = service();
        let f: Facility = serde_json::from_value(json!({
            "code": "F2", "name": "PHC", "category": "government", "type": "fixed",
            "timeZone": "Asia/Kolkata",
            "address": {"line1": "Main Road", "district": "D", "state": "S", "country": "IN"},
            "programmes": [{"programme": "C19", "slots": [{
                "days": ["mon"], "startTime": "09:00", "endTime": "13:00",
                "minutes": 60, "capacity": 1
            }]}]
        }))
        .unwrap();
        svc.create(f, "ctl").unwrap();
        let slots = svc.slots("F2", "C19", None, Some(1)).unwrap();
        let times: Vec<&str> = slots.iter().map(|s| s.time.as_str()).collect();
        assert_eq!(times, ["12:00"], "in Kolkata it is 11:30");
        let code = enrol(&svc, 1);
        let refused = svc
            .book(&booking(&code, "F2", "2026-12-07", "11:00"), "ctl")
            .unwrap_err();
        assert!(format!("{refused:?}").contains("started"), "{refused:?}");
        let a = svc
            .book(&booking(&code, "F2", "2026-12-07", "12:00"), "ctl")
            .unwrap();
        assert_eq!(a.starts_at, "2026-12-07T06:30:00Z");
        // An unknown zone is refused naming the field.
        let bad = serde_json::from_value::<Facility>(json!({
            "code": "F3", "name": "PHC", "category": "government", "type": "fixed",
            "timeZone": "Mars/Olympus",
            "address": {"line1": "Main Road", "district": "D", "state": "S", "country": "IN"}
        }))
        .unwrap_err();
        assert!(bad.to_string().contains("Mars/Olympus"), "{bad}");
    }

    #[test]
    fn book_cancel_and_reschedule() {
        let (_d, clock, svc) = service();
        facility(&svc, "F1", 1);
        facility(&svc, "F2", 1);
        let (a, b) = (enrol(&svc, 1), enrol(&svc, 2));
        let first = svc
            .book(&booking(&a, "F1", "2026-12-07", "09:00"), "staff")
            .unwrap();
        assert_eq!((first.status.as_str(), first.dose), ("booked", 1));
        assert_eq!(first.starts_at, "2026-12-07T09:00:00Z");
        // The one seat is taken; the same person cannot book dose 1 twice.
        let e = svc
            .book(&booking(&b, "F1", "2026-12-07", "09:00"), "staff")
            .unwrap_err();
        assert!(matches!(e, RolloutError::Full(_)), "{e}");
        let e = svc
            .book(&booking(&a, "F1", "2026-12-07", "09:30"), "staff")
            .unwrap_err();
        assert!(
            matches!(&e, RolloutError::Duplicate { existing, .. } if *existing == first.id),
            "{e}"
        );
        // Named refusals.
        for (bad, field) in [
            (
                booking("00000000000", "F1", "2026-12-07", "09:30"),
                "enrolment",
            ),
            (booking(&b, "F9", "2026-12-07", "09:30"), "facility"),
            (booking(&b, "F1", "2026-12-07", "09:10"), "time"),
            (booking(&b, "F1", "2026-12-12", "09:00"), "time"),
            (booking(&b, "F1", "2026-12-06", "09:00"), "date"),
            (booking(&b, "F1", "2026-12-22", "09:00"), "date"),
            (booking(&b, "F1", "7 Dec", "09:00"), "date"),
            (booking(&b, "F1", "2026-12-07", "9am"), "time"),
        ] {
            match svc.book(&bad, "staff") {
                Err(RolloutError::Validation(f)) => assert_eq!(f[0].field, field, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // Moving frees the old seat, which b then takes.
        let to_f2 = Reschedule {
            facility: Some("F2".into()),
            date: "2026-12-08".into(),
            time: "10:00".into(),
        };
        let moved = svc.reschedule(&first.id, &to_f2, "staff", false).unwrap();
        assert_eq!(
            (
                moved.facility.as_str(),
                moved.date.as_str(),
                moved.reschedules
            ),
            ("F2", "2026-12-08", 1)
        );
        svc.book(&booking(&b, "F1", "2026-12-07", "09:00"), "staff")
            .unwrap();
        // A full slot leaves the booking where it was.
        let back = Reschedule {
            facility: Some("F1".into()),
            date: "2026-12-07".into(),
            time: "09:00".into(),
        };
        assert!(matches!(
            svc.reschedule(&first.id, &back, "staff", false),
            Err(RolloutError::Full(_))
        ));
        assert_eq!(svc.appointment(&first.id).unwrap().facility, "F2");
        // Two moves at most (the default limit).
        let again = Reschedule {
            facility: None,
            date: "2026-12-08".into(),
            time: "10:30".into(),
        };
        svc.reschedule(&first.id, &again, "staff", false).unwrap();
        let e = svc
            .reschedule(&first.id, &to_f2, "staff", false)
            .unwrap_err();
        assert!(matches!(e, RolloutError::Conflict(_)), "{e}");
        // A recipient cannot cancel within 2 hours of the slot; staff can.
        clock.set(MONDAY_6AM + 26 * HOUR + 45 * 60_000); // Tue 08:45
        let e = svc
            .cancel_appointment(&first.id, "recipient", true)
            .unwrap_err();
        assert!(
            matches!(&e, RolloutError::Conflict(m) if m.contains("2 hours")),
            "{e}"
        );
        let cancelled = svc.cancel_appointment(&first.id, "staff", false).unwrap();
        assert_eq!(cancelled.status, "cancelled");
        assert!(matches!(
            svc.cancel_appointment(&first.id, "staff", false),
            Err(RolloutError::Conflict(_))
        ));
        // Its seat is free again: Tue 10:30 at F2 has its one seat.
        let slots = svc.slots("F2", "C19", Some("2026-12-08"), Some(1)).unwrap();
        let s = slots.iter().find(|s| s.time == "10:30").unwrap();
        assert_eq!((s.booked, s.free), (0, 1));
        // The person's appointments, and the facility's day with names.
        assert_eq!(svc.appointments_of(&a).unwrap().len(), 1);
        let day = svc.day("F1", Some("2026-12-07")).unwrap();
        assert_eq!(day.len(), 1);
        assert_eq!(
            (day[0].name.as_str(), day[0].appointment.enrolment.as_str()),
            ("Person 2", b.as_str())
        );
    }

    #[test]
    fn a_thousand_concurrent_bookings_for_a_hundred_seats() {
        let (_d, _clock, svc) = service();
        facility(&svc, "F1", 100);
        let header = "phone,identity,nationality,dob,gender,name,email,addressLine1,addressLine2,district,state,pincode\n";
        let mut csv = String::from(header);
        for i in 0..1000 {
            csv.push_str(&format!(
                "9{i:09},ID-{i},Indian,1980-01-01,Female,Person {i},,Road,,D,S,560001\n"
            ));
        }
        let options = crate::UploadOptions {
            country: None,
            programme: Some("C19".into()),
        };
        let r = svc
            .upload(
                crate::UploadKind::Enrolments,
                csv.as_bytes(),
                &options,
                "ctl",
            )
            .unwrap();
        assert_eq!(r.created, 1000);
        let codes: Vec<String> = {
            let mut codes = Vec::new();
            let mut filter = crate::ListFilter::default();
            loop {
                let page = svc.list::<Enrolment>(&filter, 1000).unwrap();
                codes.extend(page.items.into_iter().map(|s| s.record.code));
                match page.next_cursor {
                    Some(c) => filter.after = Some(c.parse().unwrap()),
                    None => break,
                }
            }
            codes
        };
        assert_eq!(codes.len(), 1000);
        let start = Arc::new(std::sync::Barrier::new(50));
        let threads: Vec<_> = codes
            .chunks(20)
            .map(|chunk| {
                let (svc, start, chunk) = (svc.clone(), start.clone(), chunk.to_vec());
                std::thread::spawn(move || {
                    start.wait();
                    chunk
                        .iter()
                        .map(|code| svc.book(&booking(code, "F1", "2026-12-07", "09:00"), "staff"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let booked = results.iter().filter(|r| r.is_ok()).count();
        let full = results
            .iter()
            .filter(|r| matches!(r, Err(RolloutError::Full(_))))
            .count();
        assert_eq!((booked, full), (100, 900));
        let slot = &svc.slots("F1", "C19", Some("2026-12-07"), Some(1)).unwrap()[0];
        assert_eq!((slot.booked, slot.free), (100, 0));
        assert_eq!(svc.day("F1", Some("2026-12-07")).unwrap().len(), 100);
    }
}
