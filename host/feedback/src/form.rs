//! The report form: a JSON Schema (draft 2020-12) that answers must meet,
//! and its labels in each configured language. Both are configuration
//! (`[feedback] form`, shipped as `config/feedback/aefi-form.json`), so a
//! country changes the questions without a new build.

use std::collections::BTreeMap;
use std::path::Path;

use divoc_certificates::error::FieldError;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::FeedbackError;

/// One language's labels.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// The form's title.
    #[serde(default)]
    pub title: String,
    /// Each question's text, by property name.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Each choice's text, by value.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormFile {
    schema: Value,
    labels: BTreeMap<String, Labels>,
}

/// A loaded form: its schema, compiled once, and its labels.
pub struct Form {
    schema: Value,
    labels: BTreeMap<String, Labels>,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Form")
            .field("languages", &self.labels.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The language used when the one asked for has no labels.
pub const DEFAULT_LANGUAGE: &str = "en";

impl Form {
    /// Reads a form file.
    pub fn load(path: &Path) -> Result<Form, FeedbackError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| FeedbackError::Config(format!("cannot read {}: {e}", path.display())))?;
        let file: Value = serde_json::from_str(&text)
            .map_err(|e| FeedbackError::Config(format!("{}: {e}", path.display())))?;
        Form::from_value(file).map_err(|e| match e {
            FeedbackError::Config(m) => FeedbackError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// The shipped form (`config/feedback/aefi-form.json`), built in: the
    /// one used when the configuration names none.
    pub fn shipped() -> Result<Form, FeedbackError> {
        let text = include_str!("../../../config/feedback/aefi-form.json");
        let file: Value =
            serde_json::from_str(text).map_err(|e| FeedbackError::Config(e.to_string()))?;
        Form::from_value(file)
    }

    /// A form from its JSON (`{"schema", "labels"}`).
    pub fn from_value(file: Value) -> Result<Form, FeedbackError> {
        let file: FormFile =
            serde_json::from_value(file).map_err(|e| FeedbackError::Config(e.to_string()))?;
        if !file.labels.contains_key(DEFAULT_LANGUAGE) {
            return Err(FeedbackError::Config(format!(
                "labels: `{DEFAULT_LANGUAGE}` is required (the fallback language)"
            )));
        }
        if file.schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(FeedbackError::Config(
                "schema: must describe an object".into(),
            ));
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&file.schema)
            .map_err(|e| FeedbackError::Config(format!("schema: {e}")))?;
        Ok(Form {
            schema: file.schema,
            labels: file.labels,
            validator,
        })
    }

    /// The languages with labels.
    pub fn languages(&self) -> Vec<&str> {
        self.labels.keys().map(String::as_str).collect()
    }

    /// The first of `wanted` (a `?lang=` or an `Accept-Language`'s tags,
    /// in preference order) that has labels, else the default.
    pub fn language<'a>(&'a self, wanted: impl IntoIterator<Item = &'a str>) -> &'a str {
        for w in wanted {
            let primary = w.split(['-', '_']).next().unwrap_or(w).trim();
            if let Some((k, _)) = self
                .labels
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(primary))
            {
                return k;
            }
        }
        DEFAULT_LANGUAGE
    }

    /// The schema in `lang`: each question's `title`, and each choice's
    /// text under `x-labels` beside its `enum`.
    pub fn localized(&self, lang: &str) -> Value {
        let labels = self
            .labels
            .get(lang)
            .or_else(|| self.labels.get(DEFAULT_LANGUAGE));
        let mut schema = self.schema.clone();
        let Some(labels) = labels else {
            return schema;
        };
        if !labels.title.is_empty() {
            schema["title"] = Value::String(labels.title.clone());
        }
        if let Some(Value::Object(props)) = schema.get_mut("properties") {
            for (name, prop) in props.iter_mut() {
                if let Some(t) = labels.properties.get(name) {
                    prop["title"] = Value::String(t.clone());
                }
                let enums = prop
                    .get("enum")
                    .or_else(|| prop.pointer("/items/enum"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if !enums.is_empty() {
                    let mut m = Map::new();
                    for v in enums.iter().filter_map(Value::as_str) {
                        let text = labels
                            .values
                            .get(v)
                            .cloned()
                            .unwrap_or_else(|| v.to_owned());
                        m.insert(v.to_owned(), Value::String(text));
                    }
                    prop["x-labels"] = Value::Object(m);
                }
            }
        }
        schema
    }

    /// Checks answers against the schema; every problem names its field
    /// (`answers/<property>`).
    pub fn check(&self, answers: &Value) -> Result<(), FeedbackError> {
        let errors: Vec<FieldError> = self
            .validator
            .iter_errors(answers)
            .map(|e| {
                let path = e.instance_path().to_string();
                let field = if path.is_empty() {
                    "answers".to_owned()
                } else {
                    format!("answers{path}")
                };
                FieldError::new(field, e.to_string())
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(FeedbackError::Validation(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shipped() -> Form {
        Form::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/feedback/aefi-form.json"),
        )
        .unwrap()
    }

    #[test]
    fn the_shipped_form_has_thirteen_symptoms_in_english_and_hindi() {
        let f = shipped();
        assert_eq!(f.languages(), ["en", "hi"]);
        assert_eq!(Form::shipped().unwrap().languages(), f.languages());
        let hi = f.localized("hi");
        let symptoms = hi["properties"]["symptoms"]["x-labels"]
            .as_object()
            .unwrap();
        // DIVOC's 13 symptoms, and "something else".
        assert_eq!(symptoms.len(), 14);
        assert_eq!(symptoms["fever"], "बुखार");
        assert_eq!(hi["properties"]["onsetDate"]["title"], "यह कब शुरू हुआ?");
        // The questions' order travels with the schema (objects have none).
        assert_eq!(hi["x-order"][0], "symptoms");
        assert_eq!(f.language(["fr", "hi-IN"]), "hi");
        assert_eq!(f.language(["fr"]), "en");
    }

    #[test]
    fn answers_are_checked_against_the_schema_naming_the_field() {
        let f = shipped();
        let good = json!({"symptoms": ["fever"], "onsetDate": "2026-12-01", "medicalCare": "none"});
        f.check(&good).unwrap();
        let bad = json!({"symptoms": ["flu"], "onsetDate": "yesterday", "medicalCare": "none"});
        let FeedbackError::Validation(errors) = f.check(&bad).unwrap_err() else {
            panic!("not a validation error");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"answers/symptoms/0"), "{errors:?}");
        assert!(fields.contains(&"answers/onsetDate"), "{errors:?}");
        let missing = json!({"symptoms": ["fever"]});
        assert!(f.check(&missing).is_err());
    }

    #[test]
    fn a_form_without_english_labels_is_refused() {
        let e = Form::from_value(json!({"schema": {"type": "object"}, "labels": {"hi": {}}}))
            .unwrap_err();
        assert!(e.to_string().contains("`en`"));
    }
}
