//! Payment provider for government-funded vaccination.
//!
//! No money moves: `authorize` records that a funder (the ministry, a state
//! scheme) pays for the dose, `capture` marks the record captured and
//! `refund` marks it refunded. Records live in kv, keyed by the host's
//! idempotency reference, so the same reference always gives the same
//! receipt and is never recorded twice. See README.md for the configuration.

use divoc_sdk::payment::{Charge, Guest, PaymentStatus, Receipt};
use divoc_sdk::{clock, config, kv, quote, Error, Money};
use serde::{Deserialize, Serialize};

/// The mode served when the configuration names none.
pub const DEFAULT_MODE: &str = "government";
/// The funder recorded when the configuration names none.
pub const DEFAULT_FUNDER: &str = "government";
/// Longest host reference accepted. The host's references are
/// `divoc-<32 hex>`; the bound keeps kv keys far below the host's 512 bytes.
const MAX_REFERENCE: usize = 200;
/// Longest programme id recorded, so a huge input cannot bloat kv.
const MAX_PROGRAM: usize = 128;
/// Longest funder slug carried in provider references.
const MAX_SLUG: usize = 48;

/// The plugin's configuration section. Keys are accepted in snake case (as
/// documented) and kebab case (as `DIVOC_PLUGINS__CONFIG__...` environment
/// overrides deliver them).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Payment modes this provider serves.
    pub modes: Vec<String>,
    /// Who pays, e.g. "Ministry of Health"; recorded with every charge and
    /// (as a slug) in the provider reference.
    pub funder: String,
    /// Programmes the funder pays for; empty: every programme.
    pub programs: Vec<String>,
    /// `false` records amounts as zero (the dose is free to everyone).
    #[serde(alias = "record-amount")]
    pub record_amount: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            modes: vec![DEFAULT_MODE.to_string()],
            funder: DEFAULT_FUNDER.to_string(),
            programs: Vec::new(),
            record_amount: true,
        }
    }
}

impl Config {
    /// The declared modes, trimmed, without blanks or duplicates; the
    /// default when none is left (the contract wants at least one).
    pub fn modes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in &self.modes {
            let m = m.trim();
            if !m.is_empty() && !out.iter().any(|o| o == m) {
                out.push(m.to_string());
            }
        }
        if out.is_empty() {
            out.push(DEFAULT_MODE.to_string());
        }
        out
    }

    fn funder(&self) -> &str {
        match self.funder.trim() {
            "" => DEFAULT_FUNDER,
            f => f,
        }
    }

    fn funds(&self, program: &str) -> bool {
        self.programs.is_empty() || self.programs.iter().any(|p| p.trim() == program)
    }
}

/// The funder as it appears in provider references: lower-case ASCII
/// letters, digits and single dashes, so that the reference can be split
/// at its first `:` again.
pub fn funder_slug(funder: &str) -> String {
    let mut slug = String::new();
    for c in funder.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= MAX_SLUG {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        DEFAULT_FUNDER.to_string()
    } else {
        slug.to_string()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Authorized,
    Captured,
    Refunded,
}

/// One recorded charge, under `charge/<reference>`. Holds no personal data:
/// the host's reference is a keyed hash and the charge description (which
/// may carry the recipient's scheme card number) is not kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub provider_reference: String,
    pub funder: String,
    pub mode: String,
    pub program: String,
    pub currency: String,
    /// What the host asked for, to recognise a retried charge.
    pub requested: i64,
    /// What was recorded: `requested`, or zero with `record_amount = false`.
    pub amount: i64,
    pub status: Status,
    /// Amount captured, once captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<i64>,
    /// Amount refunded, once refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<i64>,
    /// Unix seconds of each step, for the ministry's reconciliation.
    pub authorized_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<u64>,
}

