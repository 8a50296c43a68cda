// The page a certificate's feedbackUrl lands on: the side-effect form in
// the person's language (built from the configured JSON Schema), and the
// rating. The certificate's QR text is the proof of holding it: carried in
// the link from the verifier page (#qr=…), or pasted.
import { el } from "/pages/divoc.js";

const $ = (id) => document.getElementById(id);
const id = decodeURIComponent(location.pathname.split("/").pop());
const params = new URLSearchParams(location.search);
const fragment = new URLSearchParams(location.hash.slice(1));
const UI = {
  en: { send: "Send report", thanks: "Thank you. Your report was received", rate: "Send rating", rated: "Thank you for rating",
        facility: "The vaccination centre", vaccinator: "The person who vaccinated you", comment: "Comment", rateTitle: "Rate your vaccination" },
  hi: { send: "रिपोर्ट भेजें", thanks: "धन्यवाद। आपकी रिपोर्ट मिल गई", rate: "रेटिंग भेजें", rated: "रेटिंग के लिए धन्यवाद",
        facility: "टीकाकरण केंद्र", vaccinator: "टीका लगाने वाले व्यक्ति", comment: "टिप्पणी", rateTitle: "अपने टीकाकरण को रेट करें" },
};

function qr() {
  return fragment.get("qr") || $("qr").value.trim();
}

function errorText(body) {
  const e = body && body.error;
  if (!e) return "Something went wrong.";
  const fields = (e.details && e.details.fields) || [];
  return fields.length ? fields.map((f) => `${f.field}: ${f.message}`).join("; ") : e.message;
}

async function post(path, payload) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(payload) });
  return { ok: r.ok, body: await r.json().catch(() => null) };
}

function field(name, prop, required) {
  const title = prop.title || name;
  const labels = prop["x-labels"] || {};
  if (prop.type === "array" && prop.items && prop.items.enum) {
    const set = el("fieldset", { id: `f-${name}` }, el("legend", {}, title));
    for (const v of prop.items.enum) {
      set.append(el("label", {}, el("input", { type: "checkbox", name, value: v }), labels[v] || v));
    }
    return set;
  }
  if (prop.enum) {
    const set = el("fieldset", { id: `f-${name}` }, el("legend", {}, title));
    for (const v of prop.enum) {
      set.append(el("label", {}, el("input", { type: "radio", name, value: v }), labels[v] || v));
    }
    return set;
  }
  const wrap = el("div", {});
  wrap.append(el("label", { for: `f-${name}` }, title + (required ? " *" : "")));
  if (prop.format === "date") {
    wrap.append(el("input", { type: "date", id: `f-${name}`, name, max: new Date().toISOString().slice(0, 10) }));
  } else if ((prop.maxLength || 0) > 200) {
    wrap.append(el("textarea", { id: `f-${name}`, name, maxlength: String(prop.maxLength) }));
  } else {
    wrap.append(el("input", { type: "text", id: `f-${name}`, name }));
  }
  return wrap;
}

function answers(form, schema) {
  const out = {};
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    if (prop.type === "array") {
      const v = [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
      if (v.length) out[name] = v;
    } else if (prop.enum) {
      const v = form.querySelector(`input[name="${name}"]:checked`);
      if (v) out[name] = v.value;
    } else {
      const v = form.querySelector(`[name="${name}"]`).value.trim();
      if (v) out[name] = v;
    }
  }
  return out;
}

function stars(name, legend) {
  const set = el("fieldset", { id: `r-${name}` }, el("legend", {}, legend));
  const row = el("div", { class: "stars" });
  for (let i = 1; i <= 5; i++) {
    row.append(el("label", {}, el("input", { type: "radio", name, value: String(i), "aria-label": `${i} / 5` }), "★".repeat(i)));
  }
  set.append(row);
  return set;
}

async function main() {
  const lang = params.get("lang") || navigator.language || "en";
  const r = await fetch(`/v1/feedback/form?lang=${encodeURIComponent(lang)}`);
  const form = await r.json();
  const ui = UI[form.lang] || UI.en;
  document.documentElement.lang = form.lang;
  const schema = form.schema;
  $("title").textContent = schema.title || $("title").textContent;
  $("languages").replaceChildren(
    ...form.languages.map((l) => el("a", { href: `?lang=${l}${location.hash}`, class: "lang" }, l === "hi" ? "हिन्दी" : l === "en" ? "English" : l)),
  );
  $("proof").hidden = Boolean(fragment.get("qr"));
  const required = new Set(schema.required || []);
  const report = $("report");
  // The questions in the form's order (`x-order`: JSON objects have none).
  const props = schema.properties || {};
  const order = (schema["x-order"] || []).filter((n) => n in props);
  for (const n of Object.keys(props)) if (!order.includes(n)) order.push(n);
  for (const name of order) report.append(field(name, props[name], required.has(name)));
  report.append(el("button", { type: "submit", id: "send-report" }, ui.send));
  report.addEventListener("submit", async (e) => {
    e.preventDefault();
    const res = await post(`/v1/certificates/${encodeURIComponent(id)}/feedback`, { answers: answers(report, schema), qr: qr() });
    const out = $("report-result");
    out.className = res.ok ? "verdict ok" : "verdict bad";
    out.dataset.outcome = res.ok ? "stored" : "refused";
    out.textContent = res.ok ? `${ui.thanks} (${res.body.id}).` : errorText(res.body);
  });
  $("rating-title").textContent = ui.rateTitle;
  const rating = $("rating");
  rating.append(stars("facility", ui.facility), stars("vaccinator", ui.vaccinator));
  rating.append(el("label", { for: "r-comment" }, ui.comment), el("textarea", { id: "r-comment", maxlength: "1000" }));
  rating.append(el("button", { type: "submit", id: "send-rating" }, ui.rate));
  rating.addEventListener("submit", async (e) => {
    e.preventDefault();
    const pick = (n) => rating.querySelector(`input[name="${n}"]:checked`);
    const payload = { qr: qr(), facility: pick("facility") ? Number(pick("facility").value) : 0 };
    if (pick("vaccinator")) payload.vaccinator = Number(pick("vaccinator").value);
    const c = $("r-comment").value.trim();
    if (c) payload.comment = c;
    const res = await post(`/v1/certificates/${encodeURIComponent(id)}/rating`, payload);
    const out = $("rating-result");
    out.className = res.ok ? "verdict ok" : "verdict bad";
    out.textContent = res.ok ? ui.rated : errorText(res.body);
  });
  document.body.dataset.ready = "yes";
}

main().catch((e) => {
  $("report-result").textContent = e.message;
});
