//! Appointments and the seats their slots have taken. What a slot is (its
//! times and capacity) is `host/rollout`'s, from the facility's schedule.

use crate::sql::{params, Optional, Row};

use crate::db::{Reader, Tx};
use crate::error::Result;

/// One appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentRow {
    /// `apt_…`.
    pub id: String,
    /// The enrolment code.
    pub enrolment: String,
    /// The programme.
    pub programme: String,
    /// The facility.
    pub facility: String,
    /// Which dose it is for (1 = the first).
    pub dose: i64,
    /// The facility's local date, `YYYY-MM-DD`.
    pub date: String,
    /// The slot's local start, `HH:MM`.
    pub start: String,
    /// The slot's start, ms since the epoch.
    pub starts_ms: i64,
    /// `booked`, `cancelled` or `done`.
    pub status: String,
    /// Times it was moved.
    pub reschedules: i64,
    /// Who made the last change.
    pub actor: String,
    /// When it was booked.
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
}

const COLUMNS: &str = "id, enrolment, programme, facility, dose, date, start, starts_ms, status, \
                       reschedules, actor, created_ms, updated_ms";

fn row(r: &Row<'_>) -> crate::sql::SqlResult<AppointmentRow> {
    Ok(AppointmentRow {
        id: r.get(0)?,
        enrolment: r.get(1)?,
        programme: r.get(2)?,
        facility: r.get(3)?,
        dose: r.get(4)?,
        date: r.get(5)?,
        start: r.get(6)?,
        starts_ms: r.get(7)?,
        status: r.get(8)?,
        reschedules: r.get(9)?,
        actor: r.get(10)?,
        created_ms: r.get(11)?,
        updated_ms: r.get(12)?,
    })
}

/// A slot: `(facility, programme, date, start)`.
#[derive(Debug, Clone, Copy)]
pub struct SlotKey<'a> {
    /// Facility code.
    pub facility: &'a str,
    /// Programme code.
    pub programme: &'a str,
    /// Local date, `YYYY-MM-DD`.
    pub date: &'a str,
    /// Local start, `HH:MM`.
    pub start: &'a str,
}

/// Takes a seat of the slot if fewer than `capacity` are taken: `true` if
/// it did. One statement in the writer's transaction, so concurrent
/// bookings cannot both take the last seat.
pub fn take_seat(tx: &Tx<'_>, slot: SlotKey<'_>, capacity: i64) -> Result<bool> {
    if capacity < 1 {
        return Ok(false);
    }
    let changed = tx
        .conn()
        .prepare_cached(
            "INSERT INTO slot_seats (facility, programme, date, start, booked)
             VALUES (?1, ?2, ?3, ?4, 1)
             ON CONFLICT (facility, programme, date, start)
             DO UPDATE SET booked = slot_seats.booked + 1 WHERE slot_seats.booked < ?5",
        )?
        .execute(params![
            slot.facility,
            slot.programme,
            slot.date,
            slot.start,
            capacity
        ])?;
    Ok(changed == 1)
}

/// Gives a seat of the slot back.
pub fn free_seat(tx: &Tx<'_>, slot: SlotKey<'_>) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE slot_seats SET booked = booked - 1
              WHERE facility = ?1 AND programme = ?2 AND date = ?3 AND start = ?4
                AND booked > 0",
        )?
        .execute(params![
            slot.facility,
            slot.programme,
            slot.date,
            slot.start
        ])?;
    Ok(())
}

/// Seats taken in a facility's slots of a programme from `from` to `to`
/// (dates, inclusive): `(date, start, booked)` in time order.
pub fn seats(
    r: &Reader<'_>,
    facility: &str,
    programme: &str,
    from: &str,
    to: &str,
) -> Result<Vec<(String, String, i64)>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT date, start, booked FROM slot_seats
          WHERE facility = ?1 AND programme = ?2 AND date BETWEEN ?3 AND ?4
          ORDER BY date, start",
    )?;
    let rows = stmt.query_map(params![facility, programme, from, to], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

/// Stores a new appointment. `false` (nothing stored) if the person has an
/// open booking for that programme and dose already.
pub fn insert(tx: &Tx<'_>, a: &AppointmentRow) -> Result<bool> {
    let changed = tx
        .conn()
        .prepare_cached(&format!(
            "INSERT INTO appointments ({COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT DO NOTHING"
        ))?
        .execute(params![
            a.id,
            a.enrolment,
            a.programme,
            a.facility,
            a.dose,
            a.date,
            a.start,
            a.starts_ms,
            a.status,
            a.reschedules,
            a.actor,
            a.created_ms,
            a.updated_ms
        ])?;
    Ok(changed == 1)
}

/// Replaces an appointment's changing parts (slot, status, reschedules,
/// actor, updated time).
pub fn update(tx: &Tx<'_>, a: &AppointmentRow) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE appointments
                SET facility = ?2, date = ?3, start = ?4, starts_ms = ?5, status = ?6,
                    reschedules = ?7, actor = ?8, updated_ms = ?9
              WHERE id = ?1",
        )?
        .execute(params![
            a.id,
            a.facility,
            a.date,
            a.start,
            a.starts_ms,
            a.status,
            a.reschedules,
            a.actor,
            a.updated_ms
        ])?;
    Ok(())
}

