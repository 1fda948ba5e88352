"use strict";
CW.page(v => {
  const { el, fmt } = CW;
  return [el("p", {}, `GPU-hours from ${fmt.time(v.start)} to ${fmt.time(v.end)} (sampled every ${v.step_seconds} s). Wasted: allocated while below 1% utilisation.`),
    CW.table("users", [
      { key: "user", label: "user" }, { key: "account", label: "account" }, { key: "jobs", label: "jobs", cls: "num" },
      { key: "gpu_hours", label: "GPU-hours used", cls: "num", text: r => r.gpu_hours.toFixed(2) },
      { key: "gpu_hours_wasted", label: "GPU-hours wasted", cls: "num", text: r => r.gpu_hours_wasted.toFixed(2) },
      { key: "wasted_ratio", label: "wasted", cls: "num", text: r => fmt.pct(r.wasted_ratio) },
    ], v.users, { sort: "gpu_hours" })];
});
