// Jobs: one sortable, filterable table; flags link the DESIGN definitions to what is shown.
"use strict";
CW.page(v => {
  const { el, fmt } = CW;
  const flags = r => Object.entries(r.flags).map(([f, n]) => el("span", { class: "flag f-" + f, title: `${n} GPU(s)` }, f.replaceAll("_", " ")));
  return CW.table("jobs", [
    // Slurm ids by number, then Kubernetes pods (<namespace>/<pod>) by name.
    { key: "job_id", label: "job", sortValue: r => r.job_id.includes("/") ? "1" + r.job_id : "0" + r.job_id.split("_")[0].padStart(10, "0"), render: r => el("a", { href: "/jobs/" + r.job_id + location.search }, r.job_id) },
    { key: "name", label: "name" }, { key: "user", label: "user" }, { key: "partition", label: "partition" },
    { key: "state", label: "state" },
    { key: "nodes", label: "nodes", sortValue: r => r.nodes.length, text: r => r.nodes.length > 3 ? `${r.nodes.length} nodes` : r.nodes.join(" ") },
    { key: "gpus", label: "GPUs", cls: "num" },
    { key: "run_seconds", label: "run time", cls: "num", text: r => fmt.dur(r.run_seconds) },
    // Both by the job's measure: SM activity (GPM) where every GPU of the job has it, else utilisation.
    { key: "mean_utilization", label: "mean activity", cls: "num", text: r => fmt.pct(r.mean_utilization) },
    { key: "measure", label: "measure", text: r => r.measure === "sm_active" ? "SM activity" : r.measure === "utilization" ? "utilisation" : "" },
    { key: "memory_used_bytes", label: "GPU memory", cls: "num", text: r => fmt.bytes(r.memory_used_bytes) },
    { key: "power_watts", label: "power", cls: "num", text: r => r.power_watts == null ? "–" : `${Math.round(r.power_watts).toLocaleString()} W` },
    { key: "efficiency", label: "efficiency", cls: "num", text: r => fmt.pct(r.efficiency) },
    { key: "flags", label: "flags", sortValue: r => Object.keys(r.flags).length, text: r => Object.keys(r.flags).join(" "), render: flags },
  ], v.jobs, { sort: "job_id" });
});