/// The appointment with this id.
pub fn get(r: &Reader<'_>, id: &str) -> Result<Option<AppointmentRow>> {
    Ok(r.conn()
        .prepare_cached(&format!("SELECT {COLUMNS} FROM appointments WHERE id = ?1"))?
        .query_row(params![id], row)
        .optional()?)
}

/// The open booking of a person for a programme and dose.
pub fn open_booking(
    r: &Reader<'_>,
    enrolment: &str,
    programme: &str,
    dose: i64,
) -> Result<Option<AppointmentRow>> {
    // The partial index holds exactly the open bookings; SQLite is told
    // to use it, PostgreSQL picks it from the matching predicate.
    let index = match r.conn().dialect() {
        crate::sql::Dialect::Sqlite => " INDEXED BY appointments_open",
        crate::sql::Dialect::Postgres => "",
    };
    Ok(r.conn()
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM appointments{index}
              WHERE enrolment = ?1 AND programme = ?2 AND dose = ?3 AND status = 'booked'"
        ))?
        .query_row(params![enrolment, programme, dose], row)
        .optional()?)
}

/// A facility's appointments on a date (all states), in time order, up to
/// `limit`, after the appointment `after` (`(start, id)`) if given.
pub fn day(
    r: &Reader<'_>,
    facility: &str,
    date: &str,
    after: Option<(&str, &str)>,
    limit: usize,
) -> Result<Vec<AppointmentRow>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (after_start, after_id) = after.unwrap_or(("", ""));
    let mut stmt = r.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM appointments
          WHERE facility = ?1 AND date = ?2 AND (start, id) > (?3, ?4)
          ORDER BY start, id LIMIT ?5"
    ))?;
    let rows = stmt.query_map(params![facility, date, after_start, after_id, limit], row)?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

/// A person's appointments, oldest first.
pub fn of_enrolment(r: &Reader<'_>, enrolment: &str) -> Result<Vec<AppointmentRow>> {
    let mut stmt = r.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM appointments WHERE enrolment = ?1 ORDER BY created_ms, id"
    ))?;
    let rows = stmt.query_map(params![enrolment], row)?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Database, DbOptions};

    fn slot() -> SlotKey<'static> {
        SlotKey {
            facility: "F1",
            programme: "C19",
            date: "2026-12-07",
            start: "09:00",
        }
    }

    fn booking(id: &str, enrolment: &str) -> AppointmentRow {
        AppointmentRow {
            id: id.into(),
            enrolment: enrolment.into(),
            programme: "C19".into(),
            facility: "F1".into(),
            dose: 1,
            date: "2026-12-07".into(),
            start: "09:00".into(),
            starts_ms: 1,
            status: "booked".into(),
            reschedules: 0,
            actor: "t".into(),
            created_ms: 1,
            updated_ms: 1,
        }
    }

    #[test]
    fn seats_are_taken_up_to_capacity_and_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let take = |cap| {
            db.write(move |tx| take_seat(tx, slot(), cap))
                .wait()
                .unwrap()
        };
        assert!(take(2));
        assert!(take(2));
        assert!(!take(2), "full");
        assert!(!take(0), "no seats at all");
        db.write(|tx| free_seat(tx, slot())).wait().unwrap();
        assert!(take(2), "a seat given back is taken again");
        let seats = db
            .read(|r| seats(r, "F1", "C19", "2026-12-01", "2026-12-31"))
            .unwrap();
        assert_eq!(seats, [("2026-12-07".into(), "09:00".into(), 2)]);
    }

    #[test]
    fn one_open_booking_per_person_and_dose() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let put = |a: AppointmentRow| db.write(move |tx| insert(tx, &a)).wait().unwrap();
        assert!(put(booking("apt_1", "E1")));
        assert!(!put(booking("apt_2", "E1")), "a second open booking");
        let mut done = db.read(|r| get(r, "apt_1")).unwrap().unwrap();
        done.status = "cancelled".into();
        let cancelled = done.clone();
        db.write(move |tx| update(tx, &cancelled)).wait().unwrap();
        assert!(put(booking("apt_2", "E1")), "after cancelling, again");
        let open = db.read(|r| open_booking(r, "E1", "C19", 1)).unwrap();
        assert_eq!(open.map(|a| a.id).as_deref(), Some("apt_2"));
        let all = db.read(|r| day(r, "F1", "2026-12-07", None, 10)).unwrap();
        assert_eq!(all.len(), 2);
        let rest = db
            .read(|r| day(r, "F1", "2026-12-07", Some(("09:00", "apt_1")), 10))
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(db.read(|r| of_enrolment(r, "E1")).unwrap().len(), 2);
    }
}
