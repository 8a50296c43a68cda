//! Cases every plugin of a world must pass whatever it does, generated in
//! code because their inputs are large or derived from the plugin:
//! - `robust/*`: oversized, odd-unicode, control-character and extreme-number
//!   inputs, and 10 000-element lists, must produce an answer or an error
//!   variant, never a fault (trap, time-out, memory or output limit);
//! - `deterministic/*`: functions that must not depend on chance give the
//!   same outcome for the same input in two fresh runtimes;
//! - world invariants checked on every answer of those cases (a blank claim
//!   is never verified, deny reasons are non-empty, an acknowledged sequence
//!   is never beyond what was delivered).

use divoc_runtime::types::{
    distribution, eligibility, events, format, identity, payment, Contact, ContactKind, Identity,
    Money, Recipient,
};
use divoc_runtime::World;
use serde_json::Value;

use crate::cases::{is_empty, variant_name};
use crate::harness::{Call, Outcome};

/// Printable but hostile text: bidi override, NUL, BOM, zero-width joiner,
/// combining marks, an emoji with a skin-tone modifier, the last code point,
/// a lone high plane private-use character and a 4-byte CJK character.
pub(crate) const ODD: &str =
    "\u{202E}A\u{0000}\u{FEFF}B\u{200D}e\u{0301}\u{0327}\u{1F44D}\u{1F3FD}\u{10FFFF}\u{F0000}\u{20000}";
/// C0 and C1 controls, an ANSI escape and a CRLF.
pub(crate) const CONTROL: &str =
    "\u{0001}\u{0007}\u{0008}\u{001B}[31m\r\n\u{007F}\u{0085}\u{009B}x";
/// Only whitespace, none of it ASCII: blank to `str::trim`.
pub(crate) const BLANK_UNICODE: &str = "\u{00A0}\u{2003}\u{3000}\u{2028}\t";
/// Elements in the "many" lists.
pub(crate) const MANY: usize = 10_000;

/// One generated case.
pub(crate) struct GenericCase {
    pub name: String,
    pub kind: Kind,
}

pub(crate) enum Kind {
    /// Every call, in one session, must answer without a fault.
    Robust(Vec<Call>),
    /// Each call, in two fresh sessions, must give the same outcome.
    Deterministic(Vec<Call>),
}

/// Facts about the plugin the generators need, learned by calling it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub identity_type: String,
    pub mode: String,
    pub signing_purpose: String,
    /// Length of the "oversized" strings; see [`huge_len`].
    pub huge: usize,
}

/// Oversized strings are 1 MiB, or half the plugin's output limit if that is
/// smaller: an error message that quotes the input counts toward the output
/// limit, and a plugin cannot know a limit the host sets.
pub(crate) fn huge_len(output_bytes: u64) -> usize {
    let half = usize::try_from(output_bytes / 2).unwrap_or(usize::MAX);
    (1 << 20).min(half).max(1024)
}

fn huge(facts: &Facts, c: char) -> String {
    std::iter::repeat_n(c, facts.huge).collect()
}

fn claim(id_type: &str, value: &str) -> identity::Claim {
    identity::Claim {
        id_type: id_type.into(),
        value: value.into(),
        name: None,
        dob: None,
        challenge_id: None,
        challenge_response: None,
    }
}

fn money(currency: &str, minor_units: i64) -> Money {
    Money {
        currency: currency.into(),
        minor_units,
    }
}

fn charge(facts: &Facts, reference: &str) -> payment::Charge {
    payment::Charge {
        reference: reference.into(),
        mode: facts.mode.clone(),
        amount: money("INR", 100),
        program: "C19".into(),
        description: "conformance".into(),
    }
}

fn credential(facts: &Facts, json: &str) -> format::Credential {
    format::Credential {
        id: "conformance-1".into(),
        json: json.into(),
        signing_purpose: facts.signing_purpose.clone(),
    }
}

fn message(contacts: Vec<Contact>) -> distribution::Message {
    distribution::Message {
        id: "conformance-1".into(),
        template: "certificate-issued".into(),
        recipient_name: "Conformance Recipient".into(),
        contacts,
        certificate_ids: vec!["conformance-cert-1".into()],
        attachments: Vec::new(),
        variables: Vec::new(),
    }
}

fn email() -> Contact {
    Contact {
        kind: ContactKind::Email,
        value: "recipient@example.org".into(),
    }
}

fn recipient() -> Recipient {
    Recipient {
        name: "Conformance Recipient".into(),
        dob: Some("1980-01-15".into()),
        age: Some(45),
        gender: None,
        nationality: None,
        identity: Identity {
            id_type: "national-id".into(),
            value: "234123412346".into(),
        },
        contacts: vec![email()],
        address: None,
    }
}

