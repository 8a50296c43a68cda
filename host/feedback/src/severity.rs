//! Grading a report's severity by rules from the configuration
//! (`[[feedback.severity]]`): a rule names a field of the answers and the
//! values that make a report at least its grade (e.g. `medicalCare` =
//! `hospitalised` → serious; `symptoms` containing `paralysis` → serious).
//! A report takes the highest grade of the rules it meets; `mild` when it
//! meets none.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How serious a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// No rule met.
    Mild,
    /// e.g. saw a doctor.
    Moderate,
    /// Raises `feedback.serious` and alerts pharmacovigilance.
    Serious,
}

impl Severity {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Mild => "mild",
            Severity::Moderate => "moderate",
            Severity::Serious => "serious",
        }
    }

    /// From a stored name.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "mild" => Some(Severity::Mild),
            "moderate" => Some(Severity::Moderate),
            "serious" => Some(Severity::Serious),
            _ => None,
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SeverityRule {
    /// The grade a report meeting it has at least.
    pub grade: Severity,
    /// A top-level field of the answers.
    pub field: String,
    /// Values of that field (or of its items, for a list) that meet it.
    pub any_of: Vec<String>,
}

impl SeverityRule {
    fn met_by(&self, answers: &Value) -> bool {
        let hit = |v: &Value| match v {
            Value::String(s) => self.any_of.iter().any(|a| a == s),
            Value::Bool(b) => self.any_of.iter().any(|a| a == &b.to_string()),
            _ => false,
        };
        match answers.get(&self.field) {
            Some(Value::Array(items)) => items.iter().any(hit),
            Some(v) => hit(v),
            None => false,
        }
    }
}

/// The rules shipped by default.
pub fn default_rules() -> Vec<SeverityRule> {
    let rule = |grade, field: &str, any_of: &[&str]| SeverityRule {
        grade,
        field: field.to_owned(),
        any_of: any_of.iter().map(|s| (*s).to_owned()).collect(),
    };
    vec![
        rule(Severity::Serious, "medicalCare", &["hospitalised"]),
        rule(Severity::Serious, "symptoms", &["paralysis", "breathing"]),
        rule(Severity::Moderate, "medicalCare", &["doctor"]),
    ]
}

/// The grade of `answers` under `rules`.
pub fn grade(rules: &[SeverityRule], answers: &Value) -> Severity {
    rules
        .iter()
        .filter(|r| r.met_by(answers))
        .map(|r| r.grade)
        .max()
        .unwrap_or(Severity::Mild)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_highest_grade_met_wins() {
        let rules = default_rules();
        assert_eq!(
            grade(
                &rules,
                &json!({"symptoms": ["fever"], "medicalCare": "none"})
            ),
            Severity::Mild
        );
        assert_eq!(
            grade(
                &rules,
                &json!({"symptoms": ["fever"], "medicalCare": "doctor"})
            ),
            Severity::Moderate
        );
        assert_eq!(
            grade(
                &rules,
                &json!({"symptoms": ["fever", "paralysis"], "medicalCare": "doctor"})
            ),
            Severity::Serious
        );
        assert_eq!(
            grade(&rules, &json!({"medicalCare": "hospitalised"})),
            Severity::Serious
        );
    }
}