/// Where records live: kv in the plugin, a map in tests.
pub trait Store {
    fn load(&mut self, key: &str) -> Result<Option<Record>, Error>;
    fn save(&mut self, key: &str, record: &Record) -> Result<(), Error>;
}

struct Kv;

impl Store for Kv {
    fn load(&mut self, key: &str) -> Result<Option<Record>, Error> {
        kv::get_json(key)
    }
    fn save(&mut self, key: &str, record: &Record) -> Result<(), Error> {
        kv::set_json(key, record)
    }
}

fn charge_key(reference: &str) -> String {
    format!("charge/{reference}")
}

/// Whether `reference` can be a host reference: 1 to 200 visible ASCII
/// characters. Anything else was never recorded, so it is refused before kv.
fn valid_reference(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= MAX_REFERENCE
        && reference.bytes().all(|b| b.is_ascii_graphic())
}

/// An ISO 4217 code: three upper-case ASCII letters.
fn valid_currency(currency: &str) -> bool {
    currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())
}

fn receipt(r: &Record) -> Receipt {
    let amount = match r.status {
        Status::Authorized => r.amount,
        Status::Captured => r.captured.unwrap_or(r.amount),
        Status::Refunded => r.refunded.unwrap_or(r.amount),
    };
    Receipt {
        provider_reference: r.provider_reference.clone(),
        status: match r.status {
            Status::Authorized => PaymentStatus::Authorized,
            Status::Captured => PaymentStatus::Captured,
            Status::Refunded => PaymentStatus::Refunded,
        },
        amount: Money {
            currency: r.currency.clone(),
            minor_units: amount,
        },
        mode: r.mode.clone(),
    }
}

/// Records a charge, or returns the receipt of the one already recorded
/// under the same reference.
pub fn authorize(
    cfg: &Config,
    store: &mut impl Store,
    charge: &Charge,
    now: u64,
) -> Result<Receipt, Error> {
    if !cfg.modes().contains(&charge.mode) {
        return Err(Error::invalid_input(format!(
            "unsupported payment mode {}",
            quote(&charge.mode)
        )));
    }
    if !valid_reference(&charge.reference) {
        return Err(Error::invalid_input(
            "the charge reference must be 1 to 200 visible ASCII characters",
        ));
    }
    if !valid_currency(&charge.amount.currency) {
        return Err(Error::invalid_input(format!(
            "{} is not an ISO 4217 currency code",
            quote(&charge.amount.currency)
        )));
    }
    // Zero is allowed: a free programme is still worth recording.
    if charge.amount.minor_units < 0 {
        return Err(Error::invalid_input("the amount must not be negative"));
    }
    let program = charge.program.trim();
    if program.is_empty() || program.len() > MAX_PROGRAM {
        return Err(Error::invalid_input(format!(
            "the programme must be 1 to {MAX_PROGRAM} bytes"
        )));
    }

    let key = charge_key(&charge.reference);
    if let Some(existing) = store.load(&key)? {
        // Checked before the programme list, so that a retry still gets its
        // receipt after the operator narrowed the list.
        let same = existing.mode == charge.mode
            && existing.program == program
            && existing.currency == charge.amount.currency
            && existing.requested == charge.amount.minor_units;
        if !same {
            return Err(Error::invalid_input(
                "this charge reference was already recorded for a different charge",
            ));
        }
        return Ok(receipt(&existing));
    }

    let funder = cfg.funder();
    if !cfg.funds(program) {
        return Err(Error::rejected(format!(
            "programme {} is not funded by {funder}",
            quote(program)
        )));
    }
    let record = Record {
        provider_reference: format!("{}:{}", funder_slug(funder), charge.reference),
        funder: funder.to_string(),
        mode: charge.mode.clone(),
        program: program.to_string(),
        currency: charge.amount.currency.clone(),
        requested: charge.amount.minor_units,
        amount: if cfg.record_amount {
            charge.amount.minor_units
        } else {
            0
        },
        status: Status::Authorized,
        captured: None,
        refunded: None,
        authorized_at: now,
        captured_at: None,
        refunded_at: None,
    };
    store.save(&key, &record)?;
    Ok(receipt(&record))
}