fn query(dose: u32, previous: Vec<eligibility::PreviousDose>) -> eligibility::Query {
    eligibility::Query {
        recipient: recipient(),
        program: "C19".into(),
        vaccine: Some("covishield".into()),
        dose,
        date: "2025-06-01".into(),
        previous_doses: previous,
    }
}

fn evaluate(q: eligibility::Query) -> Call {
    Call::Evaluate(Box::new(q))
}

fn previous(dose: u32, date: &str) -> eligibility::PreviousDose {
    eligibility::PreviousDose {
        vaccine: "covishield".into(),
        dose,
        date: date.into(),
    }
}

fn event(sequence: u64, kind: &str, payload: &str) -> events::Event {
    events::Event {
        sequence,
        kind: kind.into(),
        occurred_at: 1_750_000_000_000,
        payload: payload.into(),
    }
}

fn robust(name: &str, calls: Vec<Call>) -> GenericCase {
    GenericCase {
        name: format!("robust/{name}"),
        kind: Kind::Robust(calls),
    }
}

fn deterministic(name: &str, calls: Vec<Call>) -> GenericCase {
    GenericCase {
        name: format!("deterministic/{name}"),
        kind: Kind::Deterministic(calls),
    }
}

/// The generic cases of `world`.
pub(crate) fn cases(world: World, f: &Facts) -> Vec<GenericCase> {
    match world {
        World::IdentityProvider => identity_cases(f),
        World::PaymentProvider => payment_cases(f),
        World::CertificateFormat => format_cases(f),
        World::DistributionChannel => distribution_cases(f),
        World::RolloutPolicy => policy_cases(f),
        World::EventSubscriber => events_cases(f),
    }
}

fn identity_cases(f: &Facts) -> Vec<GenericCase> {
    let t = f.identity_type.as_str();
    let mut all_optional = claim(t, "234123412346");
    all_optional.name = Some(huge(f, 'n'));
    all_optional.dob = Some(huge(f, '1'));
    all_optional.challenge_id = Some(huge(f, 'c'));
    all_optional.challenge_response = Some(huge(f, '9'));
    let mut odd = claim(t, ODD);
    odd.name = Some(ODD.into());
    odd.dob = Some(ODD.into());
    vec![
        robust(
            "huge-value",
            vec![
                Call::Verify(claim(t, &huge(f, '7'))),
                Call::Verify(claim(t, &huge(f, 'x'))),
            ],
        ),
        robust(
            "huge-id-type",
            vec![Call::Verify(claim(&huge(f, 't'), "1"))],
        ),
        robust("huge-optional-fields", vec![Call::Verify(all_optional)]),
        robust(
            "odd-unicode",
            vec![Call::Verify(odd), Call::Verify(claim(ODD, "1"))],
        ),
        robust("control-characters", vec![Call::Verify(claim(t, CONTROL))]),
        robust(
            "blank-unicode-value",
            vec![Call::Verify(claim(t, BLANK_UNICODE))],
        ),
        deterministic("identity-types", vec![Call::IdentityTypes]),
        deterministic(
            "verify",
            vec![
                Call::Verify(claim(t, "234123412346")),
                Call::Verify(claim(t, "1234")),
                Call::Verify(claim(t, "conformance")),
            ],
        ),
    ]
}

fn payment_cases(f: &Facts) -> Vec<GenericCase> {
    let mut huge_fields = charge(f, "conformance-huge-fields");
    huge_fields.description = huge(f, 'd');
    huge_fields.program = huge(f, 'p');
    let mut huge_mode = charge(f, "conformance-huge-mode");
    huge_mode.mode = huge(f, 'm');
    let mut odd = charge(f, ODD);
    odd.description = ODD.into();
    odd.program = CONTROL.into();
    odd.amount.currency = ODD.into();
    let extreme = |reference: &str, units: i64| {
        let mut c = charge(f, reference);
        c.amount.minor_units = units;
        Call::Authorize(c)
    };
    vec![
        robust(
            "huge-reference",
            vec![
                Call::Authorize(charge(f, &huge(f, 'r'))),
                Call::Capture(huge(f, 'r'), money("INR", 100)),
                Call::Refund(huge(f, 'r'), money("INR", 100), huge(f, 'x')),
            ],
        ),
        robust("huge-fields", vec![Call::Authorize(huge_fields)]),
        robust("huge-mode", vec![Call::Authorize(huge_mode)]),
        robust(
            "odd-unicode",
            vec![
                Call::Authorize(odd),
                Call::Capture(ODD.into(), money(ODD, 1)),
                Call::Refund(CONTROL.into(), money(CONTROL, 1), ODD.into()),
            ],
        ),
        robust(
            "extreme-amounts",
            vec![
                extreme("conformance-min", i64::MIN),
                extreme("conformance-max", i64::MAX),
                extreme("conformance-zero", 0),
                Call::Capture("conformance-max".into(), money("INR", i64::MIN)),
                Call::Refund(
                    "conformance-max".into(),
                    money("INR", i64::MAX),
                    String::new(),
                ),
            ],
        ),
        deterministic("modes", vec![Call::Modes]),
    ]
}

