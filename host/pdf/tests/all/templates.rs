//! Templates are data: a language is added with a file, and every mistake
//! in one stops the load with an error naming the file.

use std::path::{Path, PathBuf};

use divoc_pdf::{PdfError, PdfRenderer};

use crate::common::*;

/// A shipped template with its font paths made absolute, so that it can be
/// copied to a scratch directory.
fn shipped(lang: &str) -> String {
    let fonts = templates_dir().join("../../fonts").canonicalize().unwrap();
    std::fs::read_to_string(templates_dir().join(format!("{lang}.toml")))
        .unwrap()
        .replace("../../fonts", fonts.to_str().unwrap())
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn load_err(files: &[(&str, &str)]) -> (PdfError, PathBuf) {
    let dir = dir_with(files);
    let err = PdfRenderer::load(dir.path()).unwrap_err();
    (err, dir.path().to_path_buf())
}

fn template_error(err: &PdfError) -> (&Path, &str) {
    match err {
        PdfError::Template { path, message } => (path, message),
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn a_language_is_added_with_a_file() {
    // Marathi: Devanagari again, other words; no code involved.
    let mr = shipped("hi")
        .replace("language = \"hi\"", "language = \"mr\"")
        .replace("name = \"हिन्दी\"", "name = \"मराठी\"")
        .replace("कोविड-19 टीकाकरण प्रमाणपत्र", "कोविड-१९ लसीकरण प्रमाणपत्र")
        .replace(
            "recipient_heading = \"लाभार्थी का विवरण\"",
            "recipient_heading = \"लाभार्थीचा तपशील\"",
        );
    let dir = dir_with(&[("en.toml", &shipped("en")), ("mr.toml", &mr)]);
    let r = PdfRenderer::load(dir.path()).unwrap();
    assert_eq!(r.languages(), ["en", "mr"]);
    assert_eq!(r.language_name("mr"), Some("मराठी"));
    let text = parse(&r.render(&two_doses(), "mr").unwrap()).squashed();
    assert!(text.contains("कोविड-१९लसीकरणप्रमाणपत्र"), "{text}");
    assert!(text.contains("लाभार्थीचातपशील"), "{text}");
}

#[test]
fn a_template_may_be_the_default() {
    let hi = shipped("hi").replace("name = \"हिन्दी\"", "name = \"हिन्दी\"\ndefault = true");
    let dir = dir_with(&[("en.toml", &shipped("en")), ("hi.toml", &hi)]);
    assert_eq!(
        PdfRenderer::load(dir.path()).unwrap().default_language(),
        "hi"
    );
    let en = shipped("en").replace("name = \"English\"", "name = \"English\"\ndefault = true");
    let (err, dir) = load_err(&[("en.toml", &en), ("hi.toml", &hi)]);
    let (path, message) = template_error(&err);
    assert_eq!(path, dir.join("hi.toml"));
    assert!(message.contains("default"), "{message}");
}

#[test]
fn line_breaks_in_strings_are_laid_out_as_spaces() {
    let en = shipped("en").replace(
        "footer = \"This certificate is digitally signed.",
        "footer = \"\"\"This certificate\nis digitally signed.\"\"\"\nfooter_rest = \"",
    );
    // The line above leaves an unknown key behind: unknown keys are errors.
    let (err, _) = load_err(&[("en.toml", &en)]);
    assert!(template_error(&err).1.contains("footer_rest"), "{err}");
    let en = shipped("en").replace(
        "footer = \"This certificate is digitally signed.",
        "footer = \"\"\"This certificate\nis digitally signed.",
    );
    let en = en.replace("has not been revoked.\"", "has not been revoked.\"\"\"");
    let dir = dir_with(&[("en.toml", &en)]);
    let r = PdfRenderer::load(dir.path()).unwrap();
    let text = parse(&r.render(&two_doses(), "en").unwrap()).text();
    assert!(
        text.contains("This certificate is digitally signed."),
        "{text}"
    );
}

#[test]
fn mistakes_are_errors_naming_the_file() {
    let en = shipped("en");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            en.replace("\n[labels]\n", "\n[labels]\ntitel = \"x\"\n"),
            "titel",
        ),
        (
            "missing label",
            en.replace("vaccinator = \"Vaccinated by\"\n", ""),
            "vaccinator",
        ),
        (
            "bad colour",
            en.replace("text_color = \"#1a1a1a\"", "text_color = \"black\""),
            "style.text_color",
        ),
        (
            "tiny page",
            en.replace("width = 595.28", "width = 10.0"),
            "page.width",
        ),
        (
            "huge margin",
            en.replace("margin = 42.0", "margin = 400.0"),
            "page.margin",
        ),
        (
            "no bold font",
            en.replace("bold = [\"", "bold = []\nunused = [\""),
            "unused",
        ),
        (
            "unknown key in [second_qr]",
            en.replace("format = \"eu-dcc\"", "formt = \"eu-dcc\""),
            "formt",
        ),
        (
            "[second_qr] without a label",
            en.replace("label = \"EU Digital COVID Certificate\"\n", ""),
            "label",
        ),
        (
            "blank second_qr.label",
            en.replace("label = \"EU Digital COVID Certificate\"", "label = \"  \""),
            "second_qr.label",
        ),
        (
            "second_qr.format not a format id",
            en.replace("format = \"eu-dcc\"", "format = \"EU DCC\""),
            "second_qr.format",
        ),
        (
            "second_qr_size off the page",
            en.replace("# second_qr_size = 170.0", "second_qr_size = 500.0 #"),
            "style.second_qr_size",
        ),
        (
            "two codes taller than the page allows",
            en.replace("# second_qr_size = 170.0", "second_qr_size = 400.0 #"),
            "style.second_qr_size",
        ),
        ("not TOML", "language = ".into(), "TOML"),
        (
            "wrong language",
            en.replace("language = \"en\"", "language = \"fr\""),
            "file is named",
        ),
    ];
    for (what, text, needle) in cases {
        let (err, dir) = load_err(&[("en.toml", &text)]);
        let (path, message) = template_error(&err);
        assert_eq!(path, dir.join("en.toml"), "{what}");
        assert!(
            message.contains(needle) || (needle == "TOML" && !message.is_empty()),
            "{what}: {message}"
        );
        assert!(err.to_string().contains("en.toml"), "{what}: {err}");
    }
}

#[test]
fn missing_and_broken_fonts_are_named() {
    let fonts = templates_dir().join("../../fonts").canonicalize().unwrap();
    let missing = shipped("en").replace("NotoSans-Bold.ttf", "NoSuchFont.ttf");
    match load_err(&[("en.toml", &missing)]).0 {
        PdfError::Io { path, .. } => assert!(path.ends_with("NoSuchFont.ttf"), "{path:?}"),
        other => panic!("{other:?}"),
    }
    // A licence text is not a font.
    let broken = shipped("en").replace(
        &format!("{}/NotoSans-Bold.ttf", fonts.display()),
        &format!("{}/OFL.txt", fonts.display()),
    );
    match load_err(&[("en.toml", &broken)]).0 {
        PdfError::Font { path, message } => {
            assert!(path.ends_with("OFL.txt"), "{path:?}");
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_empty_or_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "not a template").unwrap();
    assert!(matches!(
        PdfRenderer::load(dir.path()).unwrap_err(),
        PdfError::NoTemplates { dir: d } if d == dir.path()
    ));
    assert!(matches!(
        PdfRenderer::load(&dir.path().join("nope")).unwrap_err(),
        PdfError::Io { .. }
    ));
}
