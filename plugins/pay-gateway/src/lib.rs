//! Payment provider for card and UPI payments through an HTTP payment
//! gateway, or an adapter in front of one (the API is in README.md).
//!
//! `authorize` POSTs `{url}/payments` with the host's reference as the
//! `Idempotency-Key`, so a retried charge is never taken twice; the
//! gateway's payment id is the provider reference. `capture` and `refund`
//! POST `{url}/payments/{id}/capture` and `.../refund` with keys
//! `capture:<id>` and `refund:<id>`. kv keeps each payment's state, so a
//! second capture or refund is answered from kv without calling the gateway,
//! and references the gateway never issued are refused without a request.
//!
//! Error kinds follow the contract: a decline is `rejected` (its reason is
//! safe to show), a gateway that is down, slow or overloaded is
//! `unavailable` (the host retries), a request the gateway finds malformed
//! is `invalid-input`, and a configuration problem (no `url`, a refused API
//! key, an origin not granted) is `internal`.

use std::fmt;

use divoc_sdk::http::{Method, Request, Response};
use divoc_sdk::payment::{Charge, Guest, PaymentStatus, Receipt};
use divoc_sdk::{config, kv, quote, Error, Money};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Modes served when the configuration names none.
pub const DEFAULT_MODES: [&str; 2] = ["card", "upi"];
/// Default per-request time-out; below the manifest's 10 s deadline so that
/// a slow gateway ends in `unavailable`, not in a deadline fault.
pub const DEFAULT_TIMEOUT_MS: u32 = 8000;
/// Header carrying `api_key` unless `api_key_header` names another.
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";
/// Longest host reference accepted. The host's are `divoc-<32 hex>`; the
/// bound keeps kv keys and the `Idempotency-Key` header small.
const MAX_REFERENCE: usize = 200;
/// Longest gateway payment id accepted.
const MAX_ID: usize = 128;
/// Longest reason passed on from (or to) the gateway.
const MAX_REASON: usize = 200;

/// The plugin's configuration section. Keys are accepted in snake case (as
/// documented) and kebab case (as `DIVOC_PLUGINS__CONFIG__PAY_GATEWAY__*`
/// environment overrides deliver them, which is how `api_key` should be
/// supplied).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Base URL of the gateway API, e.g. `https://pay.example.org/divoc`.
    pub url: Option<String>,
    /// Secret sent in `api_key_header` with every request.
    #[serde(alias = "api-key")]
    pub api_key: Option<String>,
    #[serde(alias = "api-key-header")]
    pub api_key_header: String,
    pub modes: Vec<String>,
    #[serde(alias = "timeout-ms")]
    pub timeout_ms: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            url: None,
            api_key: None,
            api_key_header: DEFAULT_API_KEY_HEADER.to_string(),
            modes: DEFAULT_MODES.iter().map(|m| m.to_string()).collect(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }
}

/// Hand-written so that the API key can never reach a log through `{:?}`.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_header", &self.api_key_header)
            .field("modes", &self.modes)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// Headers the plugin sets itself; `api_key_header` may not replace them.
const RESERVED_HEADERS: [&str; 5] = [
    "idempotency-key",
    "content-type",
    "content-length",
    "accept",
    "host",
];

impl Config {
    /// The declared modes, trimmed, without blanks or duplicates; the
    /// defaults when none is left (the contract wants at least one).
    pub fn modes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in &self.modes {
            let m = m.trim();
            if !m.is_empty() && !out.iter().any(|o| o == m) {
                out.push(m.to_string());
            }
        }
        if out.is_empty() {
            out = DEFAULT_MODES.iter().map(|m| m.to_string()).collect();
        }
        out
    }

    /// The base URL without its trailing `/`.
    fn base_url(&self) -> Result<&str, Error> {
        let url = self.url.as_deref().map(str::trim).unwrap_or_default();
        if url.is_empty() {
            return Err(Error::internal(
                "pay-gateway: `url` is not configured (the gateway's base URL)",
            ));
        }
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.contains(['?', '#'])
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::internal(
                "pay-gateway: `url` must be an http(s) base URL without query or fragment",
            ));
        }
        Ok(url.trim_end_matches('/'))
    }

    /// The API key header, if a key is configured.
    fn api_key(&self) -> Result<Option<(String, &str)>, Error> {
        let Some(key) = self.api_key.as_deref().filter(|k| !k.is_empty()) else {
            return Ok(None);
        };
        // The key itself is never quoted in an error: errors are logged.
        if !key.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(Error::internal(
                "pay-gateway: `api_key` must be printable ASCII",
            ));
        }
        let name = self.api_key_header.trim().to_ascii_lowercase();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || RESERVED_HEADERS.contains(&name.as_str())
        {
            return Err(Error::internal(format!(
                "pay-gateway: `api_key_header` {} is not a usable header name",
                quote(&self.api_key_header)
            )));
        }
        Ok(Some((name, key)))
    }
}

