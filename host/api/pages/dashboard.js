// The monitoring dashboard: the live counters (/v1/stats) as charts and
// tables, plugin health (/metrics), redrawn as the event stream
// (/v1/events/stream, read with fetch so that the token goes in a header,
// not in the URL) reports changes.
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let token = sessionStorage.getItem("divoc-token") || "";

async function get(path, as = "json") {
  const r = await fetch(path, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return as === "json" ? r.json() : r.text();
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// Horizontal bars: one row per key, widest first unless `ordered`.
function bars(id, data, ordered = false) {
  const target = $(id);
  let rows = Object.entries(data || {});
  if (!ordered) rows.sort((a, b) => b[1] - a[1]);
  rows = rows.slice(0, 14);
  const max = Math.max(1, ...rows.map((r) => r[1]));
  const h = 22;
  target.setAttribute("viewBox", `0 0 340 ${Math.max(h, rows.length * h)}`);
  target.replaceChildren();
  rows.forEach(([k, v], i) => {
    const y = i * h;
    const w = Math.max(2, (v / max) * 170);
    target.append(svg("text", { x: 0, y: y + 15 }));
    target.lastChild.textContent = k.length > 18 ? k.slice(0, 17) + "…" : k;
    target.append(svg("rect", { x: 125, y: y + 3, width: w, height: h - 7, "data-key": k, "data-value": v }));
    target.append(svg("text", { x: 130 + w, y: y + 15 }));
    target.lastChild.textContent = String(v);
  });
}

function rows(id, list) {
  $(id).replaceChildren(
    ...list.map((cells) => {
      const tr = document.createElement("tr");
      for (const c of cells) {
        const td = document.createElement("td");
        td.textContent = String(c);
        tr.append(td);
      }
      return tr;
    }),
  );
}

function metric(text, name) {
  const out = {};
  const re = new RegExp(`^${name}\\{plugin="([^"]+)"\\} ([0-9.e+-]+)$`, "gm");
  for (const m of text.matchAll(re)) out[m[1]] = Number(m[2]);
  return out;
}

async function draw() {
  const stats = await get("/v1/stats");
  const m = stats.metrics || {};
  const issued = m["certificates.issued"] || {};
  $("issued").textContent = issued.total || 0;
  $("revoked").textContent = (m["certificates.revoked"] || {}).total || 0;
  $("reports").textContent = (m["feedback.reports"] || {}).total || 0;
  $("serious").textContent = (m["feedback.serious"] || {}).total || 0;
  const days = Object.fromEntries(Object.entries(issued.day || {}).sort().slice(-14));
  bars("by-day", days, true);
  bars("by-district", issued.district);
  bars("by-vaccine", issued.vaccine);
  rows(
    "aefi",
    Object.entries(stats.aefiByBatch || {})
      .sort((a, b) => b[1].per1000 - a[1].per1000)
      .map(([b, r]) => [b, r.doses, r.reports, r.serious, r.per1000]),
  );
  try {
    const text = await get("/metrics", "text");
    const calls = metric(text, "divoc_plugin_calls");
    const faults = metric(text, "divoc_plugin_faults");
    const off = metric(text, "divoc_plugin_disabled");
    rows("plugins", Object.keys(calls).sort().map((p) => [p, calls[p], faults[p] || 0, off[p] ? "disabled" : "ready"]));
  } catch (_) {
    rows("plugins", []);
  }
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.issued = String(issued.total || 0);
  return stats.through || 0;
}

// The statistics are rebuilt in the background; `through` says which
// event they reflect. After an event, ask until they reflect it.
let pending = null;
let wanted = 0;
function soon(seq) {
  wanted = Math.max(wanted, seq);
  if (pending) return;
  pending = setTimeout(async () => {
    pending = null;
    try {
      const through = await draw();
      if (through < wanted) soon(wanted);
    } catch (e) {
      $("live").textContent = e.message;
    }
  }, 300);
}

// Reads the event stream; reconnects after the last event seen.
async function listen(after) {
  let last = after;
  for (;;) {
    try {
      const headers = { authorization: `Bearer ${token}` };
      const q = last === null ? "" : `?after=${last}`;
      const r = await fetch(`/v1/events/stream${q}`, { headers });
      if (!r.ok) throw new Error(`event stream: HTTP ${r.status}`);
      $("live").textContent = "live";
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const id = /^id: ?(\d+)$/m.exec(block);
          if (id) {
            last = Number(id[1]);
            soon(last);
          }
        }
      }
    } catch (e) {
      $("live").textContent = `reconnecting (${e.message})`;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function start() {
  await draw();
  $("login").hidden = true;
  $("board").hidden = false;
  document.body.dataset.ready = "yes";
  listen(null);
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("divoc-token", token);
  start().catch((err) => alert(err.message));
});
if (token) start().catch(() => sessionStorage.removeItem("divoc-token"));
