// Overview: KPIs, the node x GPU heatmap (compact arrays expanded here) and the rack status grid.
"use strict";
const STATUS_LABEL = { ok: "idle", alloc: "allocated", drain: "drained", fault: "GPU fault", down: "down", unknown: "unknown" };
CW.page(v => {
  const { el, fmt, kpi, section } = CW, k = v.kpis;
  const alerts = Object.entries(k.alerts_firing);
  const kpis = el("div", { class: "kpis", id: "kpis" },
    kpi("GPUs", k.gpus_total), kpi("busy", k.gpus_busy), kpi("idle (allocated)", k.gpus_idle, k.gpus_idle ? "warn" : ""),
    kpi("free", k.gpus_free), kpi("unhealthy", k.gpus_unhealthy, k.gpus_unhealthy ? "bad" : ""),
    kpi("mean utilisation", fmt.pct(k.mean_utilization)), kpi("power", k.power_kw === null ? "–" : k.power_kw.toFixed(1) + " kW"),
    kpi("jobs running", k.jobs_running), kpi("jobs pending", k.jobs_pending),
    kpi("alerts firing", alerts.length ? alerts.map(([s, n]) => `${n} ${s}`).join(", ") : "0", alerts.length ? "bad" : ""),
    kpi("nodes drained", k.nodes_drained, k.nodes_drained ? "warn" : ""), kpi("nodes down", k.nodes_down, k.nodes_down ? "bad" : ""));
  const color = el("select", { id: "color", "aria-label": "colour the heatmap by",
    onchange: e => { CW.setParams({ color: e.target.value }); CW.refresh(); } },
    ["util", "memory", "temperature", "power", "errors"].map(c => el("option", { value: c, selected: c === v.heatmap.color_by }, c)));
  const racks = v.racks.map(g => el("div", { class: "rack" }, el("div", { class: "rackname" }, g.rack),
    el("div", { class: "cells" }, g.nodes.map((n, i) => {
      const status = v.status_codes[g.status[i]];
      return el("a", { href: "/nodes/" + encodeURIComponent(n) + location.search, class: "cell s-" + status,
        title: `${n}: ${STATUS_LABEL[status]}${g.unhealthy_gpus[i] ? `, ${g.unhealthy_gpus[i]} unhealthy GPU(s)` : ""}` }, "");
    }))));
  const legend = el("div", { class: "legend" }, Object.entries(STATUS_LABEL).map(([s, l]) => el("span", {}, el("i", { class: "cell s-" + s }), l)));
  return [kpis, section("GPUs by node", el("label", {}, "Colour by ", color), el("div", { id: "heatmap" })),
    section("Nodes by rack", legend, el("div", { id: "racks" }, racks))];
});
CW.afterRender = v => {
  const h = v.heatmap;
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