/// One gateway operation, for requests, answers and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Authorize,
    Capture,
    Refund,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Authorize => "authorize",
            Op::Capture => "capture",
            Op::Refund => "refund",
        }
    }

    /// Payment statuses a successful answer may carry.
    fn expected(self) -> &'static [&'static str] {
        match self {
            // A gateway that captures at once answers `captured`.
            Op::Authorize => &["authorized", "captured"],
            Op::Capture => &["captured"],
            Op::Refund => &["refunded"],
        }
    }
}

/// Sends requests: the host's `http` capability in the plugin, a script in
/// tests.
pub trait Transport {
    fn send(&mut self, op: Op, request: &Request) -> Result<Response, Error>;
}

struct HostHttp;

impl Transport for HostHttp {
    fn send(&mut self, op: Op, request: &Request) -> Result<Response, Error> {
        let result = divoc_sdk::http::send(request);
        // The operation and status only: no URL (an operator may put a
        // token in it), headers (the API key) or bodies (payment data).
        match &result {
            Ok(r) => divoc_sdk::debug!("gateway {}: HTTP {}", op.name(), r.status),
            Err(e) => divoc_sdk::warn!("gateway {}: {}", op.name(), e.message()),
        }
        result
    }
}

/// Where payment state lives: kv in the plugin, a map in tests.
pub trait Store {
    fn load<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, Error>;
    fn save<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), Error>;
}

struct Kv;

impl Store for Kv {
    fn load<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, Error> {
        kv::get_json(key)
    }
    fn save<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        kv::set_json(key, value)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Authorized,
    Captured,
    Refunded,
}

/// A payment the gateway authorized, under `payment/<gateway id>`. The
/// charge description (card token, UPI handle) is not kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Payment {
    /// The host's reference, to recognise a retried charge.
    pub reference: String,
    pub mode: String,
    pub currency: String,
    /// Authorized amount.
    pub amount: i64,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<i64>,
}

fn payment_key(id: &str) -> String {
    format!("payment/{id}")
}

/// `ref/<reference>` holds the gateway id authorized for a host reference.
fn reference_key(reference: &str) -> String {
    format!("ref/{reference}")
}

fn valid_reference(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= MAX_REFERENCE
        && reference.bytes().all(|b| b.is_ascii_graphic())
}

/// A gateway id usable as one URL path segment without escaping: RFC 3986
/// unreserved characters and `:`, with at least one letter or digit (so
/// never `.` or `..`).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:".contains(&b))
        && id.bytes().any(|b| b.is_ascii_alphanumeric())
}

fn valid_currency(currency: &str) -> bool {
    currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())
}

/// Text from the gateway or the host, made safe for a message: no control
/// characters, at most 200 characters.
fn clean(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect();
    cleaned.trim().to_string()
}

fn receipt(id: &str, p: &Payment) -> Receipt {
    let (status, amount) = match p.status {
        Status::Authorized => (PaymentStatus::Authorized, p.amount),
        Status::Captured => (PaymentStatus::Captured, p.captured.unwrap_or(p.amount)),
        Status::Refunded => (PaymentStatus::Refunded, p.refunded.unwrap_or(p.amount)),
    };
    Receipt {
        provider_reference: id.to_string(),
        status,
        amount: Money {
            currency: p.currency.clone(),
            minor_units: amount,
        },
        mode: p.mode.clone(),
    }
}

fn amount_json(m: &Money) -> Value {
    json!({ "currency": m.currency, "minor_units": m.minor_units })
}

/// What a successful gateway answer said.
#[derive(Debug, Clone)]
pub struct Answer {
    pub id: Option<String>,
    pub status: String,
    pub amount: Option<Money>,
}

