// The fabric page and a switch's page (one script: a switch's view model has `ports`). The graph:
// a row of switches per tier (core, spine, leaf), an edge per switch pair coloured by its worst
// cable, host cables summed in a bar under each leaf; SVG, no library. Colours are the recorded
// fabric_link:health (0 healthy, 1 errors, 2 degraded, 3 flapping, 4 down), never computed here;
// their names come with the view model (alerts/fabric_health.py defines them).
"use strict";
let HEALTH = [];
const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, title) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (title) { const t = document.createElementNS(SVGNS, "title"); t.textContent = title; node.append(t); }
  return node;
}
function label(x, y, text) { const t = svg("text", { x, y }); t.textContent = text; return t; }
const switchHref = name => "/fabric/switch/" + encodeURIComponent(name) + location.search;
const healthTag = (code, name) => CW.el("span", { class: "health h" + (code ?? "x") }, name ?? HEALTH[code] ?? "no data");
const rate = v => v === undefined || v === null ? "–" : v >= 10 ? v.toFixed(0) : v >= 0.01 ? v.toFixed(2) : v === 0 ? "0" : v.toExponential(1);
// One end of a cable: a switch (its page), a host's HCA (the node's page when matched), and the port.
function end(name, port, node) {
  const { el } = CW;
  if (node && name.startsWith(node + " "))
    return el("span", { class: "end" }, el("a", { href: "/nodes/" + encodeURIComponent(node) + location.search }, node), name.slice(node.length), ` port ${port}`);
  return el("span", { class: "end" }, el("a", { href: switchHref(name) }, name), ` port ${port}`);
}
function cableEnds(c) {
  return CW.el("span", { class: "cable" }, end(c.switch, c.switch_port), " ↔ ", c.link_type === "host" ? end(c.peer, c.peer_port, c.node) : end(c.peer, c.peer_port));
}
const cableText = c => `${c.switch} port ${c.switch_port} ↔ ${c.peer} port ${c.peer_port}`;
const count = v => Number.isInteger(v) ? String(v) : v.toFixed(1);  // increase() extrapolates: 7.2 downs
function perEnd(values, format = rate) {
  const entries = Object.entries(values || {}).filter(([, v]) => v);
  return entries.length ? entries.map(([e, v]) => `${e} ${format(v)}`).join(", ") : "0";
}
function since(r) { return r.since_before_range ? "before " + CW.fmt.time(r.since) : CW.fmt.time(r.since); }
function impactNodes(i) {
  const { el } = CW;
  if (!i.node_count) return "none";
  const shown = i.nodes.map(n => el("a", { href: "/nodes/" + encodeURIComponent(n) + location.search }, n));
  return el("span", {}, `${i.node_count}: `, shown.flatMap((a, k) => k ? [", ", a] : [a]), i.node_count > i.nodes.length ? " …" : "");
}
function impactJobs(i) {
  const { el } = CW;
  if (!i.job_count) return "none";
  const shown = i.jobs.map(j => el("a", { class: "job", href: "/jobs/" + encodeURIComponent(j.job_id) + location.search, title: `${j.nodes} affected node(s)` }, j.job_id));
  return el("span", {}, shown.flatMap((a, k) => k ? [", ", a] : [a]), i.job_count > i.jobs.length ? ` … (${i.job_count})` : "");
}
const legend = () => CW.el("div", { class: "legend" }, HEALTH.map((h, k) => healthTag(k, h)), healthTag(null, "no data"));

