//! A recipient signs in with a one-time code sent to their phone.
//!
//! The code (6 digits from the OS's CSPRNG) goes out through the
//! distribution channels: it waits in the outbox with the number until it is
//! delivered, as every notice does. What checks it is kept apart: HMACs of
//! the number and the code under the person key, for [`CODE_TTL_MS`]. The
//! service answers at most one request per number every [`RESEND_MS`] and
//! [`CODES_A_DAY`] a day, and a code is spent after [`MAX_TRIES`] wrong
//! tries (a new one still waits [`RESEND_MS`]). A right code proves the
//! number: the API then gives a recipient token for it. (A cap across
//! numbers, against a flood of the public route, is admission control's.)

use serde::Serialize;
use serde_json::json;

use divoc_storage::otp::{self as store, Check};

use crate::enrolment::phone_digits;
use crate::error::{FieldError, RolloutError};
use crate::service::RolloutService;

/// How long a code is good for.
pub const CODE_TTL_MS: i64 = 5 * 60_000;
/// The least time between two codes for one number.
pub const RESEND_MS: i64 = 30_000;
/// Wrong tries before a code is spent.
pub const MAX_TRIES: i64 = 5;
/// Codes one number may be sent in a day.
pub const CODES_A_DAY: i64 = 10;

/// The write's refusal when the day's codes are used up.
const DAY_USED_UP: &str = "the day's codes are used up";

/// A code sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OtpSent {
    /// Until when it is good (RFC 3339).
    pub expires_at: String,
}

impl RolloutService {
    /// Sends a sign-in code to `phone` (through the outbox). 429 within
    /// [`RESEND_MS`] of the last one.
    pub fn send_otp(&self, phone: &str) -> Result<OtpSent, RolloutError> {
        let digits = number(phone)?;
        let now = self.clock().now_ms();
        let code = {
            use rand::Rng as _;
            let n: u32 = rand::rngs::OsRng.gen_range(0..1_000_000);
            format!("{n:06}")
        };
        let key = self.person_key();
        let contact = crate::enrolment::keyed(&key[..], &["otp", &digits]);
        let hashed = crate::enrolment::keyed(&key[..], &["otp-code", &digits, &code]);
        let payload = json!({
            "template": "otp",
            "recipient_name": "",
            "contacts": [format!("tel:{digits}")],
            "subject": "otp",
            "variables": {"code": code, "minutes": (CODE_TTL_MS / 60_000).to_string()},
        });
        let day = divoc_time::Date::in_zone(now, self.zone()).to_string();
        let sent = self
            .db()
            .write(move |tx| {
                if !store::put(tx, &contact, &hashed, now, CODE_TTL_MS, RESEND_MS)? {
                    return Ok(false);
                }
                let scope = format!("otp:{contact}");
                if divoc_storage::vaccinations::count_up(tx, &scope, &day, Some(CODES_A_DAY))?
                    .is_none()
                {
                    // Undoes the code just kept: none goes out today.
                    return Err(divoc_storage::StorageError::Rejected(DAY_USED_UP.into()));
                }
                divoc_storage::outbox::enqueue(
                    tx,
                    divoc_storage::outbox::NOTIFY,
                    divoc_storage::outbox::NOTIFY_UNROUTED,
                    &payload,
                    now,
                )?;
                Ok(true)
            })
            .wait();
        let sent = match sent {
            Err(divoc_storage::StorageError::Rejected(m)) if m == DAY_USED_UP => {
                return Err(RolloutError::TooSoon(format!(
                    "this number was sent {CODES_A_DAY} codes today, the most a day"
                )))
            }
            other => other?,
        };
        if !sent {
            return Err(RolloutError::TooSoon(format!(
                "a code was sent to this number less than {} seconds ago",
                RESEND_MS / 1000
            )));
        }
        Ok(OtpSent {
            expires_at: divoc_time::format_millis(now + CODE_TTL_MS),
        })
    }

