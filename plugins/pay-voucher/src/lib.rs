//! Payment provider for prepaid vouchers.
//!
//! Configuration: `vouchers = { "CODE" = { amount = 50000, currency = "INR" } }`.
//! The voucher code is the charge's `description` (optionally prefixed
//! `voucher:`). `authorize` reserves the amount against the voucher's
//! balance, `capture` settles it (releasing any excess), `refund` returns it.
//! Every step is idempotent by the host's charge reference, which is also the
//! provider reference.

use std::collections::BTreeMap;

use divoc_sdk::payment::{Charge, Guest, PaymentStatus, Receipt};
use divoc_sdk::{config, kv, Error, Money};
use serde::{Deserialize, Serialize};

const MODE: &str = "voucher";

#[derive(Debug, Clone, Deserialize)]
pub struct Voucher {
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub vouchers: BTreeMap<String, Voucher>,
}

/// Minor units of a voucher already reserved or captured.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct VoucherState {
    pub used: i64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub enum Status {
    Authorized,
    Captured,
    Refunded,
}

/// One charge, keyed by its reference.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChargeState {
    pub code: String,
    pub currency: String,
    /// Reserved on authorize, settled on capture, returned on refund.
    pub amount: i64,
    pub status: Status,
}

/// Where state lives: kv in the plugin, a map in tests.
pub trait Store {
    fn load<T: for<'de> Deserialize<'de>>(&mut self, key: &str) -> Result<Option<T>, Error>;
    fn save<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), Error>;
}

struct Kv;

impl Store for Kv {
    fn load<T: for<'de> Deserialize<'de>>(&mut self, key: &str) -> Result<Option<T>, Error> {
        kv::get_json(key)
    }
    fn save<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        kv::set_json(key, value)
    }
}

fn voucher_key(code: &str) -> String {
    format!("voucher/{code}")
}

fn charge_key(reference: &str) -> String {
    format!("charge/{reference}")
}

/// The voucher code carried by a charge description.
pub fn voucher_code(description: &str) -> &str {
    let d = description.trim();
    d.strip_prefix("voucher:").map(str::trim).unwrap_or(d)
}

fn receipt(reference: &str, c: &ChargeState) -> Receipt {
    Receipt {
        provider_reference: reference.to_string(),
        status: match c.status {
            Status::Authorized => PaymentStatus::Authorized,
            Status::Captured => PaymentStatus::Captured,
            Status::Refunded => PaymentStatus::Refunded,
        },
        amount: Money {
            currency: c.currency.clone(),
            minor_units: c.amount,
        },
        mode: MODE.to_string(),
    }
}

fn adjust(store: &mut impl Store, code: &str, delta: i64) -> Result<(), Error> {
    let mut v: VoucherState = store.load(&voucher_key(code))?.unwrap_or_default();
    v.used = v.used.saturating_add(delta).max(0);
    store.save(&voucher_key(code), &v)
}

pub fn authorize(cfg: &Config, store: &mut impl Store, charge: &Charge) -> Result<Receipt, Error> {
    if charge.mode != MODE {
        return Err(Error::invalid_input(format!(
            "unsupported payment mode {}",
            divoc_sdk::quote(&charge.mode)
        )));
    }
    if let Some(existing) = store.load::<ChargeState>(&charge_key(&charge.reference))? {
        // Idempotent: the same reference is never charged twice.
        return Ok(receipt(&charge.reference, &existing));
    }
    if charge.amount.minor_units <= 0 {
        return Err(Error::invalid_input("the amount must be positive"));
    }
    let code = voucher_code(&charge.description);
    let voucher = cfg
        .vouchers
        .get(code)
        .ok_or_else(|| Error::rejected("unknown voucher"))?;
    if voucher.currency != charge.amount.currency {
        return Err(Error::rejected(format!(
            "the voucher is in {}, not {}",
            voucher.currency, charge.amount.currency
        )));
    }
    let state: VoucherState = store.load(&voucher_key(code))?.unwrap_or_default();
    let remaining = voucher.amount - state.used;
    if charge.amount.minor_units > remaining {
        return Err(Error::rejected(format!(
            "the voucher has {remaining} {} left",
            voucher.currency
        )));
    }
    adjust(store, code, charge.amount.minor_units)?;
    let c = ChargeState {
        code: code.to_string(),
        currency: voucher.currency.clone(),
        amount: charge.amount.minor_units,
        status: Status::Authorized,
    };
    store.save(&charge_key(&charge.reference), &c)?;
    Ok(receipt(&charge.reference, &c))
}

fn load_charge(
    store: &mut impl Store,
    reference: &str,
    amount: &Money,
) -> Result<ChargeState, Error> {
    let c: ChargeState = store
        .load(&charge_key(reference))?
        .ok_or_else(|| Error::invalid_input(format!("unknown provider reference {reference:?}")))?;
    if amount.currency != c.currency {
        return Err(Error::invalid_input(format!(
            "the charge is in {}, not {}",
            c.currency, amount.currency
        )));
    }
    if amount.minor_units < 0 || amount.minor_units > c.amount {
        return Err(Error::invalid_input(format!(
            "the amount must be between 0 and {}",
            c.amount
        )));
    }
    Ok(c)
}