// --- the graph ---
function graph(v) {
  const g = v.graph, width = Math.max(900, (document.getElementById("content")?.clientWidth || 1200) - 20);
  const rows = g.tiers.map(t => ({ tier: t, members: [] }));
  g.switches.forEach((name, i) => rows[g.tier[i]].members.push(i));
  const shown = rows.filter(r => r.members.length);
  const rowGap = 130, top = 30, pos = new Array(g.switches.length);
  const root = svg("svg", { width, height: top + (shown.length - 1) * rowGap + 60, role: "img", "aria-label": "fabric graph" });
  shown.forEach((row, r) => {
    const n = row.members.length, spacing = (width - 80) / n, w = Math.max(1.5, Math.min(48, spacing - 2)), y = top + r * rowGap;
    root.append(label(0, y + 12, row.tier || "other"));
    row.members.forEach((i, k) => { pos[i] = { x: 70 + (k + 0.5) * spacing, y, w }; });
  });
  const edges = svg("g", { class: "edges" });
  const order = g.edge_a.map((_, j) => j).sort((a, b) => g.edge_health[a] - g.edge_health[b]);  // bad drawn last, on top
  for (const j of order) {
    const a = pos[g.edge_a[j]], b = pos[g.edge_b[j]], h = g.edge_health[j];
    const [lo, hi] = a.y > b.y ? [a, b] : [b, a];
    edges.append(svg("line", { x1: lo.x, y1: lo.y, x2: hi.x, y2: hi.y + 16, class: "e" + h, "data-a": g.switches[g.edge_a[j]], "data-b": g.switches[g.edge_b[j]] },
      h ? `${g.switches[g.edge_a[j]]} – ${g.switches[g.edge_b[j]]}: ${HEALTH[h] || h} (${g.edge_links[j]} cable(s))` : null));
  }
  root.append(edges);
  // Healthy switches first, bad ones on top and at least 5 px wide: at 2,048 leaves a switch is
  // under a pixel, and the bad ones are what the page is for.
  const drawOrder = g.switches.map((_, i) => i).sort((a, b) => g.worst[a] - g.worst[b]);
  for (const i of drawOrder) {
    const name = g.switches[i], h = g.worst[i], p = h ? { ...pos[i], w: Math.max(5, pos[i].w) } : pos[i];
    const rect = svg("rect", { x: p.x - p.w / 2, y: p.y, width: p.w, height: 16, rx: 2, class: "sw h" + h, "data-switch": name, tabindex: 0 },
      `${name}: ${g.bad[i] ? g.bad[i] + " bad cable(s), worst " + HEALTH[h] : "all cables healthy"}`);
    rect.addEventListener("click", () => { location.href = switchHref(name); });
    rect.addEventListener("keydown", e => { if (e.key === "Enter") location.href = switchHref(name); });
    root.append(rect);
    if (g.hosts[i]) root.append(svg("rect", { x: p.x - p.w / 2, y: p.y + 22, width: p.w, height: 8, class: "hostbar h" + g.hosts_worst[i], "data-leaf": name },
      `${name}: ${g.hosts[i]} host cable(s), ${g.hosts_bad[i]} bad`));
    if (p.w >= 40) root.append(label(p.x - p.w / 2, p.y + 42, name));
  }
  const note = g.edges === "bad"
    ? `${Object.entries(g.isl_by_tiers).map(([k, n]) => `${n} ${k} cables`).join(", ")}: only the ${g.edge_a.length} switch pairs with a bad cable are drawn${g.edges_omitted ? ` (${g.edges_omitted} cables not drawn)` : ""}.`
    : `${g.edge_a.length} switch pairs, each coloured by its worst cable; under each leaf its host cables, coloured by the worst.`;
  return [legend(), CW.el("p", { class: "note", id: "graph-note" }, note), CW.el("div", { id: "fabric-graph" }, root)];
}

