//! JSON-LD contexts: the documents that give our credentials' terms their
//! meaning (VC Data Model 2.0 §4.3), kept in the binary so that neither the
//! service nor a verifier using [`ContextStore`] fetches one from the
//! network.
//!
//! - The VC 2.0 base context, vendored byte for byte.
//! - Our vaccination vocabulary. Its recipient terms live in a type-scoped
//!   context of `VaccinationRecipient` that propagates into nested nodes
//!   (JSON-LD 1.1 §4.1.8 and `@propagate`, §4.1.9): a type-scoped context
//!   alone stops at the node of that type, which left `vaccination`,
//!   `address` and the rest undefined below it.
//! - One generated context per operator-defined credential type
//!   ([`type_context`]): the final VC 2.0 context has no `@vocab` (it moved
//!   to `undefined-terms/v2`), so without one a type's terms would expand to
//!   nothing and a JSON-LD verifier in safe mode would refuse the credential.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::credential::{CredentialConfig, CREDENTIALS_V2, VACCINATION_CONTEXT_URL};
use crate::types::{CredentialType, FieldType};

/// The VC Data Model 2.0 base context, `https://www.w3.org/ns/credentials/v2`.
pub const CREDENTIALS_V2_CONTEXT: &str = include_str!("../contexts/credentials-v2.jsonld");

/// Where a generated type's terms live: the namespace VC 2.0 gives terms
/// whose meaning the issuer defines (§4.3, `undefined-terms/v2`), so a
/// term means what it would have meant under that context's `@vocab`.
pub const ISSUER_DEPENDENT: &str = "https://www.w3.org/ns/credentials/issuer-dependent#";

const XSD: &str = "http://www.w3.org/2001/XMLSchema#";

/// The terms the VC 2.0 base context defines (all protected).
pub fn base_terms() -> &'static [String] {
    static TERMS: OnceLock<Vec<String>> = OnceLock::new();
    TERMS.get_or_init(|| {
        serde_json::from_str::<Value>(CREDENTIALS_V2_CONTEXT)
            .ok()
            .and_then(|v| {
                v.get("@context")
                    .and_then(Value::as_object)
                    .map(|m| m.keys().filter(|k| !k.starts_with('@')).cloned().collect())
            })
            .unwrap_or_default()
    })
}

/// Whether the VC 2.0 base context defines `term`.
pub fn is_base_term(term: &str) -> bool {
    base_terms().iter().any(|t| t == term)
}

/// The name the vaccination context is served under
/// (`/v1/contexts/vaccination-v1`); no configured type may take it.
pub const VACCINATION_CONTEXT_NAME: &str = "vaccination-v1";

/// The URL of a configured type's context on this deployment.
pub fn type_context_url(cfg: &CredentialConfig, type_name: &str) -> String {
    format!("{}/v1/contexts/{type_name}", cfg.base_url)
}

/// The context document generated from a type's definition: its VC type
/// and every path its fields write under `credentialSubject`, nested
/// objects as property-scoped contexts, leaves typed by the field's type
/// (`xsd:date`, `xsd:dateTime`, `xsd:integer`, `xsd:boolean`). Terms the
/// base context already defines (e.g. `name`) keep the base meaning;
/// [`CredentialType::check`] refuses paths that would redefine one.
pub fn type_context(t: &CredentialType) -> Value {
    let mut tree = Node::default();
    for spec in t.fields.values() {
        let path = spec.to.trim_start_matches("credentialSubject.");
        let segments: Vec<&str> = path.split('.').collect();
        tree.insert(&segments, spec.kind);
    }
    let mut ctx = Map::new();
    ctx.insert("@version".into(), json!(1.1));
    ctx.insert("@protected".into(), json!(true));
    ctx.insert("id".into(), json!("@id"));
    ctx.insert("type".into(), json!("@type"));
    ctx.insert(
        t.vc_type.clone(),
        json!(format!("{ISSUER_DEPENDENT}{}", t.vc_type)),
    );
    tree.write(&mut ctx, true);
    json!({ "@context": Value::Object(ctx) })
}

/// A path tree: leaves carry the field's type.
#[derive(Default)]
struct Node {
    kind: Option<FieldType>,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn insert(&mut self, path: &[&str], kind: FieldType) {
        match path.split_first() {
            None => self.kind = Some(kind),
            Some((head, rest)) => self
                .children
                .entry((*head).to_owned())
                .or_default()
                .insert(rest, kind),
        }
    }