/// The reason a gateway gave, from `reason`, `message` or `error`.
fn reason_of(body: &Value) -> Option<String> {
    ["reason", "message", "error"]
        .iter()
        .find_map(|k| body.get(k).and_then(Value::as_str))
        .map(clean)
        .filter(|r| !r.is_empty())
}

/// Maps a gateway answer to the contract's outcome.
pub fn interpret(op: Op, status: u16, body: &[u8]) -> Result<Answer, Error> {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let reason = reason_of(&json);
    let name = op.name();
    match status {
        200..=299 => {
            let Some(s) = json.get("status").and_then(Value::as_str) else {
                // Retrying is safe (idempotency keys) and may meet a
                // repaired gateway.
                return Err(Error::unavailable(format!(
                    "the payment gateway's answer to {name} has no status"
                )));
            };
            if s == "declined" {
                return Err(Error::rejected(
                    reason.unwrap_or_else(|| "the payment was declined".into()),
                ));
            }
            if !op.expected().contains(&s) {
                return Err(Error::unavailable(format!(
                    "the payment gateway answered status {} to {name}",
                    quote(s)
                )));
            }
            let amount = json.get("amount").and_then(|a| {
                Some(Money {
                    currency: a.get("currency")?.as_str()?.to_string(),
                    minor_units: a.get("minor_units")?.as_i64()?,
                })
            });
            Ok(Answer {
                id: json.get("id").and_then(Value::as_str).map(str::to_string),
                status: s.to_string(),
                amount,
            })
        }
        402 => Err(Error::rejected(
            reason.unwrap_or_else(|| "the payment was declined".into()),
        )),
        408 | 429 | 500..=599 => Err(Error::unavailable(format!(
            "the payment gateway answered HTTP {status} to {name}"
        ))),
        // The server's credentials, not the payer's: an operator must fix
        // `api_key`, and a capture should be retried once they have.
        401 | 403 => Err(Error::internal(format!(
            "the payment gateway refused this server's credentials (HTTP {status}); check `api_key`"
        ))),
        404 if op == Op::Authorize => Err(Error::internal(
            "the payment gateway has no /payments endpoint (HTTP 404); check `url`",
        )),
        404 => Err(Error::invalid_input(
            "the payment gateway does not know this payment",
        )),
        409 => Err(Error::rejected(reason.unwrap_or_else(|| {
            format!("the payment gateway refused the {name}: the payment is in another state")
        }))),
        400..=499 => Err(Error::invalid_input(reason.unwrap_or_else(|| {
            format!("the payment gateway refused the {name} as invalid (HTTP {status})")
        }))),
        _ => Err(Error::internal(format!(
            "the payment gateway answered HTTP {status} to {name}; redirects are not followed, check `url`"
        ))),
    }
}

/// POSTs `body` to `{url}{path}` and interprets the answer.
fn call(
    cfg: &Config,
    net: &mut impl Transport,
    op: Op,
    path: &str,
    idempotency_key: &str,
    body: &Value,
) -> Result<Answer, Error> {
    let base = cfg.base_url()?;
    if cfg.timeout_ms == 0 {
        return Err(Error::internal(
            "pay-gateway: `timeout_ms` must be positive",
        ));
    }
    let mut request = Request::new(Method::Post, format!("{base}{path}"))
        .header("accept", "application/json")
        .header("idempotency-key", idempotency_key)
        .timeout_ms(cfg.timeout_ms)
        .json(body)?;
    if let Some((name, key)) = cfg.api_key()? {
        request = request.header(name, key);
    }
    let response = match net.send(op, &request) {
        Ok(r) => r,
        Err(e @ Error::Unavailable(_)) => return Err(e),
        // The host refused the request itself (origin not granted, a local
        // address, a bad URL): the operator's setup, not the payer's input.
        Err(e) => {
            return Err(Error::internal(format!(
                "the payment gateway cannot be called: {}; check `url` and the http grant",
                e.message()
            )))
        }
    };
    interpret(op, response.status, &response.body)
}

