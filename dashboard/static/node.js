// Node page: GPU time series, errors, NVLink/IB, host, jobs, scheduler state, drain/resume.
"use strict";
const SERIES = [["utilization", "GPU utilisation", "%", 100], ["memory_bytes", "GPU memory", "GiB", 1 / 2 ** 30],
  ["temperature_celsius", "temperature", "°C", 1], ["power_watts", "power", "W", 1], ["sm_clock_hertz", "SM clock", "MHz", 1e-6]];
// Survives the re-render that follows an action (the page content is rebuilt from fresh data).
const lastResult = { text: "", cls: "" };
async function act(kind, node) {
  const reason = document.getElementById("reason").value.trim();
  const out = document.getElementById("action-result");
  if (kind === "drain" && !reason) { out.textContent = "a reason is required to drain"; return; }
  if (!confirm(`${kind} ${node}${reason ? " (reason: " + reason + ")" : ""}?`)) return;
  const result = await CW.operatorCall("POST", `/api/nodes/${encodeURIComponent(node)}/${kind}`, { reason });
  lastResult.text = result.ok ? `${kind} done by ${result.body.actor}: ${result.body.message || "ok"}` : `${kind} failed (${result.error})`;
  lastResult.cls = result.ok ? "ok" : "bad";
  out.textContent = lastResult.text; out.className = lastResult.cls;
  CW.refresh();
}
CW.page(v => {
  const { el, fmt, kpi, section } = CW, s = v.scheduler;
  const state = el("div", { class: "kpis", id: "node-state" }, kpi("status", v.status, v.status === "ok" || v.status === "alloc" ? "" : "bad"),
    kpi("scrape", v.up === null ? "not scraped" : v.up ? "up" : "down", v.up === false ? "bad" : ""), kpi("rack", v.rack || "–"),
    kpi("scheduler state", s.state ? [s.state, ...s.flags].join("+") : "unknown", (s.flags || []).includes("DRAIN") ? "warn" : ""),
    kpi("reason", s.reason ? `${s.reason}${s.reason_set_by ? " (" + s.reason_set_by + ")" : ""}` : "–"),
    kpi("GPUs allocated", s.gpus !== undefined ? `${s.gpus_allocated}/${s.gpus}` : "–"),
    kpi("unhealthy GPUs", v.unhealthy_gpus.length ? v.unhealthy_gpus.join(", ") : "none", v.unhealthy_gpus.length ? "bad" : ""));
  const actions = el("form", { id: "actions", onsubmit: e => e.preventDefault() },
    el("label", {}, "Reason ", el("input", { id: "reason", maxlength: 128, size: 40, placeholder: "why (required to drain)" })),
    CW.tokenInput(),
    el("button", { type: "button", id: "drain", onclick: () => act("drain", v.name) }, "Drain"),
    el("button", { type: "button", id: "resume", onclick: () => act("resume", v.name) }, "Resume"),
    el("span", { id: "action-result", "aria-live": "polite", class: lastResult.cls || null }, lastResult.text));
  const events = v.events.length ? CW.table("events", [{ key: "gpu", label: "GPU" }, { key: "kind", label: "kind" }, { key: "detail", label: "detail" },
    { key: "count", label: "count", cls: "num" }, { key: "first_seen", label: "first seen in range", text: r => fmt.time(r.first_seen) }], v.events)
    : el("p", {}, "No XID, ECC or row-remap events.");
  const nvlink = CW.table("nvlink", [{ key: "gpu", label: "GPU" }, { key: "active", label: "links active", text: r => `${r.active ?? "–"}/${r.links ?? "–"}` },
    ...["replay", "recovery", "crc_flit", "crc_data"].map(t => ({ key: t, label: t, cls: "num", sortValue: r => r.errors[t], text: r => r.errors[t] ?? "–" }))], v.nvlink);
  const counters = [...new Set(v.ib_ports.flatMap(p => Object.keys(p.counters)))].sort();
  const ib = CW.table("ib", [{ key: "device", label: "device" }, { key: "port", label: "port" },
    { key: "state", label: "state", text: r => r.state === 4 ? "active" : r.state === null ? "–" : "down (" + r.state + ")" },
    { key: "rate_bytes_per_second", label: "rate", text: r => r.rate_bytes_per_second ? (r.rate_bytes_per_second * 8 / 1e9).toFixed(0) + " Gb/s" : "–" },
    ...counters.map(c => ({ key: c, label: c.replace(/_total$/, "").replaceAll("_", " "), cls: "num", sortValue: r => r.counters[c], text: r => r.counters[c] ?? "–" }))], v.ib_ports);
  const cables = v.fabric_links.length ? CW.table("cables", [{ key: "hca", label: "HCA" }, { key: "peer_port", label: "HCA port" },
    { key: "switch", label: "switch", render: r => el("a", { href: "/fabric/switch/" + encodeURIComponent(r.switch) + location.search }, r.switch) },
    { key: "switch_port", label: "switch port" },
    { key: "health", label: "health", text: r => r.health_name, render: r => el("span", { class: "health h" + (r.health ?? "x") }, r.health_name) }], v.fabric_links)
    : el("p", {}, "No fabric cables matched to this node (fabric_link_info{node}).");
  const fs = CW.table("fs", [{ key: "mountpoint", label: "mount" }, { key: "fstype", label: "type" },
    { key: "size_bytes", label: "size", text: r => fmt.bytes(r.size_bytes) }, { key: "avail_bytes", label: "free", text: r => fmt.bytes(r.avail_bytes) }], v.filesystems);
  const jobs = v.jobs.length ? el("ul", {}, v.jobs.map(j => el("li", {}, el("a", { href: "/jobs/" + j.job_id + location.search }, "job " + j.job_id),
    ` ${j.name || ""} ${j.user ? "(" + j.user + ")" : ""} on GPUs ${j.gpus.join(", ")}`))) : el("p", {}, "No jobs running.");
  const audit = v.actions.length ? el("ul", { id: "audit" }, v.actions.map(a => el("li", {}, `${fmt.time(a.time)} ${a.action} ${a.phase} by ${a.actor}${a.reason ? " — " + a.reason : ""}${a.detail ? " (" + a.detail + ")" : ""}`)))
    : el("p", { id: "audit" }, "No actions recorded by this server.");
  return [state, section("Operator actions", actions, audit),
    section("GPUs", el("div", { class: "grid2" }, SERIES.map(([k]) => el("div", { id: "g-" + k })))),
    v.throttle && Object.keys(v.throttle).length ? el("p", {}, "Clock events active: " + Object.entries(v.throttle).map(([g, r]) => `GPU ${g}: ${r.join(", ")}`).join("; ")) : null,
    section("XID / ECC / row remap history", events), section("NVLink", nvlink), section("InfiniBand ports", ib), section("Fabric cables", cables),
    section("Host", el("div", { id: "host" }), fs), section("Jobs on this node", jobs)];
});
CW.afterRender = v => {
  const x = CW.times(v.timestamps);
  for (const [key, title, unit, scale] of SERIES) {
    const traces = Object.entries(v.gpu_series[key] || {}).map(([g, ys]) => ({ type: "scatter", mode: "lines", name: "GPU " + g, x,
      y: ys.map(y => y === null ? null : y * scale), line: { width: v.unhealthy_gpus.includes(Number(g)) ? 3 : 1.5 } }));
    Plotly.react("g-" + key, traces, CW.layout({ title: { text: title, font: { size: 13 } }, yaxis: { title: { text: unit } }, height: 240 }), CW.plotConfig);
  }
  Plotly.react("host", Object.entries(v.host_series).map(([k, ys]) => ({ type: "scatter", mode: "lines", name: k.replace("_", " "), x, y: ys.map(y => y === null ? null : y * 100) })),
    CW.layout({ yaxis: { title: { text: "%" }, range: [0, 100] }, height: 220 }), CW.plotConfig);
};
