//! The printable certificate's second QR code end to end: the shipped PDF
//! templates ask for the EU DCC (`[second_qr] format = "eu-dcc"`), so
//! `certificate.pdf` carries our QR and, under it, the certificate's EU DCC
//! with its label. The page is checked as a reader sees it, by a PDF
//! renderer that is not ours (poppler: `pdftoppm`, `pdftotext`,
//! `pdfimages`; `scripts/install-pdf-tools.sh`), and the codes are read back
//! from the rendered page by the service's own image reader. Without the
//! EU DCC plugin the PDF still prints, with one code, and the warning
//! logged carries no personal data.

use std::path::{Path, PathBuf};
use std::process::Command;

use divoc_certificates::qr;

use crate::support::{self, Server};

const ADMIN: &str = "pdf-second-qr-admin-token-0123456789";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A poppler tool, or a failure saying how to install it.
fn poppler(tool: &str) -> Command {
    let found = Command::new(tool).arg("-v").output().is_ok();
    assert!(
        found,
        "{tool} not found: run scripts/install-pdf-tools.sh (poppler-utils; \
         scripts/test.sh does)"
    );
    Command::new(tool)
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `divoc serve` with the shipped configuration and templates, the plugins
/// from `plugins`, its log (stdout and stderr) into `log`.
fn start(tmp: &Path, plugins: &Path, log: &Path) -> Server {
    let config = support::shipped_config(tmp, |text| text);
    let port = support::free_port();
    let mut cmd = support::serve_command(&config, &tmp.join("data"), plugins, port, ADMIN);
    cmd.env("DIVOC_PLUGINS__WATCH", "false");
    let file = std::fs::File::create(log).unwrap();
    cmd.stdout(file.try_clone().unwrap()).stderr(file);
    support::spawn(&mut cmd, port)
}

fn issue(server: &Server) -> String {
    let request: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("host/certificates/tests/cases/valid-one-dose/request.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (status, issued) = support::send_json(
        "POST",
        &format!("{}/v1/certificates", server.base),
        Some(ADMIN),
        Some(&request),
    );
    assert_eq!(status, 201, "{issued}");
    issued["id"].as_str().unwrap().to_owned()
}

fn get(server: &Server, path: &str) -> (u16, Vec<u8>) {
    let response = match ureq::get(&format!("{}{path}", server.base))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = response.status();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    (status, bytes)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

/// The PDF's pages and the images each page draws (`pdfinfo`,
/// `pdfimages -list`).
fn pages_and_images(pdf: &Path) -> (usize, Vec<usize>) {
    let info = text(run(poppler("pdfinfo").arg(pdf)));
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let list = text(run(poppler("pdfimages").arg("-list").arg(pdf)));
    // Two header lines, then one row per image: its page first.
    let images = list
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    (pages, images)
}

/// Every QR code the right-hand column of page 1 shows, top to bottom:
/// the column (where the templates put the codes) rendered by poppler at
/// 300 dpi in overlapping windows, each read as a phone would read a photo
/// of it. (One window holds about one code; the service's reader returns
/// one code an image.)
fn codes_in_the_qr_column(pdf: &Path, dir: &Path) -> Vec<String> {
    // About 5 pixels a module for the EU DCC code, as a phone's camera.
    let dpi = 300;
    let px = |pt: f32| ((pt * dpi as f32 / 72.0).round() as i64).to_string();
    // A4, 42-point margins, 170-point codes at the right (en.toml).
    let (left, width, window) = (595.28 - 42.0 - 190.0, 200.0, 190.0);
    let mut seen: Vec<String> = Vec::new();
    let mut top = 30.0;
    while top < 420.0 {
        let out = dir.join(format!("window-{top}"));
        run(poppler("pdftoppm")
            .args(["-png", "-singlefile", "-f", "1", "-l", "1"])
            .args(["-r", &dpi.to_string()])
            .args(["-x", &px(left), "-y", &px(top)])
            .args(["-W", &px(width), "-H", &px(window)])
            .arg(pdf)
            .arg(&out));
        let png = std::fs::read(out.with_extension("png")).unwrap();
        if let Ok(content) = qr::read_image(&png) {
            let content = String::from_utf8(content).unwrap();
            if seen.last() != Some(&content) {
                seen.push(content);
            }
        }
        top += 30.0;
    }
    seen
}

#[test]
fn the_pdf_carries_the_eu_dcc_under_our_qr_and_prints_without_it() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("server.log");
    let server = start(tmp.path(), &repo().join("target/plugins"), &log);
    let id = issue(&server);

    let (status, ours) = get(&server, &format!("/v1/certificates/{id}/qr.txt"));
    assert_eq!(status, 200);
    let ours = text(ours);
    let (status, dcc) = get(&server, &format!("/v1/certificates/{id}/formats/eu-dcc"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&dcc));
    let dcc = text(dcc).lines().next().unwrap().to_owned();
    assert!(dcc.starts_with("HC1:"), "{dcc}");

    for (lang, label) in [
        ("en", "EU Digital COVID Certificate"),
        ("hi", "यूरोपीय संघ (EU) डिजिटल कोविड प्रमाणपत्र"),
    ] {
        let (status, pdf) = get(
            &server,
            &format!("/v1/certificates/{id}/certificate.pdf?lang={lang}"),
        );
        assert_eq!(status, 200, "{lang}");
        let path = tmp.path().join(format!("certificate-{lang}.pdf"));
        std::fs::write(&path, &pdf).unwrap();
        let (pages, images) = pages_and_images(&path);
        assert_eq!(pages, 1, "{lang}: one A4 page");
        assert_eq!(images, [1, 1], "{lang}: two QR images, both on page 1");
        let words = text(run(poppler("pdftotext").arg(&path).arg("-")));
        assert_eq!(words.matches(label).count(), 1, "{lang}: {words}");
        // Read off the rendered page: ours first, the EU DCC under it, and
        // the EU DCC is the very artifact /formats/eu-dcc serves.
        let scans = tmp.path().join(format!("scans-{lang}"));
        std::fs::create_dir_all(&scans).unwrap();
        assert_eq!(
            codes_in_the_qr_column(&path, &scans),
            [ours.clone(), dcc.clone()],
            "{lang}"
        );
    }
    server.stop();
    assert!(
        !std::fs::read_to_string(&log)
            .unwrap()
            .contains("second QR code was not made"),
        "the EU DCC plugin is loaded: no warning"
    );

    // Without the EU DCC plugin: the same certificate prints, with our
    // code alone, and the warning names the format, not the person.
    let plugins = tmp.path().join("plugins-without-eu-dcc");
    for entry in std::fs::read_dir(repo().join("target/plugins")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "format-eu-dcc" || !entry.path().is_dir() {
            continue;
        }
        let to = plugins.join(entry.file_name());
        std::fs::create_dir_all(&to).unwrap();
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
    }
    let tmp2 = tempfile::tempdir().unwrap();
    let log = tmp2.path().join("server.log");
    let server = start(tmp2.path(), &plugins, &log);
    let id = issue(&server);
    let (status, pdf) = get(
        &server,
        &format!("/v1/certificates/{id}/certificate.pdf?lang=en"),
    );
    assert_eq!(status, 200);
    let path = tmp2.path().join("certificate.pdf");
    std::fs::write(&path, &pdf).unwrap();
    assert_eq!(pages_and_images(&path), (1, vec![1]), "our code alone");
    let words = text(run(poppler("pdftotext").arg(&path).arg("-")));
    assert!(!words.contains("EU Digital COVID Certificate"), "{words}");
    server.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("second QR code was not made"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains("eu-dcc")
            && warnings[0].contains("the format is not loaded"),
        "{}",
        warnings[0]
    );
    for personal in support::fixture_personal_data() {
        assert!(
            !warnings[0]
                .to_lowercase()
                .contains(&personal.to_lowercase()),
            "the warning carries personal data `{personal}`: {}",
            warnings[0]
        );
    }
}
