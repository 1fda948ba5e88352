// The job page's Continuity section (issue 20): the job's ETTR over the page's range, its time lost
// by cause and its interruptions with their cause, from /api/jobs/{id}/continuity: the same
// definitions (dashboard/goodput.py) and rows as /reliability and `clusterwatch report`.
// job.js leaves an empty #continuity section and calls draw() after each render.
"use strict";
window.CWContinuity = (() => {
  let last = null, inflight = false;
  const NO_CHECKPOINT = "unknown (no checkpoint signal)";
  function render(c) {
    const { el, fmt, kpi } = CW;
    if (c.error) return el("p", { class: "bad" }, "continuity: " + c.error);
    // No cause is accounted (a Kubernetes pod): only the notes that say why.
    if (!Object.keys(c.causes).length) return el("ul", { class: "notes" }, c.notes.map(n => el("li", {}, n)));
    const a = c.account;
    const ettr = a && a.ettr !== null ? (a.ettr_upper_bound ? "≤ " : "") + fmt.pct(a.ettr) : "–";
    const lost = Object.entries(c.causes).map(([cause, title]) => kpi("lost: " + title,
      c.lost_seconds[cause] === null ? NO_CHECKPOINT : fmt.dur(c.lost_seconds[cause]), c.lost_seconds[cause] ? "warn" : ""));
    const kpis = el("div", { class: "kpis", id: "continuity-kpis" },
      kpi("ETTR (effective training time ratio)", ettr, a && a.ettr !== null && a.ettr < 0.9 ? "warn" : ""),
      kpi("wall time in range", fmt.dur(c.wall_seconds)), kpi("interruptions", c.interruptions.length), ...lost);
    const rows = c.interruptions.map(i => el("li", {}, `#${i.ordinal} ${fmt.time(i.time)} (${i.state}): `,
      el("strong", {}, c.classes[i.cause] || i.cause), i.evidence ? ` – ${i.evidence}` : " – no alert on its nodes explains it",
      `; redone since the last checkpoint: ${i.redone_seconds === null ? NO_CHECKPOINT : fmt.dur(i.redone_seconds)}`));
    return el("div", {}, kpis, el("ul", { class: "notes", id: "continuity-interruptions" },
      rows.length ? rows : el("li", {}, "no interruption in the range")),
      c.notes.length ? el("ul", { class: "notes" }, c.notes.map(n => el("li", {}, n))) : null);
  }
  function paint() {
    const box = document.getElementById("continuity");
    if (box && last) box.replaceChildren(render(last));
  }
  async function draw() {
    paint();  // the last answer at once: the page rebuilds its content on every refresh
    if (inflight) return;
    inflight = true;
    try {
      const response = await fetch(document.body.dataset.api + "/continuity" + location.search, { headers: { Accept: "application/json" } });
      const body = await response.json();
      last = response.ok ? body : { error: body.detail ? JSON.stringify(body.detail) : response.statusText };
    } catch (e) { last = { error: e.message }; }
    finally { inflight = false; }
    paint();
  }
  draw();
  return { draw };
})();