/// The record a provider reference names, with `amount` checked against it.
fn load_record(
    store: &mut impl Store,
    provider_reference: &str,
    amount: &Money,
) -> Result<(String, Record), Error> {
    let unknown = || {
        Error::invalid_input(format!(
            "unknown provider reference {}",
            quote(provider_reference)
        ))
    };
    let (_, reference) = provider_reference.split_once(':').ok_or_else(unknown)?;
    if !valid_reference(reference) {
        return Err(unknown());
    }
    let key = charge_key(reference);
    let record = store.load(&key)?.ok_or_else(unknown)?;
    // The funder part must match too: a reference is only valid as issued.
    if record.provider_reference != provider_reference {
        return Err(unknown());
    }
    if amount.currency != record.currency {
        return Err(Error::invalid_input(format!(
            "the charge is in {}, not {}",
            record.currency,
            quote(&amount.currency)
        )));
    }
    if amount.minor_units < 0 || amount.minor_units > record.amount {
        return Err(Error::invalid_input(format!(
            "the amount must be between 0 and {}",
            record.amount
        )));
    }
    Ok((key, record))
}

/// Marks a recorded charge captured (a second capture returns the first
/// receipt).
pub fn capture(
    store: &mut impl Store,
    provider_reference: &str,
    amount: &Money,
    now: u64,
) -> Result<Receipt, Error> {
    let (key, mut record) = load_record(store, provider_reference, amount)?;
    match record.status {
        Status::Captured => return Ok(receipt(&record)),
        Status::Refunded => return Err(Error::rejected("the charge was refunded")),
        Status::Authorized => {}
    }
    record.status = Status::Captured;
    record.captured = Some(amount.minor_units);
    record.captured_at = Some(now);
    store.save(&key, &record)?;
    Ok(receipt(&record))
}

/// Marks a recorded charge refunded (a second refund returns the first
/// receipt). An uncaptured charge may be refunded too: that voids it.
pub fn refund(
    store: &mut impl Store,
    provider_reference: &str,
    amount: &Money,
    now: u64,
) -> Result<Receipt, Error> {
    let (key, mut record) = load_record(store, provider_reference, amount)?;
    if record.status == Status::Refunded {
        return Ok(receipt(&record));
    }
    record.status = Status::Refunded;
    record.refunded = Some(amount.minor_units);
    record.refunded_at = Some(now);
    store.save(&key, &record)?;
    Ok(receipt(&record))
}

/// The configuration, or the defaults when it does not parse: `modes` has no
/// way to report an error, and authorizing still refuses with the cause.
fn modes_from_config() -> Vec<String> {
    match config::load::<Config>() {
        Ok(cfg) => cfg.modes(),
        Err(e) => {
            divoc_sdk::log::warn(e.message());
            Config::default().modes()
        }
    }
}

struct Plugin;

impl Guest for Plugin {
    fn modes() -> Vec<String> {
        modes_from_config()
    }

    fn authorize(charge: Charge) -> Result<Receipt, Error> {
        let cfg: Config = config::load()?;
        let receipt = authorize(&cfg, &mut Kv, &charge, clock::unix_seconds())?;
        // The programme id only: the reference and description stay out of
        // the log.
        divoc_sdk::info!(
            "charge recorded for programme {} ({:?})",
            quote(charge.program.trim()),
            receipt.status
        );
        Ok(receipt)
    }

    fn capture(provider_reference: String, amount: Money) -> Result<Receipt, Error> {
        capture(&mut Kv, &provider_reference, &amount, clock::unix_seconds())
    }

    fn refund(
        provider_reference: String,
        amount: Money,
        _reason: String,
    ) -> Result<Receipt, Error> {
        refund(&mut Kv, &provider_reference, &amount, clock::unix_seconds())
    }
}