/// Authorizes a charge at the gateway, or returns the receipt of the one
/// already authorized under the same reference.
pub fn authorize(
    cfg: &Config,
    store: &mut impl Store,
    net: &mut impl Transport,
    charge: &Charge,
) -> Result<Receipt, Error> {
    // Everything the gateway would refuse anyway is refused here, before a
    // request leaves the host.
    if !cfg.modes().contains(&charge.mode) {
        return Err(Error::invalid_input(format!(
            "unsupported payment mode {}",
            quote(&charge.mode)
        )));
    }
    if charge.amount.minor_units <= 0 {
        return Err(Error::invalid_input("the amount must be positive"));
    }
    if !valid_currency(&charge.amount.currency) {
        return Err(Error::invalid_input(format!(
            "{} is not an ISO 4217 currency code",
            quote(&charge.amount.currency)
        )));
    }
    if !valid_reference(&charge.reference) {
        return Err(Error::invalid_input(
            "the charge reference must be 1 to 200 visible ASCII characters",
        ));
    }

    let ref_key = reference_key(&charge.reference);
    if let Some(id) = store.load::<String>(&ref_key)? {
        if let Some(p) = store.load::<Payment>(&payment_key(&id))? {
            let same = p.mode == charge.mode
                && p.currency == charge.amount.currency
                && p.amount == charge.amount.minor_units;
            if !same {
                return Err(Error::invalid_input(
                    "this charge reference was already used for a different charge",
                ));
            }
            return Ok(receipt(&id, &p));
        }
    }

    let body = json!({
        "reference": charge.reference,
        "amount": amount_json(&charge.amount),
        "mode": charge.mode,
        "description": charge.description,
    });
    let answer = call(
        cfg,
        net,
        Op::Authorize,
        "/payments",
        &charge.reference,
        &body,
    )?;
    let id = answer.id.filter(|id| valid_id(id)).ok_or_else(|| {
        Error::internal(format!(
            "the payment gateway's answer has no usable payment id (1 to {MAX_ID} URL-safe characters)"
        ))
    })?;
    let amount = answer
        .amount
        .map(|a| a.minor_units)
        .unwrap_or(charge.amount.minor_units);
    let captured = answer.status == "captured";
    let payment = Payment {
        reference: charge.reference.clone(),
        mode: charge.mode.clone(),
        currency: charge.amount.currency.clone(),
        amount,
        status: if captured {
            Status::Captured
        } else {
            Status::Authorized
        },
        captured: captured.then_some(amount),
        refunded: None,
    };
    // If recording fails the host retries; the gateway then answers the
    // same payment for the same Idempotency-Key.
    let unrecorded = |e: Error| {
        Error::unavailable(format!(
            "authorized at the gateway but not recorded: {}",
            e.message()
        ))
    };
    store
        .save(&payment_key(&id), &payment)
        .map_err(unrecorded)?;
    store.save(&ref_key, &id).map_err(unrecorded)?;
    Ok(receipt(&id, &payment))
}

/// The payment a provider reference names, with `amount` checked against
/// `limit(payment)`.
fn load_payment(
    store: &mut impl Store,
    id: &str,
    amount: &Money,
    limit: impl Fn(&Payment) -> i64,
) -> Result<Payment, Error> {
    let unknown = || Error::invalid_input(format!("unknown provider reference {}", quote(id)));
    if !valid_id(id) {
        return Err(unknown());
    }
    let p: Payment = store.load(&payment_key(id))?.ok_or_else(unknown)?;
    if amount.currency != p.currency {
        return Err(Error::invalid_input(format!(
            "the payment is in {}, not {}",
            p.currency,
            quote(&amount.currency)
        )));
    }
    let max = limit(&p);
    if amount.minor_units <= 0 || amount.minor_units > max {
        return Err(Error::invalid_input(format!(
            "the amount must be between 1 and {max}"
        )));
    }
    Ok(p)
}

/// Captures an authorized payment; a captured one is answered from kv.
pub fn capture(
    cfg: &Config,
    store: &mut impl Store,
    net: &mut impl Transport,
    id: &str,
    amount: &Money,
) -> Result<Receipt, Error> {
    let mut p = load_payment(store, id, amount, |p| p.amount)?;
    match p.status {
        Status::Captured => return Ok(receipt(id, &p)),
        Status::Refunded => return Err(Error::rejected("the payment was refunded")),
        Status::Authorized => {}
    }
    let body = json!({ "amount": amount_json(amount) });
    let path = format!("/payments/{id}/capture");
    let answer = call(
        cfg,
        net,
        Op::Capture,
        &path,
        &format!("capture:{id}"),
        &body,
    )?;
    p.status = Status::Captured;
    p.captured = Some(
        answer
            .amount
            .map(|a| a.minor_units)
            .unwrap_or(amount.minor_units),
    );
    store.save(&payment_key(id), &p)?;
    Ok(receipt(id, &p))
}