    fn write(&self, ctx: &mut Map<String, Value>, top: bool) {
        for (term, node) in &self.children {
            if top && is_base_term(term) {
                // e.g. `name`: the base context's (protected) meaning holds.
                continue;
            }
            let mut def = Map::new();
            def.insert("@id".into(), json!(format!("{ISSUER_DEPENDENT}{term}")));
            match node.kind {
                Some(kind) => {
                    if let Some(xsd) = datatype(kind) {
                        def.insert("@type".into(), json!(format!("{XSD}{xsd}")));
                    }
                }
                None => {
                    let mut inner = Map::new();
                    node.write(&mut inner, false);
                    def.insert("@context".into(), Value::Object(inner));
                }
            }
            ctx.insert(term.clone(), Value::Object(def));
        }
    }
}

fn datatype(kind: FieldType) -> Option<&'static str> {
    match kind {
        FieldType::String => None,
        FieldType::Integer => Some("integer"),
        FieldType::Boolean => Some("boolean"),
        FieldType::Date => Some("date"),
        FieldType::DateTime => Some("dateTime"),
    }
}

/// Every context document this deployment's credentials name, by URL:
/// the JSON-LD document loader for verifiers and tests, and what
/// `GET /v1/contexts/{name}` serves.
#[derive(Debug, Clone, Default)]
pub struct ContextStore {
    documents: BTreeMap<String, Value>,
}

impl ContextStore {
    /// The base and vaccination contexts, and one per configured type.
    pub fn new(cfg: &CredentialConfig, types: &BTreeMap<String, CredentialType>) -> ContextStore {
        let mut documents = BTreeMap::new();
        for (url, text) in [
            (CREDENTIALS_V2, CREDENTIALS_V2_CONTEXT),
            (
                VACCINATION_CONTEXT_URL,
                crate::credential::VACCINATION_CONTEXT,
            ),
        ] {
            if let Ok(doc) = serde_json::from_str(text) {
                documents.insert(url.to_owned(), doc);
            }
        }
        for (name, t) in types {
            documents.insert(type_context_url(cfg, name), type_context(t));
        }
        ContextStore { documents }
    }

    /// The document for `url`, if it is one of ours.
    pub fn get(&self, url: &str) -> Option<&Value> {
        self.documents.get(url)
    }

    /// Every URL and document.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.documents.iter().map(|(k, v)| (k.as_str(), v))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_base_context_is_the_final_vc_2_0_one() {
        let doc: Value = serde_json::from_str(CREDENTIALS_V2_CONTEXT).unwrap();
        let ctx = &doc["@context"];
        assert_eq!(ctx["@protected"], true);
        // The Recommendation moved `@vocab` out of the base context.
        assert!(ctx.get("@vocab").is_none());
        for term in [
            "VerifiableCredential",
            "BitstringStatusListEntry",
            "DataIntegrityProof",
        ] {
            assert!(is_base_term(term), "{term}");
        }
        assert!(is_base_term("name") && !is_base_term("birthDate"));
    }

    #[test]
    fn a_type_context_defines_every_path() {
        let t: CredentialType = serde_json::from_value(json!({
            "vc-type": "TestResultCredential",
            "reference-field": "sampleId",
            "fields": {
                "sampleId": {"type": "string", "required": true, "to": "credentialSubject.test.sampleId"},
                "name": {"type": "string", "to": "credentialSubject.name"},
                "dob": {"type": "date", "to": "credentialSubject.birthDate"},
                "at": {"type": "date-time", "to": "credentialSubject.test.sampledAt"},
                "ct": {"type": "integer", "to": "credentialSubject.test.ct"}
            }
        }))
        .unwrap();
        let ctx = &type_context(&t)["@context"];
        assert_eq!(
            ctx["TestResultCredential"],
            format!("{ISSUER_DEPENDENT}TestResultCredential")
        );
        assert!(ctx.get("name").is_none(), "the base context's `name` holds");
        assert_eq!(ctx["birthDate"]["@type"], format!("{XSD}date"));
        let test = &ctx["test"]["@context"];
        assert_eq!(test["sampledAt"]["@type"], format!("{XSD}dateTime"));
        assert_eq!(test["ct"]["@type"], format!("{XSD}integer"));
        assert!(test["sampleId"].get("@type").is_none());
    }
}
