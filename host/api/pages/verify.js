// The verifier page: a QR by camera, photo or pasted text; the issuer's
// verdict when online, this device's when not (the proof checked here with
// the issuer's keys and the status lists cached by the service worker).
// Fails closed: nothing that cannot be shown good is shown as valid.
import { decodeQr, verifyProof, statusBit, listName, el } from "/pages/divoc.js";

const $ = (id) => document.getElementById(id);

const LABELS = {
  valid: ["Valid", "ok"],
  revoked: ["Revoked", "bad"],
  suspended: ["Suspended", "bad"],
  expired: ["Expired", "bad"],
  "not-yet-valid": ["Not yet valid", "warn"],
  unknown: ["Status unknown", "warn"],
  invalid: ["Not genuine", "bad"],
  error: ["Cannot read this code", "bad"],
};

function show(kind, message, claims, qr) {
  const [title, tone] = LABELS[kind] || LABELS.error;
  const box = $("result");
  box.hidden = false;
  box.className = "verdict " + tone;
  box.dataset.verdict = kind;
  $("verdict-title").textContent = title;
  $("verdict-message").textContent = message || "";
  const dl = $("claims");
  dl.replaceChildren();
  const rows = claims
    ? [
        ["Name", claims.name],
        ["Born", claims.birth_date],
        ["Vaccine", claims.vaccine],
        ["Dose", claims.dose && claims.total_doses ? `${claims.dose} of ${claims.total_doses}` : claims.dose],
        ["Vaccinated", claims.date ? claims.date.slice(0, 10) : undefined],
        ["Programme", claims.program],
        ["Certificate", claims.certificate_id ? claims.certificate_id.split("/").pop() : undefined],
      ]
    : [];
  for (const [k, v] of rows) {
    if (v === undefined || v === null || v === "") continue;
    dl.append(el("dt", {}, k), el("dd", {}, String(v)));
  }
  const link = $("feedback-link");
  link.hidden = !(claims && claims.certificate_id && qr);
  if (!link.hidden) {
    const id = claims.certificate_id.split("/").pop();
    $("feedback-a").href = `/feedback/${encodeURIComponent(id)}#qr=${encodeURIComponent(qr)}`;
  }
}

function verdictKind(v) {
  if (!v.checks || !v.checks.signature || !v.checks.signature.ok) return "invalid";
  return v.checks.status || "unknown";
}

// The issuer's answer; `null` when it cannot be reached.
async function online(body, type) {
  try {
    const r = await fetch("/v1/verify", {
      method: "POST",
      headers: { "content-type": type },
      body,
    });
    const v = await r.json();
    if (!r.ok) {
      const message = v.error ? v.error.message : `HTTP ${r.status}`;
      // The issuer could not establish a verdict (e.g. status unreadable):
      // unknown, not an unreadable code.
      return { kind: r.status >= 500 ? "unknown" : "error", message };
    }
    return { kind: verdictKind(v), message: v.message, claims: v.claims };
  } catch (_) {
    return null;
  }
}

const CACHE = "divoc-verify-v1";

// A document from the network, kept for offline use; from the kept copy
// when the network does not answer.
async function cachedJson(url) {
  try {
    const r = await fetch(url, { cache: "no-store" });
    if (r.ok) {
      const copy = r.clone();
      await caches.open(CACHE).then((c) => c.put(url, copy)).catch(() => null);
      return r.json();
    }
  } catch (_) {
    // offline: the kept copy below
  }
  const kept = await caches.match(url);
  if (!kept) throw new Error(`${url}: not on this device`);
  return kept.json();
}

function claimsOf(c) {
  const s = c.credentialSubject || {};
  const x = s.vaccination || {};
  return {
    certificate_id: c.id, name: s.name, birth_date: s.birthDate, program: x.program,
    vaccine: x.vaccine, dose: x.dose, total_doses: x.totalDoses, date: x.date,
  };
}