/// Refunds (or, before capture, voids) a payment once; a refunded one is
/// answered from kv.
pub fn refund(
    cfg: &Config,
    store: &mut impl Store,
    net: &mut impl Transport,
    id: &str,
    amount: &Money,
    reason: &str,
) -> Result<Receipt, Error> {
    let mut p = load_payment(store, id, amount, |p| p.captured.unwrap_or(p.amount))?;
    if p.status == Status::Refunded {
        return Ok(receipt(id, &p));
    }
    let body = json!({ "amount": amount_json(amount), "reason": clean(reason) });
    let path = format!("/payments/{id}/refund");
    let answer = call(cfg, net, Op::Refund, &path, &format!("refund:{id}"), &body)?;
    p.status = Status::Refunded;
    p.refunded = Some(
        answer
            .amount
            .map(|a| a.minor_units)
            .unwrap_or(amount.minor_units),
    );
    store.save(&payment_key(id), &p)?;
    Ok(receipt(id, &p))
}

struct Plugin;

impl Guest for Plugin {
    fn modes() -> Vec<String> {
        // `modes` cannot report an error; a broken configuration still shows
        // in the log here and in every other call's error.
        match config::load::<Config>() {
            Ok(cfg) => cfg.modes(),
            Err(e) => {
                divoc_sdk::log::warn(e.message());
                Config::default().modes()
            }
        }
    }

    fn authorize(charge: Charge) -> Result<Receipt, Error> {
        authorize(&config::load()?, &mut Kv, &mut HostHttp, &charge)
    }

    fn capture(provider_reference: String, amount: Money) -> Result<Receipt, Error> {
        capture(
            &config::load()?,
            &mut Kv,
            &mut HostHttp,
            &provider_reference,
            &amount,
        )
    }

    fn refund(provider_reference: String, amount: Money, reason: String) -> Result<Receipt, Error> {
        refund(
            &config::load()?,
            &mut Kv,
            &mut HostHttp,
            &provider_reference,
            &amount,
            &reason,
        )
    }
}