pub fn capture(store: &mut impl Store, reference: &str, amount: &Money) -> Result<Receipt, Error> {
    let mut c = load_charge(store, reference, amount)?;
    match c.status {
        Status::Captured => return Ok(receipt(reference, &c)),
        Status::Refunded => return Err(Error::rejected("the charge was refunded")),
        Status::Authorized => {}
    }
    // Release what is not captured.
    adjust(store, &c.code, amount.minor_units - c.amount)?;
    c.amount = amount.minor_units;
    c.status = Status::Captured;
    store.save(&charge_key(reference), &c)?;
    Ok(receipt(reference, &c))
}

pub fn refund(store: &mut impl Store, reference: &str, amount: &Money) -> Result<Receipt, Error> {
    let mut c = load_charge(store, reference, amount)?;
    if c.status == Status::Refunded {
        return Ok(receipt(reference, &c));
    }
    adjust(store, &c.code, -c.amount)?;
    c.status = Status::Refunded;
    store.save(&charge_key(reference), &c)?;
    let mut r = receipt(reference, &c);
    r.amount.minor_units = amount.minor_units;
    Ok(r)
}

struct Plugin;

impl Guest for Plugin {
    fn modes() -> Vec<String> {
        vec![MODE.to_string()]
    }

    fn authorize(charge: Charge) -> Result<Receipt, Error> {
        authorize(&config::load()?, &mut Kv, &charge)
    }

    fn capture(provider_reference: String, amount: Money) -> Result<Receipt, Error> {
        capture(&mut Kv, &provider_reference, &amount)
    }

    fn refund(
        provider_reference: String,
        amount: Money,
        _reason: String,
    ) -> Result<Receipt, Error> {
        refund(&mut Kv, &provider_reference, &amount)
    }
}

divoc_sdk::export_payment_provider!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Mem(HashMap<String, Vec<u8>>);

    impl Store for Mem {
        fn load<T: for<'de> Deserialize<'de>>(&mut self, key: &str) -> Result<Option<T>, Error> {
            Ok(self.0.get(key).map(|v| serde_json::from_slice(v).unwrap()))
        }
        fn save<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), Error> {
            self.0
                .insert(key.to_string(), serde_json::to_vec(value).unwrap());
            Ok(())
        }
    }

    fn cfg() -> Config {
        config::parse(r#"{"vouchers": {"GIFT-1": {"amount": 1000, "currency": "INR"}}}"#).unwrap()
    }

    fn inr(n: i64) -> Money {
        Money {
            currency: "INR".into(),
            minor_units: n,
        }
    }

    fn charge(reference: &str, amount: i64) -> Charge {
        Charge {
            reference: reference.into(),
            mode: MODE.into(),
            amount: inr(amount),
            program: "covid-19".into(),
            description: "voucher: GIFT-1".into(),
        }
    }

    fn used(s: &mut Mem) -> i64 {
        s.load::<VoucherState>("voucher/GIFT-1")
            .unwrap()
            .unwrap_or_default()
            .used
    }

    #[test]
    fn authorize_is_idempotent_and_reserves() {
        let mut s = Mem::default();
        let r = authorize(&cfg(), &mut s, &charge("c1", 600)).unwrap();
        assert!(matches!(r.status, PaymentStatus::Authorized));
        authorize(&cfg(), &mut s, &charge("c1", 600)).unwrap();
        assert_eq!(used(&mut s), 600);
        let err = authorize(&cfg(), &mut s, &charge("c2", 600)).unwrap_err();
        assert!(matches!(err, Error::Rejected(m) if m.contains("400")));
    }

    #[test]
    fn capture_releases_excess_and_refund_returns() {
        let mut s = Mem::default();
        authorize(&cfg(), &mut s, &charge("c1", 600)).unwrap();
        let r = capture(&mut s, "c1", &inr(500)).unwrap();
        assert!(matches!(r.status, PaymentStatus::Captured));
        assert_eq!(used(&mut s), 500);
        capture(&mut s, "c1", &inr(500)).unwrap();
        assert_eq!(used(&mut s), 500);
        let r = refund(&mut s, "c1", &inr(500)).unwrap();
        assert!(matches!(r.status, PaymentStatus::Refunded));
        refund(&mut s, "c1", &inr(500)).unwrap();
        assert_eq!(used(&mut s), 0);
        assert!(capture(&mut s, "c1", &inr(500)).is_err());
    }

    #[test]
    fn rejects_unknown_voucher_and_currency() {
        let mut s = Mem::default();
        let mut c = charge("c1", 100);
        c.description = "NOPE".into();
        assert!(matches!(
            authorize(&cfg(), &mut s, &c),
            Err(Error::Rejected(_))
        ));
        let mut c = charge("c2", 100);
        c.amount.currency = "USD".into();
        assert!(matches!(
            authorize(&cfg(), &mut s, &c),
            Err(Error::Rejected(_))
        ));
        assert!(matches!(
            capture(&mut s, "zzz", &inr(1)),
            Err(Error::InvalidInput(_))
        ));
    }
}
