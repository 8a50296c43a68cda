//! Contract cases stored as data: `cases/<world>/<case>/{input,expect,config}.json`.
//! The format is documented in `cases/README.md`; this module reads it,
//! runs the call and judges the outcome.

use std::path::{Path, PathBuf};

use divoc_runtime::World;
use include_dir::{include_dir, Dir};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::harness::{kind_name, Call, Outcome, Plugin};
use crate::value::{self, Obj, ShapeError};
use crate::ConformanceError;

/// The suite's own cases, embedded so the binary works from any directory.
static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/cases");

/// The files of one case, read but not yet parsed.
#[derive(Debug, Clone)]
pub(crate) struct CaseFiles {
    pub name: String,
    pub input: String,
    pub expect: String,
    pub config: Option<String>,
}

/// The cases for `world`, from `dir` or the embedded set, sorted by name.
pub(crate) fn load(dir: Option<&Path>, world: World) -> Result<Vec<CaseFiles>, ConformanceError> {
    let mut cases = match dir {
        None => embedded(world)?,
        Some(dir) => from_dir(&dir.join(world.name()))?,
    };
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(cases)
}

fn embedded(world: World) -> Result<Vec<CaseFiles>, ConformanceError> {
    let Some(world_dir) = EMBEDDED.get_dir(world.name()) else {
        return Ok(Vec::new());
    };
    let text = |d: &Dir<'_>, file: &str| -> Result<Option<String>, ConformanceError> {
        let Some(f) = d.get_file(d.path().join(file)) else {
            return Ok(None);
        };
        f.contents_utf8()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| ConformanceError::Cases {
                path: f.path().to_path_buf(),
                message: "not UTF-8".into(),
            })
    };
    let mut cases = Vec::new();
    for case in world_dir.dirs() {
        let name = case
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let missing = |file: &str| ConformanceError::Cases {
            path: case.path().join(file),
            message: "missing".into(),
        };
        cases.push(CaseFiles {
            name,
            input: text(case, "input.json")?.ok_or_else(|| missing("input.json"))?,
            expect: text(case, "expect.json")?.ok_or_else(|| missing("expect.json"))?,
            config: text(case, "config.json")?,
        });
    }
    Ok(cases)
}

fn from_dir(world_dir: &Path) -> Result<Vec<CaseFiles>, ConformanceError> {
    // A cases directory without this world simply has no data cases for it.
    if !world_dir.is_dir() {
        return Ok(Vec::new());
    }
    let io = |path: &Path, e: std::io::Error| ConformanceError::Cases {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let read = |path: PathBuf| std::fs::read_to_string(&path).map_err(|e| io(&path, e));
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(world_dir).map_err(|e| io(world_dir, e))? {
        let dir = entry.map_err(|e| io(world_dir, e))?.path();
        if !dir.is_dir() {
            continue;
        }
        let config = dir.join("config.json");
        cases.push(CaseFiles {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            input: read(dir.join("input.json"))?,
            expect: read(dir.join("expect.json"))?,
            config: if config.is_file() {
                Some(read(config)?)
            } else {
                None
            },
        });
    }
    Ok(cases)
}

/// `input.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Input {
    #[serde(default)]
    #[allow(dead_code)] // documentation for readers of the case
    description: String,
    #[serde(default)]
    before: Vec<Step>,
    call: String,
    #[serde(default)]
    args: Map<String, Value>,
}