    /// Checks a sign-in code: the proven contact (`tel:<digits>`), or a
    /// refusal naming `code`.
    pub fn verify_otp(&self, phone: &str, code: &str) -> Result<String, RolloutError> {
        let digits = number(phone)?;
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("code", "must be the 6 digits sent"));
        }
        let key = self.person_key();
        let contact = crate::enrolment::keyed(&key[..], &["otp", &digits]);
        let hashed = crate::enrolment::keyed(&key[..], &["otp-code", &digits, code]);
        let now = self.clock().now_ms();
        let check = self
            .db()
            .write(move |tx| store::check(tx, &contact, &hashed, now, MAX_TRIES))
            .wait()?;
        match check {
            Check::Right => Ok(format!("tel:{digits}")),
            Check::Wrong { left } => Err(invalid("code", format!("wrong code; {left} tries left"))),
            Check::Spent => Err(invalid(
                "code",
                "wrong code, and no tries left: ask for a new one",
            )),
            Check::Missing => Err(invalid(
                "code",
                "no code is waiting for this number: ask for one",
            )),
        }
    }
}

/// The ten digits of a phone number, or a refusal naming `phone`.
fn number(phone: &str) -> Result<String, RolloutError> {
    let digits = phone_digits(phone);
    if digits.len() < 10 {
        return Err(invalid(
            "phone",
            "must be a phone number (10 digits or more)",
        ));
    }
    Ok(digits)
}

fn invalid(field: &str, message: impl Into<String>) -> RolloutError {
    RolloutError::Validation(vec![FieldError::new(field, message)])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use divoc_storage::{Database, DbOptions};
    use divoc_time::ManualClock;

    #[test]
    fn a_code_goes_out_and_proves_the_number_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let clock = ManualClock::new(1_700_000_000_000);
        let svc = RolloutService::new(db, clock.clone()).with_person_key([7; 32]);
        svc.send_otp("+91 98765 43210").unwrap();
        let e = svc.send_otp("9876543210").unwrap_err();
        assert!(matches!(e, RolloutError::TooSoon(_)), "{e}");
        // The code as the distribution channel gets it.
        let notices = svc
            .db()
            .read(|r| divoc_storage::outbox::list(r, divoc_storage::OutboxStatus::Pending, 10))
            .unwrap();
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].payload["template"], "otp");
        assert_eq!(notices[0].payload["contacts"][0], "tel:9876543210");
        let code = notices[0].payload["variables"]["code"]
            .as_str()
            .unwrap()
            .to_owned();
        let wrong = if code == "000000" { "000001" } else { "000000" };
        let e = svc.verify_otp("9876543210", wrong).unwrap_err();
        assert!(
            matches!(&e, RolloutError::Validation(f) if f[0].message.contains("4 tries")),
            "{e}"
        );
        assert_eq!(
            svc.verify_otp("+919876543210", &code).unwrap(),
            "tel:9876543210"
        );
        assert!(svc.verify_otp("9876543210", &code).is_err(), "used up");
        // Expired codes do not prove anything.
        clock.advance(RESEND_MS);
        svc.send_otp("9876543210").unwrap();
        clock.advance(CODE_TTL_MS);
        let notices = svc
            .db()
            .read(|r| divoc_storage::outbox::list(r, divoc_storage::OutboxStatus::Pending, 10))
            .unwrap();
        let code = notices[1].payload["variables"]["code"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(svc.verify_otp("9876543210", &code).is_err());
        // Ten codes a day, however the tries go.
        for _ in 2..10 {
            clock.advance(RESEND_MS);
            svc.send_otp("9876543210").unwrap();
        }
        clock.advance(RESEND_MS);
        let e = svc.send_otp("9876543210").unwrap_err();
        assert!(
            matches!(&e, RolloutError::TooSoon(m) if m.contains("10 codes")),
            "{e}"
        );
        assert!(matches!(
            svc.send_otp("12345"),
            Err(RolloutError::Validation(f)) if f[0].field == "phone"
        ));
    }
}
