//! Templates: one TOML file per language in the templates directory, named
//! after its language tag (`en.toml`, `hi.toml`). Data only: strings, page
//! size, sizes and colours, and the fonts to use. Unknown keys are errors,
//! so a misspelt key is found at start-up rather than on paper.
//!
//! Strings may hold placeholders, replaced at render time:
//! `{issuer}` (subtitle), `{dose}` and `{total}` (dose headings), `{from}`
//! and `{until}` (validity), `{page}` and `{pages}` (page footer).
//!
//! An optional `[second_qr]` table names a certificate format (`format =
//! "eu-dcc"`) whose QR the page also carries, under our own, with `label`
//! printed under it; the renderer only draws it, the caller (the API) makes
//! the artifact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::PdfError;

/// One parsed template file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Template {
    /// The language tag; must equal the file stem.
    pub language: String,
    /// The language's own name, e.g. `हिन्दी`.
    pub name: String,
    /// This language is served when a request names none (at most one
    /// template may say so; otherwise `en`, else the first by tag).
    #[serde(default)]
    pub default: bool,
    pub page: PageSpec,
    pub fonts: FontSpec,
    #[serde(default)]
    pub style: Style,
    pub labels: Labels,
    /// Exact-match translations of recorded values (gender, identity
    /// scheme, nationality…), e.g. `Male = "पुरुष"`.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// A second QR code, of the same certificate in another format.
    #[serde(default)]
    pub second_qr: Option<SecondQrTable>,
}

/// `[second_qr]`: which format's QR to print under ours, and its label.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecondQrTable {
    /// A certificate-format id (`GET /v1/formats`), e.g. `eu-dcc`.
    pub format: String,
    /// Printed under the code, in the template's language: a holder must
    /// be able to tell which code a border officer wants.
    pub label: String,
}

/// Page size and margin, in PDF points (1/72 in).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageSpec {
    pub width: f32,
    pub height: f32,
    pub margin: f32,
}

/// Font stacks, as paths relative to the template file. For each
/// character the first font that has it is used, so a Hindi template can
/// list a Devanagari font and then a Latin one for names in Latin script.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FontSpec {
    pub regular: Vec<String>,
    pub bold: Vec<String>,
}

/// Sizes (points) and colours (`#rrggbb`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Style {
    pub title_size: f32,
    pub heading_size: f32,
    pub text_size: f32,
    pub small_size: f32,
    /// Line height as a multiple of the font size; scripts with tall marks
    /// (Devanagari) need more than Latin.
    pub line_height: f32,
    /// Width of the label column.
    pub label_width: f32,
    /// Side of the QR code, quiet zone included.
    pub qr_size: f32,
    /// Side of the second QR code (see `[second_qr]`); `qr_size` if unset.
    pub second_qr_size: Option<f32>,
    pub text_color: String,
    pub muted_color: String,
    pub accent_color: String,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            title_size: 18.0,
            heading_size: 12.0,
            text_size: 9.5,
            small_size: 7.5,
            line_height: 1.4,
            label_width: 120.0,
            qr_size: 170.0,
            second_qr_size: None,
            text_color: "#1a1a1a".into(),
            muted_color: "#5a5a5a".into(),
            accent_color: "#1f4e79".into(),
        }
    }
}

/// Every string printed that does not come from the certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Labels {
    pub title: String,
    /// Under the title; `{issuer}`.
    pub subtitle: String,
    pub recipient_heading: String,
    pub name: String,
    pub birth_date: String,
    pub age: String,
    pub gender: String,
    pub identity: String,
    pub nationality: String,
    pub address: String,
    pub certificate_id: String,
    pub vaccination_heading: String,
    /// `{dose}`, `{total}`.
    pub dose_heading: String,
    /// `{dose}`, `{total}`.
    pub booster_heading: String,
    pub vaccine: String,
    pub manufacturer: String,
    pub batch: String,
    pub date: String,
    pub facility: String,
    pub vaccinator: String,
    pub validity: String,
    /// `{from}`, `{until}`.
    pub valid_from_until: String,
    /// `{from}`.
    pub valid_from: String,
    /// `{until}`.
    pub valid_until: String,
    /// Small print at the bottom of every page.
    pub footer: String,
    /// `{page}`, `{pages}`.
    pub page: String,
}

/// Sizes beyond these are typos, and would make layout loops long.
const MAX_PAGE: f32 = 14_400.0;
const MAX_FONT_SIZE: f32 = 200.0;