divoc_sdk::export_payment_provider!(Plugin);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Mem(HashMap<String, Record>);

    impl Store for Mem {
        fn load(&mut self, key: &str) -> Result<Option<Record>, Error> {
            Ok(self.0.get(key).cloned())
        }
        fn save(&mut self, key: &str, record: &Record) -> Result<(), Error> {
            self.0.insert(key.to_string(), record.clone());
            Ok(())
        }
    }

    fn cfg(json: &str) -> Config {
        config::parse(json).unwrap()
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
            mode: DEFAULT_MODE.into(),
            amount: inr(amount),
            program: "C19".into(),
            description: "scheme card 1234".into(),
        }
    }

    fn kind(e: &Error) -> &'static str {
        match e {
            Error::InvalidInput(_) => "invalid-input",
            Error::Rejected(_) => "rejected",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    #[test]
    fn config_defaults_and_aliases() {
        let c = cfg("{}");
        assert_eq!(c.modes(), vec!["government"]);
        assert_eq!(c.funder(), "government");
        assert!(c.record_amount);
        assert!(c.funds("anything"));
        let c = cfg(r#"{"modes": [" free ", "", "free", "scheme"], "record-amount": false}"#);
        assert_eq!(c.modes(), vec!["free", "scheme"]);
        assert!(!c.record_amount);
        assert_eq!(cfg(r#"{"modes": []}"#).modes(), vec!["government"]);
        // A typo must not silently fund every programme.
        assert!(config::parse::<Config>(r#"{"program": ["C19"]}"#).is_err());
    }

    #[test]
    fn slugs_are_splittable() {
        assert_eq!(
            funder_slug("Ministry of Health & Family Welfare"),
            "ministry-of-health-family-welfare"
        );
        assert_eq!(funder_slug("  :: "), "government");
        assert_eq!(funder_slug("a:b/c"), "a-b-c");
        assert!(funder_slug(&"x".repeat(500)).len() <= MAX_SLUG);
    }

    #[test]
    fn authorize_records_once_per_reference() {
        let c = cfg(r#"{"funder": "Ministry of Health"}"#);
        let mut s = Mem::default();
        let r1 = authorize(&c, &mut s, &charge("divoc-1", 500), 10).unwrap();
        assert_eq!(r1.provider_reference, "ministry-of-health:divoc-1");
        assert!(matches!(r1.status, PaymentStatus::Authorized));
        assert_eq!(r1.amount.minor_units, 500);
        assert_eq!(r1.mode, "government");
        let r2 = authorize(&c, &mut s, &charge("divoc-1", 500), 20).unwrap();
        assert_eq!(r2.provider_reference, r1.provider_reference);
        assert_eq!(s.0.len(), 1);
        let rec = &s.0["charge/divoc-1"];
        assert_eq!(rec.authorized_at, 10);
        assert_eq!(rec.funder, "Ministry of Health");
        // The description is never stored.
        assert!(!serde_json::to_string(rec).unwrap().contains("1234"));
        // The same reference for another charge is refused, not re-recorded.
        let e = authorize(&c, &mut s, &charge("divoc-1", 900), 30).unwrap_err();
        assert_eq!(kind(&e), "invalid-input");
        assert_eq!(s.0["charge/divoc-1"].requested, 500);
    }

    #[test]
    fn record_amount_false_records_zero() {
        let c = cfg(r#"{"record_amount": false}"#);
        let mut s = Mem::default();
        let r = authorize(&c, &mut s, &charge("r", 500), 0).unwrap();
        assert_eq!(r.amount.minor_units, 0);
        assert_eq!(r.amount.currency, "INR");
        assert_eq!(s.0["charge/r"].requested, 500);
        let r = capture(&mut s, "government:r", &inr(0), 1).unwrap();
        assert!(matches!(r.status, PaymentStatus::Captured));
    }

    #[test]
    fn invalid_charges_are_refused_before_kv() {
        let c = Config::default();
        let mut s = Mem::default();
        let mut bad_mode = charge("r", 1);
        bad_mode.mode = "card".into();
        let mut bad_currency = charge("r", 1);
        bad_currency.amount.currency = "inr".into();
        let mut bad_program = charge("r", 1);
        bad_program.program = "p".repeat(1 << 20);
        for ch in [
            bad_mode,
            charge("r", -100),
            charge("", 1),
            charge("has space", 1),
            charge(&"r".repeat(1 << 20), 1),
            bad_currency,
            bad_program,
        ] {
            let e = authorize(&c, &mut s, &ch, 0).unwrap_err();
            assert_eq!(kind(&e), "invalid-input", "{e:?}");
            assert!(e.message().len() < 200, "{e:?}");
        }
        assert!(s.0.is_empty());
        // Zero is a valid amount for a free programme.
        authorize(&c, &mut s, &charge("r", 0), 0).unwrap();
    }

    #[test]
    fn unfunded_programmes_are_rejected_by_name() {
        let c = cfg(r#"{"funder": "State Scheme", "programs": ["C19", "HPV"]}"#);
        let mut s = Mem::default();
        authorize(&c, &mut s, &charge("a", 1), 0).unwrap();
        let mut other = charge("b", 1);
        other.program = "Travel".into();
        let e = authorize(&c, &mut s, &other, 0).unwrap_err();
        assert_eq!(kind(&e), "rejected");
        assert!(e.message().contains("\"Travel\""), "{e:?}");
        assert!(e.message().contains("State Scheme"), "{e:?}");
        assert!(!s.0.contains_key("charge/b"));
    }

    #[test]
    fn capture_and_refund_are_idempotent() {
        let c = Config::default();
        let mut s = Mem::default();
        let r = authorize(&c, &mut s, &charge("r", 500), 0).unwrap();
        let p = r.provider_reference;
        let r = capture(&mut s, &p, &inr(500), 5).unwrap();
        assert!(matches!(r.status, PaymentStatus::Captured));
        let again = capture(&mut s, &p, &inr(400), 6).unwrap();
        assert_eq!(again.amount.minor_units, 500);
        assert_eq!(s.0["charge/r"].captured_at, Some(5));
        let r = refund(&mut s, &p, &inr(500), 7).unwrap();
        assert!(matches!(r.status, PaymentStatus::Refunded));
        refund(&mut s, &p, &inr(500), 8).unwrap();
        assert_eq!(s.0["charge/r"].refunded_at, Some(7));
        let e = capture(&mut s, &p, &inr(500), 9).unwrap_err();
        assert_eq!(kind(&e), "rejected");
    }

    #[test]
    fn unknown_references_and_bad_amounts_are_errors() {
        let c = cfg(r#"{"funder": "Ministry"}"#);
        let mut s = Mem::default();
        authorize(&c, &mut s, &charge("r", 500), 0).unwrap();
        for p in [
            "divoc-conformance-never-authorized",
            "government:r",
            "ministry:other",
            "ministry:",
            "",
        ] {
            let e = capture(&mut s, p, &inr(1), 0).unwrap_err();
            assert_eq!(kind(&e), "invalid-input", "{p}: {e:?}");
            let e = refund(&mut s, p, &inr(1), 0).unwrap_err();
            assert_eq!(kind(&e), "invalid-input", "{p}: {e:?}");
        }
        let usd = Money {
            currency: "USD".into(),
            minor_units: 1,
        };
        for amount in [inr(-1), inr(501), inr(i64::MIN), usd] {
            let e = capture(&mut s, "ministry:r", &amount, 0).unwrap_err();
            assert_eq!(kind(&e), "invalid-input", "{amount:?}");
        }
        assert_eq!(s.0["charge/r"].status, Status::Authorized);
    }
}
