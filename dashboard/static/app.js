// Shared page machinery: URL state (deep links), the time range and refresh controls, fetching the
// page's JSON and re-rendering without a reload, and small DOM/format/table helpers. Every value
// goes into the page through textContent or attributes, never innerHTML.
"use strict";
const CW = (() => {
  const params = () => new URLSearchParams(location.search);
  function setParams(changes) {
    const p = params();
    for (const [k, v] of Object.entries(changes)) { if (v === null || v === "" || v === undefined) p.delete(k); else p.set(k, v); }
    history.replaceState(null, "", location.pathname + (p.toString() ? "?" + p : ""));
  }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    return node;
  }
  const fmt = {
    pct: v => v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%",
    num: (v, d = 0) => v === null || v === undefined ? "–" : Number(v).toFixed(d),
    bytes: v => { if (v === null || v === undefined) return "–"; const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]; let i = 0; while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; } return v.toFixed(i ? 1 : 0) + " " + u[i]; },
    dur: s => { if (s === null || s === undefined) return "–"; s = Math.round(s); const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60); return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${s % 60}s`; },
    time: t => t ? new Date(t * 1000).toLocaleString() : "–",
    iso: t => t ? new Date(t).toLocaleString() : "–",
  };
  // A sortable, filterable table; sort column and filter text live in the URL (deep links).
  function table(id, columns, rows, opts = {}) {
    const p = params();
    const sortKey = p.get(id + "_sort") || opts.sort || columns[0].key;
    const desc = p.has(id + "_desc") ? p.get(id + "_desc") === "1" : Boolean(opts.desc);
    const filter = (p.get(id + "_q") || "").toLowerCase();
    const shown = rows.filter(r => !filter || columns.some(c => String(c.text ? c.text(r) : r[c.key] ?? "").toLowerCase().includes(filter)));
    const col = columns.find(c => c.key === sortKey) || columns[0];
    const value = r => col.sortValue ? col.sortValue(r) : r[col.key];
    shown.sort((a, b) => { const x = value(a), y = value(b); const c = (x ?? -Infinity) < (y ?? -Infinity) ? -1 : (x ?? -Infinity) > (y ?? -Infinity) ? 1 : 0; return desc ? -c : c; });
    const search = el("input", { type: "search", placeholder: "filter…", value: p.get(id + "_q") || "", "aria-label": "filter rows",
      onchange: e => { setParams({ [id + "_q"]: e.target.value }); CW.rerender(); } });
    const head = el("tr", {}, columns.map(c => el("th", { scope: "col", "aria-sort": c.key === sortKey ? (desc ? "descending" : "ascending") : null,
      onclick: () => { setParams({ [id + "_sort"]: c.key, [id + "_desc"]: c.key === sortKey && !desc ? "1" : "0" }); CW.rerender(); } },
      c.label, c.key === sortKey ? (desc ? " ▼" : " ▲") : "")));
    const body = shown.map(r => el("tr", {}, columns.map(c => el("td", { class: c.cls || null }, c.render ? c.render(r) : (c.text ? c.text(r) : r[c.key] ?? "–")))));
    return el("div", { class: "table", id }, el("div", { class: "tablebar" }, search, el("span", {}, `${shown.length} of ${rows.length}`)),
      el("table", {}, el("thead", {}, head), el("tbody", {}, body)));
  }
  function kpi(label, value, cls) { return el("div", { class: "kpi " + (cls || "") }, el("div", { class: "value" }, value), el("div", { class: "label" }, label)); }
  function section(title, ...children) { return el("section", {}, el("h2", {}, title), ...children); }
  const plotConfig = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  const layout = (extra) => Object.assign({ margin: { l: 60, r: 20, t: 30, b: 40 }, height: 280, font: { size: 12 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", legend: { orientation: "h" } }, extra);
  const times = ts => ts.map(t => new Date(t * 1000));

  // Operator actions. The token stays in this tab's sessionStorage and travels only in the
  // Authorization header, never in a cookie, so another site cannot make the browser act (CSRF).
  const TOKEN_KEY = "cw-operator-token";
  function tokenInput() {
    return el("label", {}, "Operator token ", el("input", { id: "token", type: "password", autocomplete: "off",
      value: sessionStorage.getItem(TOKEN_KEY) || "" }));
  }
  async function operatorCall(method, url, body) {
    const token = document.getElementById("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    const init = { method, headers: { Authorization: "Bearer " + token } };
    if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const response = await fetch(url, init);
    let parsed = null;
    try { parsed = await response.json(); } catch (e) { parsed = null; }
    return { ok: response.ok, status: response.status, body: parsed,
      error: response.ok ? null : `${response.status} ${parsed && parsed.detail ? JSON.stringify(parsed.detail) : response.statusText}` };
  }

  let render = null, data = null, timer = null, inflight = false;
  function rerender() {
    const content = document.getElementById("content");
    const scrollY = window.scrollY;
    const fresh = el("div", { id: "content" }, render(data));
    content.replaceWith(fresh);
    window.scrollTo(0, scrollY);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    if (CW.afterRender) withPlotly(() => CW.afterRender(data));
  }
  // plotly.js loads async (pages.py): charts are drawn once it is there, from the newest data.
  let waiting = false;
  function withPlotly(draw) {
    const tag = document.getElementById("plotly");
    if (window.Plotly || !tag) { draw(); return; }
    if (waiting) return;
    waiting = true;
    tag.addEventListener("load", () => { waiting = false; CW.afterRender(data); }, { once: true });
  }
  async function refresh() {
    if (inflight) return;
    inflight = true;
    const box = document.getElementById("error");
    try {
      const response = await fetch(document.body.dataset.api + location.search, { headers: { Accept: "application/json" } });
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail ? JSON.stringify(body.detail) : response.statusText);
      data = body; box.hidden = true; rerender();
    } catch (e) { box.hidden = false; box.textContent = "refresh failed: " + e.message; }
    finally { inflight = false; }
  }
  function schedule() {
    clearInterval(timer);
    const seconds = Number(params().get("refresh") ?? document.getElementById("refresh").value);
    if (seconds > 0) timer = setInterval(refresh, seconds * 1000);
  }
  // serve --banner (the demo: "a simulated cluster..."), above the heading of every page.
  async function showBanner() {
    try {
      const body = await (await fetch("/api/banner", { headers: { Accept: "application/json" } })).json();
      if (body.banner) document.querySelector("main").prepend(el("p", { class: "banner", role: "note" }, body.banner));
    } catch (e) { /* no banner is no loss */ }
  }
  function page(renderFn) {
    render = renderFn;
    showBanner();
    data = JSON.parse(document.getElementById("view").textContent);
    const p = params();
    const range = document.getElementById("range"), every = document.getElementById("refresh");
    range.value = p.get("range") || "1h";
    if (!range.value) range.append(el("option", { value: p.get("range"), selected: true }, p.get("range")));
    every.value = p.get("refresh") ?? "10";
    range.addEventListener("change", () => { setParams({ range: range.value, end: null }); refresh(); });
    every.addEventListener("change", () => { setParams({ refresh: every.value }); schedule(); });
    for (const a of document.querySelectorAll("header nav a")) if (a.getAttribute("href") === location.pathname) a.setAttribute("aria-current", "page");
    // After the page script has finished (it sets CW.afterRender after calling page()).
    setTimeout(() => { rerender(); schedule(); });
  }
  return { el, fmt, table, kpi, section, page, refresh, rerender, setParams, params, plotConfig, layout, times,
    tokenInput, operatorCall };
})();