impl Input {
    fn step(&self) -> Step {
        Step {
            call: self.call.clone(),
            args: self.args.clone(),
            bind: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Step {
    call: String,
    #[serde(default)]
    args: Map<String, Value>,
    /// Name under which a `before` step's ok value can be `$ref`-ed.
    bind: Option<String>,
}

/// One or several allowed values.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn list(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// `expect.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Expect {
    outcome: OneOrMany,
    kind: Option<OneOrMany>,
    failure: Option<OneOrMany>,
    #[serde(default, rename = "match")]
    matches: Vec<Assertion>,
}

/// A check on the ok value at a JSON pointer; every predicate given must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Assertion {
    #[serde(default)]
    path: String,
    /// Passes when nothing is at `path` (e.g. `/deny` of an `allow`).
    #[serde(default)]
    optional: bool,
    equals: Option<Value>,
    one_of: Option<Vec<Value>>,
    variant: Option<Vec<String>>,
    non_empty: Option<bool>,
    each_non_empty: Option<bool>,
    at_most: Option<f64>,
    at_least: Option<f64>,
    media_type: Option<bool>,
}

/// Runs one data case; `Err` is the reason it failed.
pub(crate) fn run(plugin: &Plugin, world: World, case: &CaseFiles) -> Result<String, String> {
    let config = match &case.config {
        Some(text) => Some(
            serde_json::from_str::<Value>(text)
                .map_err(|e| format!("invalid case: config.json: {e}"))?,
        ),
        None => None,
    };
    let input: Input =
        serde_json::from_str(&case.input).map_err(|e| format!("invalid case: input.json: {e}"))?;
    let expect_json: Value = serde_json::from_str(&case.expect)
        .map_err(|e| format!("invalid case: expect.json: {e}"))?;

    let session = plugin
        .session(config.as_ref())
        .map_err(|e| format!("cannot load the plugin for this case: {e}"))?;
    let mut env = Map::new();
    env.insert("manifest".into(), manifest_env(plugin));

    for (i, step) in input.before.iter().enumerate() {
        let call = build_call(world, step, &env).map_err(|e| format!("invalid case: {e}"))?;
        let outcome = session.call(&call);
        match outcome {
            Outcome::Ok(v) => {
                if let Some(bind) = &step.bind {
                    env.insert(bind.clone(), v);
                }
            }
            other => {
                return Err(format!(
                    "setup step {} ({}) did not succeed: {}",
                    i + 1,
                    call.function(),
                    other.describe()
                ))
            }
        }
    }
    let call = build_call(world, &input.step(), &env).map_err(|e| format!("invalid case: {e}"))?;
    let expect_json = resolve(&expect_json, &env).map_err(|e| format!("invalid case: {e}"))?;
    let expect: Expect = serde_json::from_value(expect_json)
        .map_err(|e| format!("invalid case: expect.json: {e}"))?;
    let outcome = session.call(&call);
    judge(&expect, &outcome).map(|()| format!("{}: {}", call.function(), outcome.describe()))
}

/// What a case may `$ref` about the plugin under test, under `/manifest`.
fn manifest_env(plugin: &Plugin) -> Value {
    let c = &plugin.manifest.capabilities;
    serde_json::json!({
        "name": plugin.manifest.plugin.name,
        "world": plugin.manifest.plugin.world.name(),
        "signer-purposes": c.signer.as_ref().map(|s| s.purposes.clone()).unwrap_or_default(),
        "http-origins": c.http.as_ref().map(|h| h.origins.clone()).unwrap_or_default(),
    })
}

/// Replaces `{"$ref": "/pointer", "default": v}` and
/// `{"$repeat": "text", "times": n}` anywhere in `v`.
fn resolve(v: &Value, env: &Map<String, Value>) -> Result<Value, ShapeError> {
    match v {
        Value::Object(map) if map.contains_key("$ref") => {
            let pointer = map.get("$ref").and_then(Value::as_str).unwrap_or_default();
            let env = Value::Object(env.clone());
            match (env.pointer(pointer), map.get("default")) {
                (Some(found), _) => Ok(found.clone()),
                (None, Some(default)) => Ok(default.clone()),
                (None, None) => Err(ShapeError(format!("$ref `{pointer}` resolves to nothing"))),
            }
        }
        Value::Object(map) if map.contains_key("$repeat") => {
            let text = map
                .get("$repeat")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let times = map.get("times").and_then(Value::as_u64).unwrap_or(1);
            let times = usize::try_from(times).map_err(|_| ShapeError("times too large".into()))?;
            Ok(Value::String(text.repeat(times)))
        }
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), resolve(v, env)?)))
            .collect::<Result<Map<_, _>, _>>()
            .map(Value::Object),
        Value::Array(items) => items
            .iter()
            .map(|v| resolve(v, env))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