function fabricPage(v) {
  const { el, kpi, section, table } = CW, bad = v.worst_total;
  const kpis = el("div", { class: "kpis", id: "kpis" }, Object.entries(v.switches).map(([t, n]) => kpi(t + " switches", n)),
    kpi("cables", v.links), kpi("bad cables", bad, bad ? "bad" : ""),
    ...HEALTH.slice(1).map(h => kpi(h, v.links_by_health[h] || 0, v.links_by_health[h] ? "bad" : "")),
    kpi("no recorded health", v.links_by_health["no data"] || 0, v.links_by_health["no data"] ? "warn" : ""));
  const worst = bad ? table("worst", [
    { key: "cable", label: "cable (both ends)", text: r => cableText(r.cable), render: r => cableEnds(r.cable) },
    { key: "health", label: "health", sortValue: r => r.state.health, text: r => r.state.health_name, render: r => healthTag(r.state.health, r.state.health_name) },
    { key: "errors", label: "errors/s", cls: "num", sortValue: r => Math.max(0, ...Object.values(r.state.errors_per_second)), text: r => perEnd(r.state.errors_per_second) },
    { key: "downed", label: "link downs (15 min)", cls: "num", sortValue: r => Math.max(0, ...Object.values(r.state.downed_15m)), text: r => perEnd(r.state.downed_15m, count) },
    { key: "end", label: "which end", text: r => r.state.worst_end || "–" },
    { key: "since", label: "bad since", sortValue: r => r.since, text: since },
    { key: "nodes", label: "nodes behind", sortValue: r => r.impact.node_count, text: r => r.impact.nodes.join(" "), render: r => impactNodes(r.impact) },
    { key: "jobs", label: "running jobs", sortValue: r => r.impact.job_count, text: r => r.impact.jobs.map(j => j.job_id).join(" "), render: r => impactJobs(r.impact) },
  ], v.worst_links, { sort: "health", desc: true }) : el("p", { id: "worst" }, "Every cable with recorded health is healthy.");
  const switches = v.bad_switches.length ? table("badswitches", [
    { key: "switch", label: "switch", render: r => el("a", { href: switchHref(r.switch) }, r.switch) }, { key: "tier", label: "tier" },
    { key: "bad_links", label: "bad cables", cls: "num" }, { key: "worst", label: "worst", text: r => r.worst_name, render: r => healthTag(r.worst, r.worst_name) },
  ], v.bad_switches, { sort: "worst", desc: true }) : el("p", {}, "No switch has a bad cable.");
  const more = v.worst_total > v.worst_links.length ? el("p", { class: "note" }, `The ${v.worst_links.length} worst of ${v.worst_total} bad cables.`) : null;
  return [kpis, section("Fabric", ...graph(v)), section("Worst cables", more, worst), section("Switches with bad cables", switches)];
}

function switchPage(v) {
  const { el, kpi, section, table } = CW;
  const kpis = el("div", { class: "kpis", id: "kpis" }, kpi("tier", v.tier || "unknown"), kpi("GUID", v.guid || "–"), kpi("rack", v.rack || "–"),
    kpi("ports cabled", v.ports.length), kpi("bad cables", v.bad_ports, v.bad_ports ? "bad" : ""),
    kpi("nodes under it", v.impact.node_count), kpi("running jobs on them", v.impact.job_count));
  const ports = table("ports", [
    { key: "port", label: "port", sortValue: r => Number(r.port) },
    { key: "direction", label: "to" },
    { key: "other_end", label: "other end", render: r => r.direction === "host" ? end(r.other_end, r.other_port, r.cable.node) : end(r.other_end, r.other_port) },
    { key: "health", label: "health", sortValue: r => r.state.health, text: r => r.state.health_name, render: r => healthTag(r.state.health, r.state.health_name) },
    { key: "errors", label: "errors/s", cls: "num", sortValue: r => Math.max(0, ...Object.values(r.state.errors_per_second)), text: r => perEnd(r.state.errors_per_second) },
    { key: "downed", label: "link downs (15 min)", cls: "num", sortValue: r => Math.max(0, ...Object.values(r.state.downed_15m)), text: r => perEnd(r.state.downed_15m, count) },
    { key: "end", label: "which end", text: r => r.state.worst_end || "–" },
    { key: "since", label: "bad since", sortValue: r => r.since, text: r => r.state.health ? since(r) : "–" },
    { key: "nodes", label: "nodes behind", sortValue: r => r.impact.node_count, text: r => r.impact.nodes.join(" "), render: r => impactNodes(r.impact) },
    { key: "jobs", label: "running jobs", sortValue: r => r.impact.job_count, text: r => r.impact.jobs.map(j => j.job_id).join(" "), render: r => impactJobs(r.impact) },
  ], v.ports, { sort: "port" });
  return [el("p", {}, el("a", { href: "/fabric" + location.search }, "← fabric")), kpis, section("Ports", legend(), ports),
    section("Nodes and jobs under this switch", el("p", { id: "switch-nodes" }, "Nodes: ", impactNodes(v.impact)), el("p", { id: "switch-jobs" }, "Running jobs: ", impactJobs(v.impact)))];
}

CW.page(v => { HEALTH = v.health_names; return v.ports ? switchPage(v) : fabricPage(v); });