// This device's verdict, from the cached keys and status lists.
async function offline(text) {
  let c;
  try {
    c = await decodeQr(text);
  } catch (e) {
    return { kind: "error", message: e.message };
  }
  const claims = claimsOf(c);
  let did;
  try {
    did = await cachedJson("/.well-known/did.json");
  } catch (_) {
    return { kind: "unknown", message: "Offline, and the issuer's keys are not on this device: open this page online once.", claims };
  }
  if (!(await verifyProof(c, did).catch(() => false))) {
    return { kind: "invalid", message: "The signature does not hold with the issuer's keys.", claims };
  }
  const now = Date.now();
  if (c.validFrom && Date.parse(c.validFrom) > now) return { kind: "not-yet-valid", message: `Valid from ${c.validFrom}.`, claims };
  if (c.validUntil && Date.parse(c.validUntil) < now) return { kind: "expired", message: `Expired ${c.validUntil}.`, claims };
  const entries = Array.isArray(c.credentialStatus) ? c.credentialStatus : [c.credentialStatus].filter(Boolean);
  if (entries.length === 0) return { kind: "unknown", message: "The certificate names no status list.", claims };
  let oldest = null;
  for (const entry of entries) {
    let list;
    try {
      list = await cachedJson(`/v1/status/${encodeURIComponent(listName(entry.statusListCredential))}`);
    } catch (_) {
      return { kind: "unknown", message: "Signature valid, but status unknown offline: this device holds no copy of the status list.", claims };
    }
    if (!(await verifyProof(list, did).catch(() => false))) {
      return { kind: "unknown", message: "Signature valid, but the cached status list is not the issuer's.", claims };
    }
    const from = Date.parse(list.validFrom || "");
    if (!Number.isNaN(from)) oldest = oldest === null ? from : Math.min(oldest, from);
    if (await statusBit(list, Number(entry.statusListIndex))) {
      return { kind: entry.statusPurpose === "suspension" ? "suspended" : "revoked", message: "Per the status list on this device.", claims };
    }
  }
  const asOf = oldest ? ` (status as of ${new Date(oldest).toISOString().slice(0, 16).replace("T", " ")} UTC)` : "";
  return { kind: "valid", message: `Checked on this device, offline${asOf}.`, claims };
}

async function verifyText(text) {
  text = text.trim();
  if (!text) return;
  const answer = (await online(JSON.stringify({ qr: text }), "application/json")) || (await offline(text));
  // Online, keep the status lists this certificate names for next time.
  if (navigator.onLine) {
    decodeQr(text)
      .then((c) => [].concat(c.credentialStatus || []).forEach((e) => cachedJson(`/v1/status/${encodeURIComponent(listName(e.statusListCredential))}`).catch(() => null)))
      .catch(() => null);
  }
  show(answer.kind, answer.message, answer.claims, text);
}

async function verifyImage(blob) {
  const answer = await online(blob, blob.type || "image/png");
  if (answer) return show(answer.kind, answer.message, answer.claims, null);
  if ("BarcodeDetector" in window) {
    const codes = await new BarcodeDetector({ formats: ["qr_code"] }).detect(await createImageBitmap(blob));
    if (codes.length) return verifyText(codes[0].rawValue);
  }
  show("error", "Offline, this device cannot read a photo: paste the text or use the camera.", null, null);
}

async function scan() {
  const video = $("camera");
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  const detector = new BarcodeDetector({ formats: ["qr_code"] });
  const tick = async () => {
    const codes = await detector.detect(video).catch(() => []);
    if (codes.length) {
      stream.getTracks().forEach((t) => t.stop());
      video.hidden = true;
      $("qr-text").value = codes[0].rawValue;
      return verifyText(codes[0].rawValue);
    }
    requestAnimationFrame(tick);
  };
  tick();
}

$("verify").addEventListener("click", () => verifyText($("qr-text").value));
$("photo").addEventListener("change", (e) => e.target.files[0] && verifyImage(e.target.files[0]));
if ("BarcodeDetector" in window && navigator.mediaDevices) {
  $("scan").hidden = false;
  $("scan").addEventListener("click", () => scan().catch((e) => show("error", e.message, null, null)));
}

// Offline once loaded: the service worker keeps this page, the issuer's
// keys and the status lists; they are fetched now so that it has them.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker
    .register("/sw.js")
    .then(() => navigator.serviceWorker.ready)
    .then(() =>
      Promise.all(["/.well-known/did.json", "/v1/status/revocation-0", "/v1/status/suspension-0"].map((u) => cachedJson(u).catch(() => null))),
    )
    .then(() => (document.body.dataset.offlineReady = "yes"))
    .catch(() => (document.body.dataset.offlineReady = "no"));
}
