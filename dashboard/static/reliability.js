// Reliability page (issue 20): cluster ETTR, GPU-hours lost by cause, interruptions per day by
// root-cause class (stacked), MTBI per 1,000 GPUs, lemon nodes and the jobs that lost time, over
// the range. Every number is the server's (dashboard/goodput.py); `clusterwatch report` prints the same.
"use strict";
(() => {
  // A week is the default review range; the shared picker stops at 7d, so offer 30d here.
  const picker = document.getElementById("range");
  if (![...picker.options].some(o => o.value === "30d")) picker.append(new Option("30d", "30d"));
  if (!CW.params().has("range")) CW.setParams({ range: "7d" });
})();
const COLOURS = { gpu: "#d62728", hbm_ecc: "#9467bd", nvlink: "#ff7f0e", infiniband: "#1f77b4", host: "#8c564b",
  storage: "#e377c2", software: "#2ca02c", unknown: "#7f7f7f" };
const NO_CHECKPOINT = "unknown (no checkpoint signal)";
CW.page(v => {
  const { el, fmt, kpi, section, table } = CW;
  const hours = h => h === null || h === undefined ? NO_CHECKPOINT : h.toFixed(h >= 10 ? 0 : 2);
  const ettr = x => x === null ? "–" : fmt.pct(x);
  const kpis = el("div", { class: "kpis", id: "reliability-kpis" },
    kpi("cluster ETTR (GPU-hour weighted)", (v.ettr_upper_bound ? "≤ " : "") + ettr(v.ettr), v.ettr !== null && v.ettr < 0.9 ? "warn" : ""),
    kpi("GPU-hours owed to jobs", hours(v.wall_gpu_hours)), kpi("productive GPU-hours", hours(v.productive_gpu_hours)),
    kpi("interruptions", v.interruptions_total),
    kpi("MTBI per 1,000 GPUs", v.mtbi_per_1000_gpus_hours === null ? "none in range" : fmt.dur(v.mtbi_per_1000_gpus_hours * 3600)),
    kpi("GPUs in the fleet", v.fleet_gpus),
    kpi("interrupted jobs without a checkpoint signal", v.redone_unknown_jobs, v.redone_unknown_jobs ? "warn" : ""));
  const notes = v.notes.length ? el("ul", { class: "notes" }, v.notes.map(n => el("li", {}, n))) : null;
  const lost = el("table", { id: "lost-by-cause" }, el("tbody", {}, Object.entries(v.causes).map(([cause, title]) =>
    el("tr", {}, el("th", { scope: "row" }, title), el("td", {}, hours(v.lost_gpu_hours[cause]) + " GPU-h"
      + (cause === "redone_work" && v.redone_unknown_jobs ? `, plus unknown for ${v.redone_unknown_jobs} job(s) without a checkpoint signal` : ""))))));
  const lemons = table("lemons", [
    { key: "node", label: "node", render: r => el("a", { href: "/nodes/" + encodeURIComponent(r.node) + location.search }, r.node) },
    { key: "interruptions", label: "interruptions" },
    { key: "classes", label: "by class", text: r => Object.entries(r.classes).map(([c, n]) => `${v.classes[c]} ${n}`).join(", ") },
  ], v.lemons, { sort: "interruptions", desc: true });
  const jobLink = id => el("a", { href: "/jobs/" + encodeURIComponent(id) + location.search }, id);
  const jobs = table("jobs", [
    { key: "job_id", label: "job", render: r => jobLink(r.job_id) },
    { key: "gpus", label: "GPUs", text: r => fmt.num(r.gpus) },
    { key: "ettr", label: "ETTR", text: r => (r.ettr_upper_bound ? "≤ " : "") + ettr(r.ettr) },
    { key: "interruptions", label: "interruptions" },
    ...Object.entries(v.causes).map(([cause, title]) => ({ key: cause, label: title + " (GPU-h)",
      sortValue: r => r.lost_gpu_hours[cause], text: r => hours(r.lost_gpu_hours[cause]) })),
  ], v.jobs, { sort: "interruptions", desc: true });
  const interruptions = table("interruptions", [
    { key: "time", label: "time", text: r => fmt.time(r.time) },
    { key: "job_id", label: "job", render: r => jobLink(r.job_id) },
    { key: "cause", label: "cause", text: r => v.classes[r.cause] || r.cause },
    { key: "evidence", label: "evidence", text: r => r.evidence || "no alert on the job's nodes: unknown" },
    { key: "node", label: "node", text: r => r.node || "–" },
    { key: "state", label: "Slurm state" },
    { key: "redone_seconds", label: "redone work", text: r => r.redone_seconds === null ? NO_CHECKPOINT : fmt.dur(r.redone_seconds) },
  ], v.interruptions, { sort: "time", desc: true });
  return [kpis, notes,
    section("GPU-hours lost by cause", el("div", { id: "lost-chart" }), lost),
    section("Interruptions per day by cause", el("div", { id: "per-day" })),
    section("Lemon nodes", v.lemons.length ? lemons : el("p", {}, "no interruption attributed to a node in the range")),
    section(`Jobs that lost time (${v.jobs.length} of ${v.jobs_total})`, jobs),
    section("Interruptions", interruptions)];
});
CW.afterRender = v => {
  const causes = Object.entries(v.causes);
  Plotly.react("lost-chart", [{ type: "bar", orientation: "h", y: causes.map(([, t]) => t), x: causes.map(([c]) => v.lost_gpu_hours[c]),
    marker: { color: "#2a5d8f" }, hovertemplate: "%{y}: %{x:.2f} GPU-h<extra></extra>" }],
    CW.layout({ height: 240, margin: { l: 280, r: 20, t: 10, b: 40 }, xaxis: { title: { text: "GPU-hours" } } }), CW.plotConfig);
  const days = Object.keys(v.interruptions_by_day);
  const traces = Object.entries(v.classes).map(([cls, title]) => ({ type: "bar", name: title, x: days,
    y: days.map(d => v.interruptions_by_day[d][cls] || 0), marker: { color: COLOURS[cls] } }))
    .filter(t => t.y.some(n => n));
  Plotly.react("per-day", traces, CW.layout({ barmode: "stack", yaxis: { title: { text: "interruptions" }, dtick: 1 },
    xaxis: { type: "category" } }), CW.plotConfig);
};
