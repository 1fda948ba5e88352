// Job page: efficiency summary (jobstats-like), per-GPU lines and a GPU x time heatmap,
// memory and power, stragglers highlighted, its nodes.
"use strict";
CW.page(v => {
  const { el, fmt, kpi, section } = CW, e = v.efficiency, j = v.job;
  const summary = el("div", { class: "kpis", id: "efficiency" },
    kpi("state", j.state), j.pod ? kpi("namespace / pod", `${j.namespace} / ${j.pod}`) : kpi("user / account", `${j.user} / ${j.account}`),
    kpi("GPUs", j.gpus),
    // Named by its measure (SM activity where every GPU has GPM, else utilisation), whose threshold the server applied.
    kpi(`GPU efficiency (${e.measure_title})`, fmt.pct(e.gpu_efficiency), e.low ? "bad" : ""),
    kpi("GPU-hours observed", e.gpu_hours.toFixed(2)),
    kpi("memory peak", `${fmt.bytes(e.memory_peak_bytes)} of ${fmt.bytes(e.memory_total_bytes)}`),
    kpi("time used / limit", `${fmt.dur(e.run_seconds)} / ${fmt.dur(e.time_limit_seconds)}`, e.time_used_ratio > 0.9 ? "warn" : ""),
    kpi("flags", Object.keys(v.flags).join(", ") || "none", Object.keys(v.flags).length ? "warn" : ""));
  const notes = e.notes.length ? el("ul", { class: "notes" }, e.notes.map(n => el("li", {}, n))) : null;
  const stragglers = v.gpus.filter(g => g.straggler).map(g => `${g.node} GPU ${g.gpu}`);
  const nodes = el("ul", { class: "inline" }, j.nodes.map(n => el("li", {}, el("a", { href: "/nodes/" + encodeURIComponent(n) + location.search }, n))));
  return [summary, notes, stragglers.length ? el("p", { class: "bad" }, "Stragglers: " + stragglers.join(", ")) : null,
    section("GPU utilisation", el("div", { id: "util-lines" }), el("div", { id: "util-heat" })),
    section("GPU memory", el("div", { id: "memory" })), section("GPU power", el("div", { id: "power" })),
    section("Alerts and automation", el("div", { id: "timeline" }), el("ul", { id: "events", class: "notes" },
      v.alerts.length ? [] : el("li", {}, "no alert fired on the job's nodes in the range"),
      v.alerts.map(a => el("li", {}, el("span", { class: "sev sev-" + a.severity }, a.severity || "–"), ` ${a.alertname} on ${a.instance}`
        + (a.gpu === null ? "" : ` GPU ${a.gpu}`) + `: ${fmt.time(a.start)} – ${fmt.time(a.end)}`)))),
    section("Continuity", el("div", { id: "continuity" })),  // filled by job_continuity.js
    section("Nodes", nodes)];
});
// Automation decisions about the job or its nodes, from the remediation engine's audit log (absent
// when serve runs without --automation).
async function automationEvents(v) {
  if (!v.automation) return [];
  try {
    const response = await fetch(`/api/automation/audit?since=${v.start}`, { headers: { Accept: "application/json" } });
    if (!response.ok) return [];
    const nodes = new Set(v.job.nodes);
    return (await response.json()).filter(e => e.job_id === v.job.job_id || nodes.has(e.node));
  } catch (e) { return []; }
}
async function drawTimeline(v) {
  const { el, fmt } = CW, events = await automationEvents(v);
  const list = document.getElementById("events");
  if (!list) return;
  for (const e of events) list.append(el("li", {}, el("span", { class: "state" }, "automation"), ` ${fmt.time(e.time)}: ${e.action} on ${e.node || "–"} (${e.mode}, ${e.result}) for ${e.alert}`));
  if (!v.alerts.length && !events.length) return;
  const row = a => `${a.alertname} ${a.instance}` + (a.gpu === null ? "" : `/${a.gpu}`);
  const spans = v.alerts.map(a => ({ type: "scatter", mode: "lines+markers", x: [new Date(a.start * 1000), new Date(a.end * 1000)], y: [row(a), row(a)],
    line: { width: 8, color: a.severity === "critical" ? "#d62728" : "#fdae61" }, name: a.alertname, showlegend: false,
    hovertemplate: `${row(a)}<br>${fmt.time(a.start)} – ${fmt.time(a.end)}<extra></extra>` }));
  if (events.length) spans.push({ type: "scatter", mode: "markers", name: "automation", x: events.map(e => new Date(e.time * 1000)),
    y: events.map(e => `automation ${e.node || ""}`), text: events.map(e => `${e.action} (${e.mode}): ${e.result}`),
    marker: { symbol: "diamond", size: 10, color: "#2a5d8f" }, hovertemplate: "%{x}<br>%{text}<extra></extra>" });
  Plotly.react("timeline", spans, CW.layout({ height: 120 + 22 * new Set(spans.flatMap(t => t.y)).size, margin: { l: 220, r: 20, t: 10, b: 40 },
    xaxis: { range: [new Date(v.start * 1000), new Date(v.end * 1000)] }, yaxis: { type: "category" } }), CW.plotConfig);
}
CW.afterRender = v => {
  const x = CW.times(v.timestamps), label = g => `${g.node}/${g.gpu}`;
  // Every GPU's line up to the server's detail limit; above it, the min/median/max band across
  // the job's GPUs with the stragglers' own lines on top (512 lines read as one blur; the heatmap
  // shows every GPU).
  const lines = (field, scale) => v.gpus.filter(g => g[field].length && (v.per_gpu_detail || g.straggler)).map(g => ({ type: "scatter", mode: "lines", name: label(g) + (g.straggler ? " (straggler)" : ""), x,
    y: g[field].map(y => y === null ? null : y * scale), line: { width: g.straggler ? 3 : 1, color: g.straggler ? "#d62728" : undefined },
    showlegend: v.gpus.length <= 16 || g.straggler }));
  const band = (field, scale) => {
    const b = v.bands[field], s = a => a.map(y => y === null ? null : y * scale);
    return [{ type: "scatter", mode: "lines", name: "min", x, y: s(b.min), line: { width: 0 }, hoverinfo: "skip", showlegend: false },
      { type: "scatter", mode: "lines", name: "min – max of the job's GPUs", x, y: s(b.max), fill: "tonexty", fillcolor: "rgba(42,93,143,0.2)", line: { width: 0 } },
      { type: "scatter", mode: "lines", name: "median GPU", x, y: s(b.median), line: { width: 2, color: "#2a5d8f" } }];
  };
  const chart = (field, scale) => v.per_gpu_detail ? lines(field, scale) : band(field, scale).concat(lines(field, scale));
  Plotly.react("util-lines", chart("utilization", 100), CW.layout({ yaxis: { title: { text: "%" }, range: [0, 105] }, legend: { orientation: "h", y: -0.3 } }), CW.plotConfig);
  Plotly.react("util-heat", [{ type: "heatmap", x, y: v.gpus.map(label), z: v.gpus.map(g => g.utilization.map(u => u === null ? null : u * 100)),
    colorscale: "Viridis", zmin: 0, zmax: 100, colorbar: { title: { text: "%" } } }],
    CW.layout({ height: Math.min(900, 120 + 14 * v.gpus.length), margin: { l: 110, r: 20, t: 10, b: 40 }, yaxis: { type: "category", autorange: "reversed" } }), CW.plotConfig);
  Plotly.react("memory", chart("memory_bytes", 1 / 2 ** 30), CW.layout({ yaxis: { title: { text: "GiB" } }, legend: { orientation: "h", y: -0.3 } }), CW.plotConfig);
  Plotly.react("power", chart("power_watts", 1), CW.layout({ yaxis: { title: { text: "W" } }, legend: { orientation: "h", y: -0.3 } }), CW.plotConfig);
  drawTimeline(v);
  if (window.CWContinuity) window.CWContinuity.draw();
};
