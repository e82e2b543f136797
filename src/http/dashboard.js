// The dashboard's shared script: the token, small DOM helpers, the JSON calls, and the
// charts, drawn as SVG by this code (no library, no build step, no network beyond the
// service). Both pages (`/` and `/accounts/{id}`) load it.
"use strict";

const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";

// The token arrives once in the URL fragment (#token=…) and is kept for the tab only.
(function takeToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem("mt5r-token", hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
})();
const token = sessionStorage.getItem("mt5r-token");

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function emptyRow(body, text, span) {
  const td = el("td", text, "empty");
  td.colSpan = span || 10;
  const tr = el("tr");
  tr.append(td);
  body.append(tr);
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function badge(state) {
  return el("span", String(state).replace("_", " "), "badge state-" + state);
}

function accountLink(id) {
  const a = el("a", id);
  a.href = "/accounts/" + encodeURIComponent(id);
  return a;
}

function deltaText(d) {
  if (d.delta == null) return "";
  const sign = !d.delta.startsWith("-") ? "+" : "";
  const unit = d.unit === "percent" ? " %" : d.unit ? " " + d.unit : "";
  return sign + d.delta + unit;
}

async function api(path, method, body) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const init = { method: method || "GET", headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) throw new Error("a token is required: open this page as …#token=<token>");
  if (!r.ok) {
    const b = await r.json().catch(() => ({}));
    throw new Error(b.message || b.error || path + ": HTTP " + r.status);
  }
  return r;
}

async function getJson(path, method, body) {
  return (await api(path, method, body)).json();
}

function showError(e) {
  const banner = document.getElementById("banner");
  if (!e) {
    banner.style.display = "none";
    return;
  }
  banner.textContent = String(e.message || e);
  banner.style.display = "block";
}

// Asks for a note, then acknowledges; `done` runs after (success or not).
async function acknowledge(d, done) {
  const note = prompt("Acknowledge " + d.kind + " on " + d.account_id +
    " (" + d.symbol + "). Note (required), e.g. known manual hedge:");
  if (note === null) return;
  try {
    await getJson("/api/divergences/" + d.id + "/acknowledge", "POST", { note, by: "dashboard" });
  } catch (e) {
    alert(String(e.message || e));
  }
  done();
}

// Downloads the CSV export of `query` (the token cannot ride on a plain link).
async function downloadCsv(query) {
  try {
    const r = await api("/api/divergences/export?" + query);
    const url = URL.createObjectURL(await r.blob());
    const a = el("a");
    a.href = url;
    a.download = "divergences.csv";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (e) {
    showError(e);
  }
}

// ---- charts ---------------------------------------------------------------------------

const CHART = { w: 900, h: 220, left: 56, right: 12, top: 12, bottom: 26 };

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceTime(t, span) {
  const d = new Date(t);
  if (span > 2 * 86400e3) return (d.getMonth() + 1) + "/" + d.getDate() + " " + d.getHours() + "h";
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// A frame with scales: x over [t0, t1] (ms), y over [lo, hi]; returns the svg and mappers.
function frame(holder, t0, t1, lo, hi, label) {
  holder.replaceChildren();
  if (hi <= lo) { hi = lo + 1; }
  const pad = (hi - lo) * 0.05;
  lo -= pad; hi += pad;
  const s = svg("svg", { viewBox: `0 0 ${CHART.w} ${CHART.h}`, class: "chart", role: "img" });
  if (label) s.append(svg("title", {}, label));
  const x = (t) => CHART.left + (t - t0) / Math.max(1, t1 - t0) * (CHART.w - CHART.left - CHART.right);
  const y = (v) => CHART.h - CHART.bottom - (v - lo) / (hi - lo) * (CHART.h - CHART.top - CHART.bottom);
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    s.append(svg("line", { x1: CHART.left, x2: CHART.w - CHART.right, y1: y(v), y2: y(v), class: "grid" }));
    s.append(svg("text", { x: CHART.left - 4, y: y(v) + 4, class: "axis", "text-anchor": "end" },
      Math.abs(v) >= 1000 ? v.toFixed(0) : +v.toPrecision(3)));
  }
  for (let i = 0; i <= 6; i++) {
    const t = t0 + (t1 - t0) * i / 6;
    s.append(svg("text", { x: x(t), y: CHART.h - 8, class: "axis", "text-anchor": "middle" },
      niceTime(t, t1 - t0)));
  }
  holder.append(s);
  return { s, x, y };
}

// Lines over time: series = [{name, cls, points: [[t_ms, value], …], dots}], markers =
// [{t, cls, label}] (vertical lines), levels = [{name, cls, points}] (drawn as steps).
function lineChart(holder, { series, markers, t0, t1, label }) {
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const times = series.flatMap((s) => s.points.map((p) => p[0]));
  t0 = t0 ?? Math.min(...times);
  t1 = t1 ?? Math.max(...times);
  if (!values.length) {
    holder.replaceChildren(el("div", "no data in this window", "empty"));
    return;
  }
  const { s, x, y } = frame(holder, t0, t1, Math.min(...values), Math.max(...values), label);
  for (const m of markers || []) {
    const g = svg("g", { class: "marker " + (m.cls || ""), "data-marker": m.cls || "" });
    g.append(svg("line", { x1: x(m.t), x2: x(m.t), y1: CHART.top, y2: CHART.h - CHART.bottom }));
    g.append(svg("title", {}, m.label));
    s.append(g);
  }
  for (const ser of series) {
    const pts = ser.points.filter((p) => Number.isFinite(p[1]));
    if (!pts.length) continue;
    const d = pts.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join(" ");
    s.append(svg("path", { d, class: "line " + ser.cls }));
    if (ser.dots) {
      for (const p of pts) {
        const c = svg("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5, class: "dot " + ser.cls,
          "data-point": ser.name });
        c.append(svg("title", {}, ser.name + " " + p[1] + " at " + new Date(p[0]).toLocaleString()));
        s.append(c);
      }
    }
  }
  legend(holder, series.map((x) => [x.name, x.cls]).concat(
    [...new Set((markers || []).map((m) => m.cls))].map((c) => [c.replace("_", " "), "marker-" + c])));
}

