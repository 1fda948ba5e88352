// Overview: KPIs, then either the node x GPU heatmap (compact arrays expanded here) and the rack
// status grid, or, on a fleet of thousands of nodes (the view model has `nodes`), one cell per node
// grouped by rack, coloured by a per-node aggregate, drilling down to a rack's nodes and to one
// node's GPUs (docs/dashboard.md#the-overview-at-scale).
"use strict";
const STATUS_LABEL = { ok: "idle", alloc: "allocated", drain: "drained", fault: "GPU fault", down: "down", unknown: "unknown" };
const NODE_COLORS = { util: "mean utilisation", util_min: "least busy GPU", temperature: "hottest GPU", memory: "memory used",
  power: "power", unhealthy: "unhealthy GPUs", status: "status" };
// Viridis at five stops, as the heatmap's colour scale.
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function viridis(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1), i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  const c = VIRIDIS[i].map((a, j) => Math.round(a + (VIRIDIS[i + 1][j] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
function kpiTiles(v) {
  const { el, fmt, kpi } = CW, k = v.kpis, notes = v.nodes ? v.nodes.notes : {};
  const alerts = Object.entries(k.alerts_firing);
  const tile = (label, value, cls, note) => { const t = kpi(label, value, cls); if (note) t.title = note; return t; };
  return el("div", { class: "kpis", id: "kpis" },
    kpi("GPUs", k.gpus_total), kpi("busy", k.gpus_busy),
    tile(v.nodes ? "idle (allocated, now)" : "idle (allocated)", k.gpus_idle, k.gpus_idle ? "warn" : "", notes.gpus_idle),
    kpi("free", k.gpus_free), kpi("unhealthy", k.gpus_unhealthy, k.gpus_unhealthy ? "bad" : ""),
    tile("mean utilisation", fmt.pct(k.mean_utilization), "", notes.mean_utilization),
    kpi("power", k.power_kw === null ? "–" : k.power_kw.toFixed(1) + " kW"),
    kpi("jobs running", k.jobs_running), kpi("jobs pending", k.jobs_pending),
    kpi("alerts firing", alerts.length ? alerts.map(([s, n]) => `${n} ${s}`).join(", ") : "0", alerts.length ? "bad" : ""),
    kpi("nodes drained", k.nodes_drained, k.nodes_drained ? "warn" : ""), kpi("nodes down", k.nodes_down, k.nodes_down ? "bad" : ""));
}
function colorSelect(id, label, options, selected) {
  return CW.el("select", { id, "aria-label": label, onchange: e => { CW.setParams({ color: e.target.value }); CW.refresh(); } },
    Object.entries(options).map(([c, text]) => CW.el("option", { value: c, selected: c === selected }, text)));
}

function gpuOverview(v) {
  const { el, section } = CW;
  const color = colorSelect("color", "colour the heatmap by",
    Object.fromEntries(["util", "memory", "temperature", "power", "errors"].map(c => [c, c])), v.heatmap.color_by);
  const racks = v.racks.map(g => el("div", { class: "rack" }, el("div", { class: "rackname" }, g.rack),
    el("div", { class: "cells" }, g.nodes.map((n, i) => {
      const status = v.status_codes[g.status[i]];
      return el("a", { href: "/nodes/" + encodeURIComponent(n) + location.search, class: "cell s-" + status,
        title: `${n}: ${STATUS_LABEL[status]}${g.unhealthy_gpus[i] ? `, ${g.unhealthy_gpus[i]} unhealthy GPU(s)` : ""}` }, "");
    }))));
  const legend = el("div", { class: "legend" }, Object.entries(STATUS_LABEL).map(([s, l]) => el("span", {}, el("i", { class: "cell s-" + s }), l)));
  return [kpiTiles(v), section("GPUs by node", el("label", {}, "Colour by ", color), el("div", { id: "heatmap" })),
    section("Nodes by rack", legend, el("div", { id: "racks" }, racks))];
}

// --- the overview at scale: node cells ---
function nodeStyle(n, g, i, v) {
  if (n.color_by === "status") return { cls: "s-" + v.status_codes[g.status[i]], bg: "" };
  const x = g.value[i];
  if (x === null) return { cls: "nodata", bg: "" };
  const span = (n.zmax ?? x) - (n.zmin ?? x);
  return { cls: "", bg: viridis(span > 0 ? (x - n.zmin) / span : 0.5) };
}
function nodeTitle(n, g, i, v) {
  const status = STATUS_LABEL[v.status_codes[g.status[i]]], u = g.unhealthy_gpus[i];
  const value = n.color_by === "status" ? "" : `: ${g.value[i] ?? "no data"}${g.value[i] === null ? "" : " " + n.unit}`;
  return `${g.nodes[i]}${value} (${status}, ${g.gpus[i]} GPUs${u ? `, ${u} unhealthy` : ""})`;
}
// 16,384 cells: built without the el() helper's per-attribute work.
function nodeCell(n, g, i, v, cls) {
  const cell = document.createElement("i"), s = nodeStyle(n, g, i, v);
  cell.className = cls + (s.cls ? " " + s.cls : "");
  if (s.bg) cell.style.background = s.bg;
  cell.title = nodeTitle(n, g, i, v);
  cell.dataset.node = g.nodes[i];
  return cell;
}
function nodeLegend(n, v) {
  const { el } = CW;
  if (n.color_by === "status")
    return el("div", { class: "legend" }, Object.entries(STATUS_LABEL).map(([s, l]) => el("span", {}, el("i", { class: "cell s-" + s }), l)));
  return el("div", { class: "legend" }, el("span", {}, `${n.zmin ?? "–"} ${n.unit}`),
    el("span", { class: "grad", style: `background: linear-gradient(to right, ${VIRIDIS.map(c => `rgb(${c})`).join(", ")})` }),
    el("span", {}, `${n.zmax ?? "–"} ${n.unit}`), el("span", {}, el("i", { class: "cell nodata" }), "no data"));
}
function nodeMap(n, v) {
  const map = CW.el("div", { id: "nodemap", class: "nodemap" });
  const selected = CW.params().get("rack");
  let partition = null;
  const frag = document.createDocumentFragment();
  for (const g of n.racks) {
    if (g.partition !== partition && n.racks.some(r => r.partition)) {
      partition = g.partition;
      frag.append(CW.el("h3", { class: "partition" }, partition ? "partition " + partition : "no partition"));
    }
    const cells = document.createElement("div");
    cells.className = "ncells";
    for (let i = 0; i < g.nodes.length; i++) cells.append(nodeCell(n, g, i, v, "ncell"));
    const block = CW.el("div", { class: "rackblock" + (g.rack === selected ? " selected" : ""), "data-rack": g.rack,
      role: "button", tabindex: "0", title: `${g.rack}: ${g.nodes.length} nodes (click for its nodes)` },
      CW.el("div", { class: "rackname" }, g.rack), cells);
    frag.append(block);
  }
  map.append(frag);
  const open = e => { const b = e.target.closest(".rackblock"); if (b) { CW.setParams({ rack: b.dataset.rack, node: null }); CW.rerender(); } };
  map.addEventListener("click", open);
  map.addEventListener("keydown", e => { if (e.key === "Enter") open(e); });
  return map;
}
function rackPanel(n, v, rack) {
  const { el, section } = CW, g = n.racks.find(r => r.rack === rack);
  if (!g) return section(`Rack ${rack}`, el("p", {}, "no such rack in this view"));
  const cells = el("div", { class: "rackcells", id: "rack-nodes" },
    g.nodes.map((_, i) => { const c = nodeCell(n, g, i, v, "bigcell"); c.append(g.nodes[i]); return c; }));
  cells.addEventListener("click", e => { const c = e.target.closest("[data-node]"); if (c) { CW.setParams({ node: c.dataset.node }); CW.rerender(); } });
  const rows = g.nodes.map((name, i) => ({ name, status: STATUS_LABEL[v.status_codes[g.status[i]]], value: g.value[i],
    gpus: g.gpus[i], unhealthy: g.unhealthy_gpus[i] }));
  const value = n.color_by === "status" ? [] : [{ key: "value", label: `${NODE_COLORS[n.color_by]} (${n.unit})`, cls: "num" }];
  const table = CW.table("rack-table", [
    { key: "name", label: "node", render: r => el("a", { href: "/nodes/" + encodeURIComponent(r.name) + location.search }, r.name) },
    { key: "status", label: "status" }, ...value,
    { key: "gpus", label: "GPUs", cls: "num" }, { key: "unhealthy", label: "unhealthy GPUs", cls: "num" }], rows);
  return section(`Rack ${rack}${g.partition ? ` (partition ${g.partition})` : ""}: ${g.nodes.length} nodes`,
    el("button", { type: "button", onclick: () => { CW.setParams({ rack: null, node: null }); CW.rerender(); } }, "close"),
    cells, table);
}
function nodePanel(node) {
  const { el, section, fmt } = CW;
  const box = el("div", { id: "node-gpus" }, "loading…");
  fetch(`/api/overview/gpus/${encodeURIComponent(node)}${location.search}`, { headers: { Accept: "application/json" } })
    .then(async r => { const body = await r.json(); if (!r.ok) throw new Error(body.detail || r.statusText); return body; })
    .then(m => {
      const cells = el("div", { class: "rackcells" }, m.gpus.map(g => el("span", { class: "bigcell" + (g.unhealthy ? " s-fault" : g.utilization === null ? " nodata" : ""),
        style: g.unhealthy || g.utilization === null ? null : `background: ${viridis(g.utilization)}`,
        title: `GPU ${g.gpu}: ${fmt.pct(g.utilization)}${g.job_id ? ", job " + g.job_id : ""}${g.unhealthy ? ", unhealthy" : ""}` }, "GPU " + g.gpu)));
      const table = CW.table("gpu-table", [{ key: "gpu", label: "GPU", cls: "num" },
        { key: "utilization", label: "utilisation", cls: "num", text: r => fmt.pct(r.utilization) },
        { key: "memory_bytes", label: "memory used", cls: "num", text: r => fmt.bytes(r.memory_bytes) },
        { key: "temperature", label: "°C", cls: "num", text: r => fmt.num(r.temperature) },
        { key: "power_watts", label: "W", cls: "num", text: r => fmt.num(r.power_watts) },
        { key: "job_id", label: "job", render: r => r.job_id ? el("a", { href: "/jobs/" + encodeURIComponent(r.job_id) }, r.job_id) : "–" },
        { key: "unhealthy", label: "health", text: r => r.unhealthy ? "unhealthy" : "ok" }], m.gpus);
      box.replaceChildren(cells, table);
    })
    .catch(e => box.replaceChildren(el("p", { class: "bad" }, "could not load the node's GPUs: " + e.message)));
  return section(`Node ${node}: GPUs`, el("a", { href: "/nodes/" + encodeURIComponent(node) + location.search, id: "node-page" },
    "open the node page →"), box);
}
function nodeOverview(v) {
  const { el, section } = CW, n = v.nodes, p = CW.params();
  const color = colorSelect("color", "colour the nodes by", NODE_COLORS, n.color_by);
  const parts = [kpiTiles(v), section("Nodes by rack", el("label", {}, "Colour by ", color),
    el("p", { class: "note", id: "color-note" }, `${n.description}. Source: ${n.notes.source}.`),
    nodeLegend(n, v), nodeMap(n, v))];
  if (p.get("rack")) parts.push(rackPanel(n, v, p.get("rack")));
  if (p.get("node")) parts.push(nodePanel(p.get("node")));
  return parts;
}

CW.page(v => v.nodes ? nodeOverview(v) : gpuOverview(v));
CW.afterRender = v => {
  const h = v.heatmap;
  if (!h) return;
  // Transposed: nodes across, GPUs down, so 140+ nodes fit a laptop screen's width.
  const z = [], text = [];
  for (let g = 0; g < h.gpus_per_node; g++) {
    z.push(h.z.map(row => row[g] ?? null));
    text.push(h.jobs.map(row => row[g] >= 0 ? "job " + h.job_ids[row[g]] : "no job"));
  }
  const traces = [{ type: "heatmap", z, x: h.nodes, y: [...Array(h.gpus_per_node).keys()].map(g => "GPU " + g), text,
    colorscale: "Viridis", zmin: h.zmin, zmax: h.zmax, xgap: 1, ygap: 1, colorbar: { title: { text: h.unit } },
    hovertemplate: "%{x} %{y}<br>%{z} " + h.unit + "<br>%{text}<extra></extra>" }];
  if (h.unhealthy.length) traces.push({ type: "scatter", mode: "markers", name: "unhealthy", x: h.unhealthy.map(([r]) => h.nodes[r]),
    y: h.unhealthy.map(([, g]) => "GPU " + g), marker: { symbol: "x", color: "#d62728", size: 9, line: { width: 2 } }, hovertemplate: "%{x} %{y}: unhealthy<extra></extra>" });
  const target = document.getElementById("heatmap");
  Plotly.react(target, traces, CW.layout({ height: 120 + 22 * h.gpus_per_node, xaxis: { type: "category", showticklabels: h.nodes.length <= 200 },
    yaxis: { autorange: "reversed" }, showlegend: false, margin: { l: 70, r: 20, t: 10, b: 60 } }), CW.plotConfig);
  target.on("plotly_click", e => { const node = e.points[0].x; location.href = "/nodes/" + encodeURIComponent(node) + location.search; });
};
