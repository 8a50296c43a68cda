//! The pages, in a real browser: Debian's Chromium, headless, driven over
//! WebDriver (chromedriver), in a phone-sized window (360 px wide). Each
//! page is loaded and used as a person would, checked for WCAG AA text
//! contrast and for fitting the width, and photographed: the screenshots
//! are kept in `target/screenshots/` as test artifacts.
//!
//! - `/feedback/{id}` (reached from the verifier's link, with the QR as
//!   proof): a report filed through the form is stored;
//! - `/dashboard`: the monitoring view's count follows an issuance live;
//! - `/verify`: a pasted QR text is "Valid"; then, with the server stopped,
//!   the same text is still "Valid", checked in the browser with the keys
//!   and status lists the page kept.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::{self, Server};

const ADMIN: &str = "pages-test-admin-token-0123456789ab";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn screenshots() -> PathBuf {
    let dir = repo().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver on a free port; killed when dropped.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn driver() -> Driver {
    let bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("chromedriver not found: scripts/test.sh installs Debian's chromium and chromium-driver");
    let port = support::free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver(child, port)
}

async fn browser(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--lang=en-GB"],
            // A phone's viewport (a desktop window is at least 500 px).
            "mobileEmulation": {"deviceMetrics": {"width": 360, "height": 780, "pixelRatio": 2.0}},
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap()
}

/// Polls `script` (a function body returning a value) until it returns
/// something truthy; returns it.
async fn until(c: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        if !(v.is_null() || v == json!(false) || v == json!("")) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// WCAG 2.x contrast of every visible text against its background;
/// returns those under 4.5:1 (AA for normal text).
const CONTRAST: &str = r#"
function lum(c) {
  const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
function bg(e) {
  for (; e; e = e.parentElement) {
    const m = getComputedStyle(e).backgroundColor.match(/[\d.]+/g);
    if (m && (m.length < 4 || Number(m[3]) > 0.99)) return getComputedStyle(e).backgroundColor;
  }
  return "rgb(255, 255, 255)";
}
const bad = [];
for (const e of document.querySelectorAll("body *")) {
  if (e instanceof SVGElement || !e.getClientRects().length) continue;
  if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
  const a = lum(getComputedStyle(e).color), b = lum(bg(e));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) bad.push(`${e.tagName} "${e.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
}
return bad;
"#;

async fn check_and_photograph(c: &Client, name: &str) {
    let bad = c.execute(CONTRAST, vec![]).await.unwrap();
    assert_eq!(bad, json!([]), "{name}: text under WCAG AA contrast");
    let fits = c
        .execute(
            "return [window.innerWidth, document.documentElement.scrollWidth];",
            vec![],
        )
        .await
        .unwrap();
    let (w, sw) = (fits[0].as_i64().unwrap(), fits[1].as_i64().unwrap());
    assert_eq!(w, 360, "{name}: the window is {w} px wide, not a phone's");
    assert!(sw <= w, "{name}: {sw} px of content in a {w} px window");
    let png = c.screenshot().await.unwrap();
    let path = screenshots().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

fn start(tmp: &Path) -> Server {
    let port = support::free_port();
    let mut cmd = support::serve_command(
        &repo().join("config/divoc.toml"),
        &tmp.join("data"),
        &tmp.join("plugins"),
        port,
        ADMIN,
    );
    cmd.env("DIVOC_CERTIFICATES__DISTRIBUTION__CHANNELS", "[]")
        .env(
            "DIVOC_SERVER__PUBLIC_URL",
            format!("http://127.0.0.1:{port}"),
        );
    support::spawn(&mut cmd, port)
}

fn issue(server: &Server, code: &str) -> String {
    let path = repo().join("host/certificates/tests/cases/valid-one-dose/request.json");
    let mut req: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    req["pre_enrollment_code"] = json!(code);
    let (status, body) = support::send_json(
        "POST",
        &format!("{}/v1/certificates", server.base),
        Some(ADMIN),
        Some(&req),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[test]
fn the_pages_work_in_a_phone_sized_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let id = issue(&server, "PG-001");
    let qr = ureq::get(&format!("{}/v1/certificates/{id}/qr.txt", server.base))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let (status, credential) = support::send_json(
        "GET",
        &format!("{}/v1/certificates/{id}", server.base),
        Some(ADMIN),
        None,
    );
    assert_eq!(status, 200);
    // Every credential links to this host's feedback page.
    let feedback_url = credential["evidence"][0]["feedbackUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(feedback_url, format!("{}/feedback/{id}", server.base));
    let driver = driver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(driver.1).await;

        // The feedback page, from the verifier's link (QR in the fragment).
        let link = format!("{feedback_url}#qr={}", urlencode(&qr));
        c.goto(&link).await.unwrap();
        until(&c, "the form", "return document.body.dataset.ready;").await;
        c.execute(
            r#"document.querySelector('input[name="symptoms"][value="fever"]').click();
               document.querySelector('input[name="medicalCare"][value="doctor"]').click();
               document.querySelector('input[name="onsetDate"]').value = "2021-03-03";"#,
            vec![],
        )
        .await
        .unwrap();
        c.find(Locator::Id("send-report"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let outcome = until(
            &c,
            "the report's answer",
            "return document.getElementById('report-result').dataset.outcome;",
        )
        .await;
        let answer = c
            .find(Locator::Id("report-result"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(outcome, json!("stored"), "{answer}");
        // The questions come in the form's order, symptoms first.
        let first = c
            .execute(
                "return document.querySelector('#report fieldset, #report label').id || \
                 document.querySelector('#report fieldset, #report label').getAttribute('for');",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(first, json!("f-symptoms"));
        // The rating, once.
        c.execute(
            r#"document.querySelector('input[name="facility"][value="4"]').click();
               document.querySelector('input[name="vaccinator"][value="5"]').click();"#,
            vec![],
        )
        .await
        .unwrap();
        c.find(Locator::Id("send-rating"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let rated = until(
            &c,
            "the rating's answer",
            "return document.getElementById('rating-result').textContent;",
        )
        .await;
        assert_eq!(rated, json!("Thank you for rating"));
        check_and_photograph(&c, "feedback").await;
        // … and in Hindi.
        c.goto(&format!(
            "{}/feedback/{id}?lang=hi#qr={}",
            server.base,
            urlencode(&qr)
        ))
        .await
        .unwrap();
        until(&c, "the Hindi form", "return document.body.dataset.ready;").await;
        let title = c
            .find(Locator::Id("title"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(title, "दुष्प्रभाव की सूचना दें");
        check_and_photograph(&c, "feedback-hi").await;

        // The dashboard follows an issuance live.
        c.goto(&format!("{}/dashboard", server.base)).await.unwrap();
        c.find(Locator::Id("token"))
            .await
            .unwrap()
            .send_keys(ADMIN)
            .await
            .unwrap();
        c.execute("document.querySelector('#login button').click();", vec![])
            .await
            .unwrap();
        until(
            &c,
            "the dashboard",
            "return document.body.dataset.issued === '1';",
        )
        .await;
        until(
            &c,
            "the live stream",
            "return document.getElementById('live').textContent === 'live';",
        )
        .await;
        issue(&server, "PG-002");
        until(
            &c,
            "the count to follow",
            "return document.body.dataset.issued === '2';",
        )
        .await;
        let bar = until(
            &c,
            "a vaccine bar",
            "const r = document.querySelector('#by-vaccine rect'); return r && r.dataset.value;",
        )
        .await;
        assert_eq!(bar, json!("2"));
        check_and_photograph(&c, "dashboard").await;

        // The verifier: online, then with the server gone.
        c.goto(&format!("{}/verify", server.base)).await.unwrap();
        until(
            &c,
            "the verifier's offline copy",
            "return document.body.dataset.offlineReady;",
        )
        .await;
        let (verdict, _) = verify(&c, &qr).await;
        assert_eq!(verdict, "valid");
        let name = c
            .find(Locator::Id("claims"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(name.contains("Bhaya Mitra"), "{name}");
        check_and_photograph(&c, "verify").await;
        server.stop();
        let (verdict, message) = verify(&c, &qr).await;
        assert_eq!(verdict, "valid", "{message}");
        assert!(message.contains("offline"), "{message}");
        check_and_photograph(&c, "verify-offline").await;
        // A tampered code is not genuine, offline too.
        let (verdict, message) = verify(&c, &tamper(&qr)).await;
        assert_ne!(verdict, "valid", "{message}");
        c.close().await.unwrap();
    });
    drop(driver);
    // No personal data in any event this test produced.
    crate::support::assert_no_personal_data(&tmp.path().join("data"), &[]);
}

/// Puts `text` in the verifier's box, presses Verify and waits for the
/// verdict; the verdict and its message.
async fn verify(c: &Client, text: &str) -> (String, String) {
    c.execute(
        "document.getElementById('qr-text').value = arguments[0];
         document.getElementById('result').removeAttribute('data-verdict');",
        vec![json!(text)],
    )
    .await
    .unwrap();
    c.find(Locator::Id("verify"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let verdict = until(
        c,
        "a verdict",
        "return document.getElementById('result').dataset.verdict;",
    )
    .await;
    let message = c
        .find(Locator::Id("verdict-message"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (verdict.as_str().unwrap_or_default().to_owned(), message)
}

/// The QR text of the same credential with the name changed (re-encoded,
/// so it decodes, but its proof no longer holds).
fn tamper(qr: &str) -> String {
    let mut c = divoc_certificates::qr::decode(qr).unwrap();
    c["credentialSubject"]["name"] = json!("Someone Else");
    divoc_certificates::qr::encode(&c).unwrap()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