fn build_call(world: World, step: &Step, env: &Map<String, Value>) -> Result<Call, ShapeError> {
    let args = resolve(&Value::Object(step.args.clone()), env)?;
    let mut a = Obj::new("args", &args)?;
    let call = match (world, step.call.as_str()) {
        (World::IdentityProvider, "identity-types") => Call::IdentityTypes,
        (World::IdentityProvider, "verify") => Call::Verify(value::claim(a.required("claim")?)?),
        (World::PaymentProvider, "modes") => Call::Modes,
        (World::PaymentProvider, "authorize") => {
            Call::Authorize(value::charge(a.required("charge")?)?)
        }
        (World::PaymentProvider, "capture") => Call::Capture(
            value::string_arg(a.required("provider-reference")?)?,
            value::money(a.required("amount")?)?,
        ),
        (World::PaymentProvider, "refund") => Call::Refund(
            value::string_arg(a.required("provider-reference")?)?,
            value::money(a.required("amount")?)?,
            a.string("reason")?,
        ),
        (World::CertificateFormat, "info") => Call::FormatInfo,
        (World::CertificateFormat, "encode") => {
            Call::Encode(value::credential(a.required("credential")?)?)
        }
        (World::CertificateFormat, "decode") => {
            Call::Decode(value::artifact(a.required("artifact")?)?)
        }
        (World::DistributionChannel, "info") => Call::ChannelInfo,
        (World::DistributionChannel, "deliver") => {
            Call::DeliverMessage(value::message(a.required("message")?)?)
        }
        (World::RolloutPolicy, "evaluate") => {
            Call::Evaluate(Box::new(value::query(a.required("query")?)?))
        }
        (World::EventSubscriber, "interests") => Call::Interests,
        (World::EventSubscriber, "deliver") => {
            Call::DeliverEvents(value::events_list(a.required("events")?)?)
        }
        (world, other) => return Err(ShapeError(format!("`{world}` has no function `{other}`"))),
    };
    a.finish()?;
    Ok(call)
}

fn judge(expect: &Expect, outcome: &Outcome) -> Result<(), String> {
    let allowed = expect.outcome.list();
    let allows = |class: &str| allowed.contains(&class) || allowed.contains(&"no-fault");
    match outcome {
        Outcome::Fault(_) | Outcome::Unavailable(_) => Err(outcome.describe()),
        Outcome::Ok(v) => {
            if !allows("ok") {
                return Err(format!(
                    "expected {}, got {}",
                    allowed.join(" or "),
                    outcome.describe()
                ));
            }
            for assertion in &expect.matches {
                check(assertion, v)?;
            }
            Ok(())
        }
        Outcome::Error { kind, failure, .. } => {
            if !allows("error") {
                return Err(format!(
                    "expected {}, got {}",
                    allowed.join(" or "),
                    outcome.describe()
                ));
            }
            if let Some(kinds) = &expect.kind {
                if !kinds.list().contains(&kind_name(*kind)) {
                    return Err(format!(
                        "expected an error of kind {}, got {}",
                        kinds.list().join(" or "),
                        outcome.describe()
                    ));
                }
            }
            if let Some(failures) = &expect.failure {
                if !failure.is_some_and(|f| failures.list().contains(&f)) {
                    return Err(format!(
                        "expected a {} failure, got {}",
                        failures.list().join(" or "),
                        outcome.describe()
                    ));
                }
            }
            Ok(())
        }
    }
}

/// The case name of a variant value (`{"rejected": ..}` or `"allow"`).
pub(crate) fn variant_name(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(map) if map.len() == 1 => map.keys().next().map(String::as_str),
        _ => None,
    }
}

/// Whether a value counts as empty: blank strings, empty lists and objects.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// `type/subtype[; parameters]` with RFC 6838 restricted-name characters.
pub(crate) fn is_media_type(s: &str) -> bool {
    let essence = s.split(';').next().unwrap_or_default().trim();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 127
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    match essence.split_once('/') {
        Some((t, sub)) => name_ok(t) && name_ok(sub),
        None => false,
    }
}

