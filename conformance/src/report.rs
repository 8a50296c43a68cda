//! The result of a run, for people (`print_human`) and CI (`write_junit`).

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::ConformanceError;

/// One case's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// `<world>/<case>` for data cases, `generic/<group>/<name>` for generated ones.
    pub name: String,
    /// Whether the plugin met the case's expectations.
    pub passed: bool,
    /// On success what the plugin answered; on failure why the case failed.
    pub message: String,
    /// Wall-clock time the case took, loading the plugin included; zero for
    /// the `generic/limits` summary.
    pub duration: Duration,
}

impl CaseResult {
    pub(crate) fn new(name: String, result: Result<String, String>, duration: Duration) -> Self {
        let (passed, message) = match result {
            Ok(m) => (true, m),
            Err(m) => (false, m),
        };
        CaseResult {
            name,
            passed,
            message,
            duration,
        }
    }
}

/// Everything one run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The plugin's name, from its manifest (or derived from the file name
    /// when the manifest was synthesized).
    pub plugin: String,
    /// The plugin's own version; `0.0.0` when the manifest was synthesized.
    pub version: String,
    /// The world, e.g. `identity-provider`.
    pub world: String,
    /// `true` when no `plugin.toml` was found and the suite made one up
    /// (every capability requested, no HTTP origins).
    pub synthesized_manifest: bool,
    /// Every case run, in order: contract cases, generic cases, then the
    /// `generic/limits` summary.
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// Whether every case passed.
    pub fn success(&self) -> bool {
        self.cases.iter().all(|c| c.passed)
    }

    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed).count()
    }

    /// How many cases failed.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// The failed cases, by name.
    pub fn failures(&self) -> Vec<&CaseResult> {
        self.cases.iter().filter(|c| !c.passed).collect()
    }

    /// One line per case and a closing `N passed, M failed` line.
    pub fn print_human(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "conformance: {} {} ({}){}",
            self.plugin,
            self.version,
            self.world,
            if self.synthesized_manifest {
                ", no plugin.toml: synthesized one"
            } else {
                ""
            }
        )?;
        for case in &self.cases {
            let verdict = if case.passed { "pass" } else { "FAIL" };
            write!(
                out,
                "{verdict} {} ({} ms)",
                case.name,
                case.duration.as_millis()
            )?;
            if case.passed {
                writeln!(out)?;
            } else {
                writeln!(out, "\n     {}", case.message)?;
            }
        }
        writeln!(out, "{} passed, {} failed", self.passed(), self.failed())
    }

    /// The report as JUnit XML: one `<testsuite>` for the plugin, one
    /// `<testcase>` per case, `<failure>` for failed ones.
    pub fn to_junit(&self) -> String {
        let total: Duration = self.cases.iter().map(|c| c.duration).sum();
        let suite = format!("{}@{} ({})", self.plugin, self.version, self.world);
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        // `write!` to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(
            xml,
            "<testsuites name=\"divoc-conformance\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">",
            self.cases.len(),
            self.failed(),
            total.as_secs_f64()
        );
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3}\">",
            escape(&suite),
            self.cases.len(),
            self.failed(),
            total.as_secs_f64()
        );
        for case in &self.cases {
            let _ = write!(
                xml,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                escape(&case.name),
                escape(&format!("{}.{}", self.plugin, self.world)),
                case.duration.as_secs_f64()
            );
            if case.passed {
                xml.push_str(" />\n");
            } else {
                let first_line = case.message.lines().next().unwrap_or_default();
                let _ = write!(
                    xml,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(&crate::harness::truncate(first_line, 500)),
                    escape(&case.message)
                );
            }
        }
        xml.push_str("  </testsuite>\n</testsuites>\n");
        xml
    }

    /// Writes [`Report::to_junit`] to `path`, replacing any file there.
    pub fn write_junit(&self, path: &Path) -> Result<(), ConformanceError> {
        std::fs::write(path, self.to_junit()).map_err(|source| ConformanceError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Escapes text for XML attributes and content. Characters XML 1.0 cannot
/// carry at all (most C0 controls, which plugin messages may echo) become
/// `\u{..}` text instead of making the file unparsable.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report() -> Report {
        Report {
            plugin: "p".into(),
            version: "1.0.0".into(),
            world: "identity-provider".into(),
            synthesized_manifest: false,
            cases: vec![
                CaseResult::new("a".into(), Ok("fine".into()), Duration::from_millis(3)),
                CaseResult::new(
                    "b<&>".into(),
                    Err("bad \"x\" \u{0}\u{1b}".into()),
                    Duration::ZERO,
                ),
            ],
        }
    }

    #[test]
    fn human_summary_line() {
        let mut out = Vec::new();
        report().print_human(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().any(|l| l == "1 passed, 1 failed"), "{text}");
        assert!(text.contains("FAIL b<&>"));
        assert!(!report().success());
    }

    #[test]
    fn junit_escapes_everything() {
        let xml = report().to_junit();
        assert!(xml.contains("name=\"b&lt;&amp;&gt;\""), "{xml}");
        assert!(xml.contains("bad &quot;x&quot; \\u{0}\\u{1b}"), "{xml}");
        assert!(!xml.contains('\u{0}'));
        assert_eq!(xml.matches("<testcase").count(), 2);
        assert_eq!(xml.matches("<failure").count(), 1);
    }
}