impl Template {
    /// Reads and checks one template file.
    pub(crate) fn read(path: &Path) -> Result<Template, PdfError> {
        let text = std::fs::read_to_string(path).map_err(|source| PdfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let t: Template = toml::from_str(&text).map_err(|e| bad(path, e.to_string()))?;
        t.check(path)?;
        Ok(t)
    }

    /// Control characters (a TOML multi-line string's line breaks) become
    /// spaces: lines are broken by the layout.
    pub(crate) fn sanitize(&mut self) {
        let l = &mut self.labels;
        for s in [
            &mut l.title,
            &mut l.subtitle,
            &mut l.recipient_heading,
            &mut l.name,
            &mut l.birth_date,
            &mut l.age,
            &mut l.gender,
            &mut l.identity,
            &mut l.nationality,
            &mut l.address,
            &mut l.certificate_id,
            &mut l.vaccination_heading,
            &mut l.dose_heading,
            &mut l.booster_heading,
            &mut l.vaccine,
            &mut l.manufacturer,
            &mut l.batch,
            &mut l.date,
            &mut l.facility,
            &mut l.vaccinator,
            &mut l.validity,
            &mut l.valid_from_until,
            &mut l.valid_from,
            &mut l.valid_until,
            &mut l.footer,
            &mut l.page,
        ]
        .into_iter()
        .chain(self.values.values_mut())
        .chain(self.second_qr.as_mut().map(|q| &mut q.label))
        {
            if s.contains(char::is_control) {
                *s = s.replace(char::is_control, " ");
            }
        }
    }

    fn check(&self, path: &Path) -> Result<(), PdfError> {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if self.language != stem {
            return Err(bad(
                path,
                format!(
                    "language = {:?} but the file is named {stem:?}.toml; they must match",
                    self.language
                ),
            ));
        }
        if self.language.is_empty()
            || !self
                .language
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(bad(
                path,
                "language must be a language tag (letters, digits, '-')".into(),
            ));
        }
        let p = &self.page;
        let in_range = |v: f32, lo: f32, hi: f32| v.is_finite() && v >= lo && v <= hi;
        if !in_range(p.width, 72.0, MAX_PAGE) || !in_range(p.height, 72.0, MAX_PAGE) {
            return Err(bad(
                path,
                format!("page.width and page.height must be within 72..={MAX_PAGE} points"),
            ));
        }
        if !in_range(p.margin, 0.0, p.width.min(p.height) / 4.0) {
            return Err(bad(
                path,
                "page.margin must be between 0 and a quarter of the page".into(),
            ));
        }
        let s = &self.style;
        for (key, v) in [
            ("style.title_size", s.title_size),
            ("style.heading_size", s.heading_size),
            ("style.text_size", s.text_size),
            ("style.small_size", s.small_size),
        ] {
            if !in_range(v, 1.0, MAX_FONT_SIZE) {
                return Err(bad(
                    path,
                    format!("{key} must be within 1..={MAX_FONT_SIZE}"),
                ));
            }
        }
        if !in_range(s.line_height, 0.8, 4.0) {
            return Err(bad(path, "style.line_height must be within 0.8..=4".into()));
        }
        let content_width = p.width - 2.0 * p.margin;
        if !in_range(s.qr_size, 36.0, content_width.min(p.height / 2.0)) {
            return Err(bad(
                path,
                "style.qr_size must be at least 36 points and fit the page".into(),
            ));
        }
        self.check_second_qr(path, content_width)?;
        if !in_range(s.label_width, 10.0, content_width / 2.0) {
            return Err(bad(
                path,
                "style.label_width must be at least 10 points and at most half the content width"
                    .into(),
            ));
        }
        for (key, c) in [
            ("style.text_color", &s.text_color),
            ("style.muted_color", &s.muted_color),
            ("style.accent_color", &s.accent_color),
        ] {
            if parse_color(c).is_none() {
                return Err(bad(path, format!("{key} must be #rrggbb, not {c:?}")));
            }
        }
        if self.fonts.regular.is_empty() || self.fonts.bold.is_empty() {
            return Err(bad(
                path,
                "fonts.regular and fonts.bold each need at least one font".into(),
            ));
        }
        Ok(())
    }
}

impl Template {
    /// The second QR's side: `style.second_qr_size`, else `style.qr_size`.
    pub(crate) fn second_qr_size(&self) -> f32 {
        self.style.second_qr_size.unwrap_or(self.style.qr_size)
    }

    fn check_second_qr(&self, path: &Path, content_width: f32) -> Result<(), PdfError> {
        let s = &self.style;
        let p = &self.page;
        let in_range = |v: f32, lo: f32, hi: f32| v.is_finite() && v >= lo && v <= hi;
        if let Some(size) = s.second_qr_size {
            if !in_range(size, 36.0, content_width.min(p.height / 2.0)) {
                return Err(bad(
                    path,
                    "style.second_qr_size must be at least 36 points and fit the page".into(),
                ));
            }
        }
        let Some(q) = &self.second_qr else {
            return Ok(());
        };
        // Format ids are the plugins' own (WIT `format-info.id`) and path
        // segments of the API (`/formats/{format}`): nothing else fits.
        let id_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if q.format.is_empty() || q.format.len() > 64 || !q.format.chars().all(id_char) {
            return Err(bad(
                path,
                format!(
                    "second_qr.format must be a certificate format id such as \"eu-dcc\" \
                     (letters, digits, '-', '_', '.'), not {:?}",
                    q.format
                ),
            ));
        }
        if q.label.trim().is_empty() {
            return Err(bad(
                path,
                "second_qr.label must say what the second QR code is".into(),
            ));
        }
        // Both codes stack in one column above the doses; a quarter of the
        // page stays for the label, the first dose and the footer.
        let column = s.qr_size + self.second_qr_size();
        if column > (p.height - 2.0 * p.margin) * 0.75 {
            return Err(bad(
                path,
                "style.qr_size + style.second_qr_size must leave a quarter of the page's height \
                 for the rest (make style.second_qr_size smaller)"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn bad(path: &Path, message: String) -> PdfError {
    PdfError::Template {
        path: path.to_path_buf(),
        message,
    }
}

/// `#rrggbb` → (r, g, b).
pub(crate) fn parse_color(s: &str) -> Option<(u8, u8, u8)> {
    let hex = s.strip_prefix('#')?;
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some((byte(0)?, byte(2)?, byte(4)?))
}

/// A font path from a template, resolved against the template's directory.
pub(crate) fn font_path(template: &Path, font: &str) -> PathBuf {
    template
        .parent()
        .map(|d| d.join(font))
        .unwrap_or_else(|| PathBuf::from(font))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_strictly() {
        assert_eq!(parse_color("#1f4E79"), Some((0x1f, 0x4e, 0x79)));
        assert_eq!(parse_color("1f4e79"), None);
        assert_eq!(parse_color("#1f4e7"), None);
        assert_eq!(parse_color("#1f4e7g"), None);
        assert_eq!(parse_color("#ééé"), None);
    }
}