fn check(a: &Assertion, root: &Value) -> Result<(), String> {
    let at = if a.path.is_empty() {
        "the result"
    } else {
        a.path.as_str()
    };
    let Some(v) = root.pointer(&a.path) else {
        if a.optional {
            return Ok(());
        }
        return Err(format!("nothing at {at} in {}", short(root)));
    };
    let fail = |what: String| Err(format!("{at}: {what}, got {}", short(v)));
    if let Some(expected) = &a.equals {
        if v != expected {
            return fail(format!("expected {expected}"));
        }
    }
    if let Some(options) = &a.one_of {
        if !options.contains(v) {
            return fail(format!("expected one of {}", Value::Array(options.clone())));
        }
    }
    if let Some(cases) = &a.variant {
        if !variant_name(v).is_some_and(|n| cases.iter().any(|c| c == n)) {
            return fail(format!("expected variant {}", cases.join(" or ")));
        }
    }
    if a.non_empty == Some(true) && is_empty(v) {
        return fail("expected a non-empty value".into());
    }
    if a.each_non_empty == Some(true) {
        match v.as_array() {
            Some(items) if !items.iter().any(is_empty) => {}
            _ => return fail("expected a list of non-empty values".into()),
        }
    }
    let number = v.as_f64();
    if let Some(max) = a.at_most {
        if !number.is_some_and(|n| n <= max) {
            return fail(format!("expected at most {max}"));
        }
    }
    if let Some(min) = a.at_least {
        if !number.is_some_and(|n| n >= min) {
            return fail(format!("expected at least {min}"));
        }
    }
    if a.media_type == Some(true) && !v.as_str().is_some_and(is_media_type) {
        return fail("expected a media type `type/subtype`".into());
    }
    Ok(())
}

fn short(v: &Value) -> String {
    crate::harness::truncate(&v.to_string(), 200)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn every_embedded_case_parses() {
        for world in World::ALL {
            let cases = load(None, world).unwrap();
            assert!(!cases.is_empty(), "no cases for {world}");
            for case in cases {
                let input: Input = serde_json::from_str(&case.input)
                    .unwrap_or_else(|e| panic!("{world}/{}: input.json: {e}", case.name));
                let _: Value = serde_json::from_str(&case.expect).unwrap();
                // Build what does not depend on earlier steps' results.
                let mut env = Map::new();
                env.insert(
                    "manifest".into(),
                    json!({"signer-purposes": ["certificate"]}),
                );
                if input.before.iter().all(|s| s.bind.is_none()) {
                    build_call(world, &input.step(), &env)
                        .unwrap_or_else(|e| panic!("{world}/{}: {e}", case.name));
                }
                if let Some(config) = &case.config {
                    let _: Value = serde_json::from_str(config).unwrap();
                }
            }
        }
    }

    #[test]
    fn media_types() {
        assert!(is_media_type("application/vc+ld+json"));
        assert!(is_media_type("application/jose; charset=utf-8"));
        assert!(!is_media_type("application"));
        assert!(!is_media_type("/json"));
        assert!(!is_media_type("text/ html"));
    }

    #[test]
    fn refs_and_repeats_resolve() {
        let mut env = Map::new();
        env.insert("types".into(), json!(["national-id"]));
        let v = resolve(
            &json!({"a": {"$ref": "/types/0"}, "b": {"$repeat": "ab", "times": 2},
                    "c": {"$ref": "/nope", "default": 1}}),
            &env,
        )
        .unwrap();
        assert_eq!(v, json!({"a": "national-id", "b": "abab", "c": 1}));
        assert!(resolve(&json!({"$ref": "/nope"}), &env).is_err());
    }

    #[test]
    fn judging() {
        let expect: Expect = serde_json::from_value(json!({
            "outcome": ["ok", "error"], "kind": "invalid-input",
            "match": [{"variant": ["rejected"]}]
        }))
        .unwrap();
        assert!(judge(&expect, &Outcome::Ok(json!({"rejected": "no"}))).is_ok());
        assert!(judge(&expect, &Outcome::Ok(json!({"verified": {}}))).is_err());
        let error = |kind| Outcome::Error {
            kind,
            message: String::new(),
            failure: None,
        };
        assert!(judge(&expect, &error(divoc_runtime::GuestErrorKind::InvalidInput)).is_ok());
        assert!(judge(&expect, &error(divoc_runtime::GuestErrorKind::Internal)).is_err());
    }
}