divoc_sdk::export_payment_provider!(Plugin);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::collections::{HashMap, VecDeque};

    #[derive(Default)]
    struct Mem(HashMap<String, Vec<u8>>);

    impl Store for Mem {
        fn load<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, Error> {
            Ok(self.0.get(key).map(|v| serde_json::from_slice(v).unwrap()))
        }
        fn save<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), Error> {
            self.0
                .insert(key.to_string(), serde_json::to_vec(value).unwrap());
            Ok(())
        }
    }

    /// Answers queued replies and records the requests.
    #[derive(Default)]
    struct Script {
        replies: VecDeque<Result<(u16, Value), Error>>,
        seen: Vec<Request>,
    }

    impl Script {
        fn reply(mut self, status: u16, body: Value) -> Self {
            self.replies.push_back(Ok((status, body)));
            self
        }
        fn fail(mut self, e: Error) -> Self {
            self.replies.push_back(Err(e));
            self
        }
        fn header(&self, i: usize, name: &str) -> Option<&str> {
            self.seen[i]
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
        fn body(&self, i: usize) -> Value {
            serde_json::from_slice(self.seen[i].body.as_ref().unwrap()).unwrap()
        }
    }

    impl Transport for Script {
        fn send(&mut self, _op: Op, request: &Request) -> Result<Response, Error> {
            self.seen.push(request.clone());
            let (status, body) = self.replies.pop_front().expect("an unexpected request")?;
            Ok(Response {
                status,
                headers: Vec::new(),
                body: serde_json::to_vec(&body).unwrap(),
            })
        }
    }

    fn cfg() -> Config {
        config::parse(
            r#"{"url": "https://pay.example.org/divoc/", "api_key": "sk-secret", "timeout_ms": 1500}"#,
        )
        .unwrap()
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
            mode: "card".into(),
            amount: inr(amount),
            program: "C19".into(),
            description: "tok_visa_4242".into(),
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

    fn authorized(id: &str) -> Value {
        json!({ "id": id, "status": "authorized" })
    }

    #[test]
    fn config_defaults_aliases_and_redaction() {
        let c: Config = config::parse("{}").unwrap();
        assert_eq!(c.modes(), vec!["card", "upi"]);
        assert_eq!(c.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(kind(&c.base_url().unwrap_err()), "internal");
        let c: Config = config::parse(
            r#"{"url": "http://10.0.0.5:8443", "api-key": "k", "timeout-ms": 50, "modes": ["", " upi "]}"#,
        )
        .unwrap();
        assert_eq!(c.base_url().unwrap(), "http://10.0.0.5:8443");
        assert_eq!(c.timeout_ms, 50);
        assert_eq!(c.modes(), vec!["upi"]);
        assert!(!format!("{:?}", cfg()).contains("sk-secret"));
        assert!(config::parse::<Config>(r#"{"apikey": "x"}"#).is_err());
        for url in ["ftp://x", "https://x/?a=1", "https://x y"] {
            let c = Config {
                url: Some(url.into()),
                ..Config::default()
            };
            assert_eq!(kind(&c.base_url().unwrap_err()), "internal", "{url}");
        }
        let c = Config {
            api_key: Some("k".into()),
            api_key_header: "Idempotency-Key".into(),
            ..Config::default()
        };
        assert_eq!(kind(&c.api_key().unwrap_err()), "internal");
    }

    #[test]
    fn authorize_posts_the_documented_request() {
        let mut net = Script::default().reply(201, authorized("pay_1"));
        let mut s = Mem::default();
        let r = authorize(&cfg(), &mut s, &mut net, &charge("divoc-abc", 5000)).unwrap();
        assert_eq!(r.provider_reference, "pay_1");
        assert!(matches!(r.status, PaymentStatus::Authorized));
        assert_eq!(r.amount.minor_units, 5000);
        assert_eq!(r.mode, "card");
        let req = &net.seen[0];
        assert!(matches!(req.method, Method::Post));
        assert_eq!(req.url, "https://pay.example.org/divoc/payments");
        assert_eq!(req.timeout_ms, Some(1500));
        assert_eq!(net.header(0, "idempotency-key"), Some("divoc-abc"));
        assert_eq!(net.header(0, "x-api-key"), Some("sk-secret"));
        assert_eq!(net.header(0, "content-type"), Some("application/json"));
        assert_eq!(
            net.body(0),
            json!({
                "reference": "divoc-abc",
                "amount": { "currency": "INR", "minor_units": 5000 },
                "mode": "card",
                "description": "tok_visa_4242",
            })
        );
        // The same reference again: the same receipt, without a request.
        let again = authorize(&cfg(), &mut s, &mut net, &charge("divoc-abc", 5000)).unwrap();
        assert_eq!(again.provider_reference, "pay_1");
        assert_eq!(net.seen.len(), 1);
        // The description is not stored.
        assert!(s
            .0
            .values()
            .all(|v| !String::from_utf8_lossy(v).contains("tok_")));
        let e = authorize(&cfg(), &mut s, &mut net, &charge("divoc-abc", 1)).unwrap_err();
        assert_eq!(kind(&e), "invalid-input");
    }

    #[test]
    fn invalid_charges_never_reach_the_gateway() {
        let mut net = Script::default();
        let mut s = Mem::default();
        let mut upper = charge("r", 1);
        upper.mode = "voucher".into();
        let mut currency = charge("r", 1);
        currency.amount.currency = "₹".into();
        for ch in [
            upper,
            charge("r", 0),
            charge("r", -100),
            charge("r", i64::MIN),
            currency,
            charge("", 1),
            charge(&"r".repeat(1 << 20), 1),
            charge("r\u{202e}", 1),
        ] {
            let e = authorize(&cfg(), &mut s, &mut net, &ch).unwrap_err();
            assert_eq!(kind(&e), "invalid-input", "{e:?}");
            assert!(e.message().len() < 200);
        }
        // Unknown references, even with no gateway configured at all.
        let none = Config::default();
        for id in [
            "divoc-conformance-never-authorized",
            "",
            "..",
            "a/b",
            &"x".repeat(1 << 20),
        ] {
            let e = capture(&none, &mut s, &mut net, id, &inr(100)).unwrap_err();
            assert_eq!(kind(&e), "invalid-input");
            let e = refund(&none, &mut s, &mut net, id, &inr(100), "r").unwrap_err();
            assert_eq!(kind(&e), "invalid-input");
            assert!(e.message().len() < 200);
        }
        assert!(net.seen.is_empty());
    }

    #[test]
    fn answers_map_to_error_kinds() {
        let cases: Vec<(u16, Value, &str)> = vec![
            (402, json!({ "reason": "insufficient funds" }), "rejected"),
            (
                200,
                json!({ "status": "declined", "reason": "card expired" }),
                "rejected",
            ),
            (409, json!({}), "rejected"),
            (500, json!({}), "unavailable"),
            (503, json!({}), "unavailable"),
            (408, json!({}), "unavailable"),
            (429, json!({}), "unavailable"),
            (200, json!("not an object"), "unavailable"),
            (200, json!({ "status": "pending" }), "unavailable"),
            (400, json!({ "message": "bad mode" }), "invalid-input"),
            (422, json!({}), "invalid-input"),
            (401, json!({}), "internal"),
            (403, json!({}), "internal"),
            (404, json!({}), "internal"),
            (302, json!({}), "internal"),
        ];
        for (status, body, want) in cases {
            let e = interpret(Op::Authorize, status, body.to_string().as_bytes()).unwrap_err();
            assert_eq!(kind(&e), want, "{status} {body}");
        }
        let e = interpret(Op::Authorize, 402, br#"{"reason": "insufficient funds"}"#).unwrap_err();
        assert_eq!(e.message(), "insufficient funds");
        let e = interpret(Op::Capture, 404, b"").unwrap_err();
        assert_eq!(kind(&e), "invalid-input");
        // A reason is cut and cleaned before it is shown.
        let long = json!({ "reason": format!("a\u{0}b{}", "x".repeat(5000)) }).to_string();
        let e = interpret(Op::Authorize, 402, long.as_bytes()).unwrap_err();
        assert!(e.message().starts_with("a b") && e.message().chars().count() <= MAX_REASON);
        // A captured answer to authorize is a captured receipt.
        let a = interpret(Op::Authorize, 200, br#"{"id": "p", "status": "captured"}"#).unwrap();
        assert_eq!(a.status, "captured");
        assert!(interpret(Op::Capture, 200, br#"{"status": "authorized"}"#).is_err());
    }

    #[test]
    fn transport_errors_keep_their_kind() {
        let mut s = Mem::default();
        let mut net = Script::default()
            .fail(Error::unavailable("timed out"))
            .fail(Error::rejected("origin https://x is not granted"));
        let e = authorize(&cfg(), &mut s, &mut net, &charge("r", 1)).unwrap_err();
        assert_eq!(kind(&e), "unavailable");
        let e = authorize(&cfg(), &mut s, &mut net, &charge("r", 1)).unwrap_err();
        assert_eq!(kind(&e), "internal");
        assert!(s.0.is_empty());
        // A declined charge records nothing either; the retry asks again.
        let mut net = Script::default()
            .reply(402, json!({ "reason": "declined by issuer" }))
            .reply(201, authorized("pay_2"));
        let e = authorize(&cfg(), &mut s, &mut net, &charge("r", 1)).unwrap_err();
        assert_eq!(e.message(), "declined by issuer");
        authorize(&cfg(), &mut s, &mut net, &charge("r", 1)).unwrap();
        assert_eq!(net.seen.len(), 2);
    }

    #[test]
    fn unusable_ids_are_refused() {
        for body in [
            json!({ "status": "authorized" }),
            json!({ "id": "../admin", "status": "authorized" }),
            json!({ "id": "", "status": "authorized" }),
        ] {
            let mut net = Script::default().reply(200, body);
            let e = authorize(&cfg(), &mut Mem::default(), &mut net, &charge("r", 1)).unwrap_err();
            assert_eq!(kind(&e), "internal");
        }
    }

    #[test]
    fn capture_once_then_answer_from_kv() {
        let mut s = Mem::default();
        let mut net = Script::default()
            .reply(201, authorized("pay_1"))
            .reply(200, json!({ "id": "pay_1", "status": "captured" }))
            .reply(200, json!({ "id": "pay_1", "status": "refunded" }));
        authorize(&cfg(), &mut s, &mut net, &charge("r", 5000)).unwrap();
        let r = capture(&cfg(), &mut s, &mut net, "pay_1", &inr(5000)).unwrap();
        assert!(matches!(r.status, PaymentStatus::Captured));
        assert_eq!(
            net.seen[1].url,
            "https://pay.example.org/divoc/payments/pay_1/capture"
        );
        assert_eq!(net.header(1, "idempotency-key"), Some("capture:pay_1"));
        assert_eq!(
            net.body(1),
            json!({ "amount": { "currency": "INR", "minor_units": 5000 } })
        );
        let again = capture(&cfg(), &mut s, &mut net, "pay_1", &inr(5000)).unwrap();
        assert!(matches!(again.status, PaymentStatus::Captured));
        assert_eq!(
            net.seen.len(),
            2,
            "a second capture must not reach the gateway"
        );

        let r = refund(
            &cfg(),
            &mut s,
            &mut net,
            "pay_1",
            &inr(2000),
            "dose\ncancelled",
        )
        .unwrap();
        assert!(matches!(r.status, PaymentStatus::Refunded));
        assert_eq!(r.amount.minor_units, 2000);
        assert_eq!(
            net.seen[2].url,
            "https://pay.example.org/divoc/payments/pay_1/refund"
        );
        assert_eq!(net.header(2, "idempotency-key"), Some("refund:pay_1"));
        assert_eq!(net.body(2)["reason"], "dose cancelled");
        refund(&cfg(), &mut s, &mut net, "pay_1", &inr(2000), "").unwrap();
        assert_eq!(net.seen.len(), 3);
        let e = capture(&cfg(), &mut s, &mut net, "pay_1", &inr(5000)).unwrap_err();
        assert_eq!(kind(&e), "rejected");
    }

    #[test]
    fn failed_capture_stays_authorized_and_amounts_are_checked() {
        let mut s = Mem::default();
        let mut net = Script::default()
            .reply(201, authorized("pay_1"))
            .reply(503, json!({}))
            .reply(200, json!({ "status": "captured" }));
        authorize(&cfg(), &mut s, &mut net, &charge("r", 5000)).unwrap();
        for amount in [
            inr(0),
            inr(-1),
            inr(5001),
            inr(i64::MIN),
            Money {
                currency: "USD".into(),
                minor_units: 1,
            },
        ] {
            let e = capture(&cfg(), &mut s, &mut net, "pay_1", &amount).unwrap_err();
            assert_eq!(kind(&e), "invalid-input", "{amount:?}");
        }
        let e = capture(&cfg(), &mut s, &mut net, "pay_1", &inr(5000)).unwrap_err();
        assert_eq!(kind(&e), "unavailable");
        // The retry goes to the gateway with the same key.
        capture(&cfg(), &mut s, &mut net, "pay_1", &inr(5000)).unwrap();
        assert_eq!(
            net.header(1, "idempotency-key"),
            net.header(2, "idempotency-key")
        );
    }

    #[test]
    fn gateways_that_capture_at_once_are_not_captured_again() {
        let mut s = Mem::default();
        let mut net = Script::default().reply(200, json!({ "id": "pay_9", "status": "captured" }));
        let r = authorize(&cfg(), &mut s, &mut net, &charge("r", 700)).unwrap();
        assert!(matches!(r.status, PaymentStatus::Captured));
        capture(&cfg(), &mut s, &mut net, "pay_9", &inr(700)).unwrap();
        assert_eq!(net.seen.len(), 1);
    }

    #[test]
    fn api_key_header_is_configurable_and_optional() {
        let mut c = cfg();
        c.api_key_header = "Authorization".into();
        c.api_key = Some("Bearer sk-secret".into());
        let mut net = Script::default().reply(200, authorized("p1"));
        authorize(&c, &mut Mem::default(), &mut net, &charge("r", 1)).unwrap();
        assert_eq!(net.header(0, "authorization"), Some("Bearer sk-secret"));
        c.api_key = None;
        let mut net = Script::default().reply(200, authorized("p2"));
        authorize(&c, &mut Mem::default(), &mut net, &charge("r", 1)).unwrap();
        assert!(net.seen[0]
            .headers
            .iter()
            .all(|(n, _)| n != "authorization"));
    }
}
