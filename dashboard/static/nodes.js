"use strict";
CW.page(v => {
  const { el, fmt } = CW;
  return CW.table("nodes", [
    { key: "name", label: "node", render: r => el("a", { href: "/nodes/" + encodeURIComponent(r.name) + location.search }, r.name) },
    { key: "rack", label: "rack" }, { key: "status", label: "status", render: r => el("span", { class: "flag s-" + r.status }, r.status) },
    { key: "state", label: "scheduler state", text: r => [r.state, ...r.flags].join("+") }, { key: "reason", label: "reason" },
    { key: "gpus_allocated", label: "GPUs allocated", cls: "num", text: r => `${r.gpus_allocated}/${r.gpus}` },
    { key: "unhealthy_gpus", label: "unhealthy GPUs", cls: "num" },
    { key: "mean_utilization", label: "mean util", cls: "num", text: r => fmt.pct(r.mean_utilization) },
  ], v.nodes);
});