fn format_cases(f: &Facts) -> Vec<GenericCase> {
    let mut huge_ids = credential(f, r#"{"id": "conformance-1"}"#);
    huge_ids.id = huge(f, 'i');
    huge_ids.signing_purpose = huge(f, 'p');
    let nested: String = "[".repeat(f.huge / 2) + &"]".repeat(f.huge / 2);
    vec![
        robust(
            "decode-huge",
            vec![
                Call::Decode(format::ArtifactData::Text(huge(f, 'A'))),
                Call::Decode(format::ArtifactData::Text(huge(f, '.'))),
                Call::Decode(format::ArtifactData::Bytes(vec![0xff; f.huge])),
                Call::Decode(format::ArtifactData::Bytes(vec![0; f.huge])),
            ],
        ),
        robust(
            "decode-odd",
            vec![
                Call::Decode(format::ArtifactData::Text(String::new())),
                Call::Decode(format::ArtifactData::Bytes(Vec::new())),
                Call::Decode(format::ArtifactData::Text(ODD.into())),
                Call::Decode(format::ArtifactData::Text(CONTROL.into())),
                Call::Decode(format::ArtifactData::Text("HC1:.a.b.c".into())),
            ],
        ),
        robust(
            "encode-huge",
            vec![
                Call::Encode(credential(f, &huge(f, '{'))),
                Call::Encode(credential(f, &nested)),
                Call::Encode(huge_ids),
            ],
        ),
        robust(
            "encode-odd",
            vec![
                Call::Encode(credential(f, "")),
                Call::Encode(credential(f, ODD)),
                Call::Encode(credential(
                    f,
                    &serde_json::json!({ "name": ODD }).to_string(),
                )),
                Call::Encode(credential(f, CONTROL)),
            ],
        ),
        deterministic("info", vec![Call::FormatInfo]),
    ]
}

fn distribution_cases(f: &Facts) -> Vec<GenericCase> {
    let many_contacts = message(
        (0..MANY)
            .map(|i| Contact {
                kind: ContactKind::Phone,
                value: format!("+9100000{i:05}"),
            })
            .collect(),
    );
    let mut huge_attachment = message(vec![email()]);
    huge_attachment.attachments = vec![distribution::Attachment {
        name: "certificate.pdf".into(),
        media_type: "application/pdf".into(),
        data: vec![0x25; f.huge],
    }];
    let mut many_lists = message(vec![email()]);
    many_lists.attachments = (0..MANY)
        .map(|i| distribution::Attachment {
            name: format!("a{i}"),
            media_type: "text/plain".into(),
            data: Vec::new(),
        })
        .collect();
    many_lists.variables = (0..MANY)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    many_lists.certificate_ids = (0..MANY).map(|i| format!("cert-{i}")).collect();
    let mut huge_strings = message(vec![Contact {
        kind: ContactKind::Other,
        value: huge(f, 'c'),
    }]);
    huge_strings.id = huge(f, 'i');
    huge_strings.template = huge(f, 't');
    huge_strings.recipient_name = huge(f, 'n');
    let mut odd = message(vec![
        Contact {
            kind: ContactKind::Email,
            value: ODD.into(),
        },
        Contact {
            kind: ContactKind::Phone,
            value: CONTROL.into(),
        },
    ]);
    odd.recipient_name = ODD.into();
    odd.template = CONTROL.into();
    odd.variables = vec![(ODD.into(), CONTROL.into())];
    vec![
        robust("many-contacts", vec![Call::DeliverMessage(many_contacts)]),
        robust(
            "huge-attachment",
            vec![Call::DeliverMessage(huge_attachment)],
        ),
        robust(
            "many-attachments-and-variables",
            vec![Call::DeliverMessage(many_lists)],
        ),
        robust("huge-strings", vec![Call::DeliverMessage(huge_strings)]),
        robust("odd-unicode", vec![Call::DeliverMessage(odd)]),
        deterministic("info", vec![Call::ChannelInfo]),
    ]
}

fn policy_cases(f: &Facts) -> Vec<GenericCase> {
    let many = query(
        3,
        (0..MANY)
            .map(|i| previous(u32::try_from(i % 3).unwrap_or(0), "2024-01-01"))
            .collect(),
    );
    let mut huge_strings = query(1, vec![previous(1, &huge(f, '2'))]);
    huge_strings.date = huge(f, '2');
    huge_strings.program = huge(f, 'p');
    huge_strings.recipient.dob = Some(huge(f, '1'));
    huge_strings.recipient.age = None;
    let mut odd = query(1, vec![previous(1, ODD)]);
    odd.date = ODD.into();
    odd.recipient.age = None;
    odd.recipient.dob = Some(CONTROL.into());
    odd.recipient.name = ODD.into();
    let mut extreme = query(u32::MAX, vec![previous(u32::MAX, "2024-01-01")]);
    extreme.recipient.age = Some(u32::MAX);
    let mut dates = query(2, vec![previous(1, "9999-12-31")]);
    dates.date = "0000-01-01".into();
    dates.recipient.age = None;
    dates.recipient.dob = Some("2025-02-29".into());
    let mut minimal = query(0, Vec::new());
    minimal.recipient.age = None;
    minimal.recipient.dob = None;
    minimal.date = String::new();
    let mut no_age = query(1, Vec::new());
    no_age.recipient.age = None;
    no_age.recipient.dob = None;
    vec![
        robust("many-previous-doses", vec![evaluate(many)]),
        robust("huge-strings", vec![evaluate(huge_strings)]),
        robust("odd-unicode", vec![evaluate(odd)]),
        robust(
            "extreme-values",
            vec![evaluate(extreme), evaluate(dates), evaluate(minimal)],
        ),
        deterministic(
            "evaluate",
            vec![
                evaluate(query(1, Vec::new())),
                evaluate(query(2, vec![previous(1, "2025-05-20")])),
                evaluate(query(2, vec![previous(1, "2025-01-01")])),
                evaluate(no_age),
            ],
        ),
    ]
}

fn events_cases(f: &Facts) -> Vec<GenericCase> {
    let many: Vec<_> = (1..=MANY as u64)
        .map(|s| event(s, "certificate.issued", r#"{"n":1}"#))
        .collect();
    vec![
        robust("many-events", vec![Call::DeliverEvents(many)]),
        robust(
            "huge-payload",
            vec![Call::DeliverEvents(vec![
                event(1, "certificate.issued", &huge(f, 'p')),
                event(2, &huge(f, 'k'), "{}"),
            ])],
        ),
        robust(
            "extreme-sequences",
            vec![Call::DeliverEvents(vec![
                event(u64::MAX - 1, "certificate.issued", "{}"),
                event(u64::MAX, "certificate.revoked", "{}"),
            ])],
        ),
        robust(
            "odd-unicode",
            vec![Call::DeliverEvents(vec![
                event(1, ODD, ODD),
                event(2, CONTROL, CONTROL),
                event(3, "", ""),
            ])],
        ),
        deterministic("interests", vec![Call::Interests]),
    ]
}

/// World invariants that hold for every answer, whatever the input.
pub(crate) fn invariant(call: &Call, outcome: &Outcome) -> Result<(), String> {
    let Outcome::Ok(v) = outcome else {
        return Ok(());
    };
    match call {
        Call::Verify(claim)
            if claim.value.trim().is_empty() && variant_name(v) == Some("verified") =>
        {
            return Err("a blank claim value was verified".into());
        }
        Call::Evaluate(_) => {
            if let Some(reasons) = v.get("deny") {
                let ok = reasons
                    .as_array()
                    .is_some_and(|r| !r.is_empty() && !r.iter().any(is_empty));
                if !ok {
                    return Err(format!("deny without non-empty reasons: {reasons}"));
                }
            }
        }
        Call::DeliverEvents(batch) => {
            let highest = batch.iter().map(|e| e.sequence).max().unwrap_or(0);
            if v.as_u64().is_some_and(|ack| ack > highest) {
                return Err(format!(
                    "acknowledged sequence {v} beyond the highest delivered, {highest}"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The part of an outcome that must repeat: a challenge's id is random by
/// design, so only the fact that a challenge was issued is compared.
pub(crate) fn stable(call: &Call, outcome: &Outcome) -> Value {
    match (call, outcome) {
        (Call::Verify(_), Outcome::Ok(v)) if variant_name(v) == Some("challenge") => {
            serde_json::json!({ "ok": "challenge" })
        }
        _ => outcome.fingerprint(),
    }
}