// Bars per time slot: bars = [{t, values: [a, b, …], title}], stacked in `names` order.
function barChart(holder, { bars, names, classes, slot, label }) {
  if (!bars.length) {
    holder.replaceChildren(el("div", "no data in this window", "empty"));
    return;
  }
  const t0 = bars[0].t, t1 = bars[bars.length - 1].t + slot;
  const hi = Math.max(1, ...bars.map((b) => b.values.reduce((x, y) => x + y, 0)));
  const { s, x, y } = frame(holder, t0, t1, 0, hi, label);
  const w = Math.max(1, x(t0 + slot) - x(t0) - 2);
  for (const b of bars) {
    const g = svg("g", { "data-bar": new Date(b.t).toISOString() });
    let base = 0;
    b.values.forEach((v, i) => {
      if (v > 0) {
        g.append(svg("rect", { x: x(b.t) + 1, y: y(base + v), width: w, height: Math.max(0, y(base) - y(base + v)),
          class: "bar " + classes[i] }));
      }
      base += v;
    });
    g.append(svg("title", {}, b.title));
    s.append(g);
  }
  legend(holder, names.map((n, i) => [n, classes[i]]));
}

// Coloured spans over time: spans = [{from, to, state, title}].
function timeline(holder, { spans, t0, t1 }) {
  holder.replaceChildren();
  const h = 34;
  const s = svg("svg", { viewBox: `0 0 ${CHART.w} ${h + 18}`, class: "chart timeline" });
  const x = (t) => CHART.left + (t - t0) / Math.max(1, t1 - t0) * (CHART.w - CHART.left - CHART.right);
  for (const sp of spans) {
    const r = svg("rect", { x: x(sp.from), y: 2, width: Math.max(1, x(sp.to) - x(sp.from)), height: h,
      class: "span state-" + sp.state, "data-span": sp.state });
    r.append(svg("title", {}, sp.title));
    s.append(r);
  }
  for (let i = 0; i <= 6; i++) {
    const t = t0 + (t1 - t0) * i / 6;
    s.append(svg("text", { x: x(t), y: h + 14, class: "axis", "text-anchor": "middle" }, niceTime(t, t1 - t0)));
  }
  holder.append(s);
  legend(holder, [...new Set(spans.map((sp) => sp.state))].map((st) => [st.replace("_", " "), "state-" + st]));
}

function legend(holder, entries) {
  const l = el("div", null, "legend");
  for (const [name, cls] of entries) {
    const k = el("span", null, "key");
    k.append(el("i", null, "swatch " + cls), document.createTextNode(name));
    l.append(k);
  }
  holder.append(l);
}
