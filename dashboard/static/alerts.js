// Alerts: firing (with silence/inhibition/acknowledgement), pending, silences, history; silence,
// acknowledge and expire through the alerting API's own authenticated routes.
"use strict";
const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };
const NAME_KEY = "cw-operator-name";
// Pre-selected matchers for a silence made from an alert: what identifies the failing thing, not
// volatile labels (a GPU's uuid changes with a swap) or ones a re-labelling rule might change.
const IDENTIFYING = ["alertname", "instance", "gpu", "device", "port", "job_id"];
// Survives the re-render that follows an action (the page content is rebuilt from fresh data).
const lastResult = { text: "", cls: "" };

// The action form lives in a <dialog> outside #content, so a live refresh never wipes what the
// operator is typing.
const dialog = (() => {
  const { el } = CW;
  const title = el("h2", { id: "act-title" }), fields = el("div", { id: "act-fields" });
  const submit = el("button", { type: "submit", id: "act-submit" }, "OK");
  const node = el("dialog", { id: "act-dialog", "aria-labelledby": "act-title" },
    el("form", { method: "dialog", id: "act-form" }, title, fields,
      el("p", {}, CW.tokenInput()),
      el("p", { class: "buttons" }, el("button", { type: "button", id: "act-cancel", onclick: () => node.close() }, "Cancel"), submit)));
  let onSubmit = null;
  node.querySelector("form").addEventListener("submit", async e => {
    e.preventDefault();
    if (!onSubmit || !e.target.reportValidity()) return;
    const done = await onSubmit();
    if (done) node.close();
  });
  document.addEventListener("DOMContentLoaded", () => document.body.append(node));
  return {
    open(heading, label, children, fn) {
      title.textContent = heading; submit.textContent = label;
      fields.replaceChildren(...children);
      onSubmit = fn;
      node.showModal();
    },
  };
})();

function report(text, ok) {
  lastResult.text = text; lastResult.cls = ok ? "ok" : "bad";
  const out = document.getElementById("action-result");
  if (out) { out.textContent = text; out.className = lastResult.cls; }
}

async function call(what, method, url, body) {
  const result = await CW.operatorCall(method, url, body);
  report(result.ok ? `${what}: done` : `${what} failed (${result.error})`, result.ok);
  if (result.ok) CW.refresh();
  return result.ok;
}

function silenceForm(alert) {
  const { el } = CW;
  const labels = Object.entries(alert.labels).sort();
  const identifying = labels.some(([k]) => IDENTIFYING.includes(k));
  const boxes = labels.map(([k, v]) => el("label", { class: "matcher" },
    el("input", { type: "checkbox", name: "m", value: k, checked: !identifying || IDENTIFYING.includes(k) }), ` ${k}="${v}"`));
  const fields = [el("p", {}, alert.annotations.summary || alert.labels.alertname),
    el("fieldset", {}, el("legend", {}, "Silence alerts with these labels"), boxes),
    el("p", {}, el("label", {}, "Duration ", el("input", { id: "sil-duration", value: "2h", size: 6, required: true, pattern: "[0-9]+[smhdw]([0-9]+[smhdw])*" }))),
    el("p", {}, el("label", {}, "Comment ", el("input", { id: "sil-comment", size: 48, required: true, maxlength: 2000, placeholder: "why (required)" }))),
    el("p", {}, el("label", {}, "Your name ", el("input", { id: "sil-by", size: 20, required: true, maxlength: 200, value: localStorage.getItem(NAME_KEY) || "" })))];
  dialog.open(`Silence ${alert.labels.alertname}`, "Create silence", fields, async () => {
    const chosen = [...document.querySelectorAll("#act-fields input[name=m]:checked")].map(b => b.value);
    if (!chosen.length) { report("choose at least one label to silence on", false); return false; }
    const duration = document.getElementById("sil-duration").value.trim(), comment = document.getElementById("sil-comment").value.trim();
    const by = document.getElementById("sil-by").value.trim();
    localStorage.setItem(NAME_KEY, by);
    const matchers = chosen.map(k => ({ name: k, value: alert.labels[k], isRegex: false, isEqual: true }));
    if (!confirm(`Silence ${chosen.map(k => `${k}="${alert.labels[k]}"`).join(", ")} for ${duration}?`)) return false;
    return call("silence", "POST", "/api/silences", { matchers, duration, comment, createdBy: by });
  });
}

function ackForm(alert) {
  const { el } = CW;
  dialog.open(`Acknowledge ${alert.labels.alertname}`, "Acknowledge", [el("p", {}, alert.annotations.summary || ""),
    el("p", {}, el("label", {}, "Comment ", el("input", { id: "ack-comment", size: 48, required: true, maxlength: 2000, placeholder: "who is on it, what next" })))],
  async () => {
    if (!confirm(`Acknowledge ${alert.labels.alertname} on ${alert.labels.instance || "the cluster"}?`)) return false;
    return call("acknowledge", "POST", `/api/alerts/${encodeURIComponent(alert.fingerprint)}/ack`,
      { comment: document.getElementById("ack-comment").value.trim() });
  });
}

function expireForm(silence) {
  const { el } = CW;
  dialog.open("Expire silence", "Expire", [el("p", {}, `${silence.id}: ${matcherText(silence.matchers)} — ${silence.comment}`)], async () => {
    if (!confirm(`Expire silence ${silence.id}?`)) return false;
    return call("expire silence", "DELETE", `/api/silences/${encodeURIComponent(silence.id)}`);
  });
}

function matcherText(matchers) {
  return matchers.map(m => `${m.name}${m.isEqual ? "" : "!"}${m.isRegex ? "=~" : "="}"${m.value}"`).join(", ");
}

function filterBar(v) {
  const { el } = CW;
  const select = (name, values) => el("label", {}, name + " ", el("select", { id: "f-" + name,
    onchange: e => { CW.setParams({ [name]: e.target.value }); CW.refresh(); } },
    el("option", { value: "" }, "all"),
    [...new Set([...values, ...(v.filters[name] ? [v.filters[name]] : [])])].map(x => el("option", { value: x, selected: x === v.filters[name] }, x))));
  return el("div", { class: "tablebar", id: "filters" }, select("severity", v.choices.severity), select("alertname", v.choices.alertname),
    el("label", {}, "instance (regex) ", el("input", { id: "f-instance", value: v.filters.instance || "", size: 16, list: "instances",
      onchange: e => { CW.setParams({ instance: e.target.value }); CW.refresh(); } })),
    el("datalist", { id: "instances" }, v.choices.instance.map(i => el("option", { value: i }))));
}

CW.page(v => {
  const { el, fmt, kpi, section } = CW, c = v.counts;
  const bySeverity = Object.entries(v.firing_by_severity).sort(([a], [b]) => (SEVERITY_ORDER[a] ?? 9) - (SEVERITY_ORDER[b] ?? 9));
  const kpis = el("div", { class: "kpis", id: "alert-kpis" },
    kpi("firing", bySeverity.length ? bySeverity.map(([s, n]) => `${n} ${s}`).join(", ") : "0", bySeverity.length ? "bad" : ""),
    kpi("pending", c.pending || 0, c.pending ? "warn" : ""), kpi("acknowledged", c.acknowledged || 0),
    kpi("silenced", c.silenced || 0), kpi("inhibited", c.inhibited || 0),
    kpi("active silences", v.silences.filter(s => s.state === "active").length));
  const result = el("p", { id: "action-result", "aria-live": "polite", class: lastResult.cls || null }, lastResult.text);
  const node = a => a.labels.instance ? el("a", { href: "/nodes/" + encodeURIComponent(a.labels.instance) + location.search }, a.labels.instance) : "–";
  const columns = [
    { key: "severity", label: "severity", sortValue: r => SEVERITY_ORDER[r.labels.severity] ?? 9, render: r => el("span", { class: "sev sev-" + (r.labels.severity || "none") }, r.labels.severity || "–") },
    { key: "alertname", label: "alert", sortValue: r => r.labels.alertname, text: r => r.labels.alertname },
    { key: "instance", label: "instance", sortValue: r => r.labels.instance, text: r => r.labels.instance || "", render: node },
    { key: "gpu", label: "GPU", sortValue: r => Number(r.labels.gpu ?? -1), text: r => r.labels.gpu ?? "" },
    { key: "summary", label: "summary", cls: "wrap", sortValue: r => r.annotations.summary, text: r => r.annotations.summary || "" },
    { key: "state", label: "state", render: r => el("span", { class: "state st-" + r.state,
      title: r.acknowledged ? `acknowledged by ${r.acknowledged.by}: ${r.acknowledged.comment}` : r.silencedBy.length ? "silenced by " + r.silencedBy.join(", ") : r.inhibitedBy.length ? "inhibited by " + r.inhibitedBy.join(", ") : null }, r.state) },
    { key: "startsAt", label: "since", text: r => fmt.iso(r.startsAt) },
    { key: "actions", label: "", sortValue: () => 0, text: () => "", render: r => el("span", { class: "row-actions" },
      el("button", { type: "button", class: "silence", onclick: () => silenceForm(r) }, "Silence"),
      r.state === "firing" ? el("button", { type: "button", class: "ack", onclick: () => ackForm(r) }, "Ack") : null) },
  ];
  const firingRows = v.alerts.filter(a => a.state === "firing" || a.state === "acknowledged");
  const mutedRows = v.alerts.filter(a => a.state === "silenced" || a.state === "inhibited");
  const firing = firingRows.length ? CW.table("firing", columns, firingRows, { sort: "severity" })
    : el("p", { id: "firing" }, v.connected ? "Nothing firing." : "The notification pipeline is not connected to this dashboard.");
  // Why each muted alert is held, in words: the silence's author and comment (ClusterWatch's own,
  // during a reboot it issued, names the case), or the alerts inhibiting it.
  const silenceById = Object.fromEntries(v.silences.map(s => [s.id, s]));
  const alertByFp = Object.fromEntries(v.alerts.map(a => [a.fingerprint, a]));
  const why = r => r.silencedBy.length
    ? r.silencedBy.map(id => silenceById[id] ? `${silenceById[id].createdBy}: ${silenceById[id].comment}` : `silence ${id.slice(0, 8)}`).join("; ")
    : "inhibited by " + r.inhibitedBy.map(fp => alertByFp[fp] ? `${alertByFp[fp].labels.alertname} on ${alertByFp[fp].labels.instance || "?"}` : fp.slice(0, 8)).join(", ");
  const mutedColumns = [...columns.slice(0, 6), { key: "why", label: "why", cls: "wrap", sortValue: why, text: why }, ...columns.slice(6)];
  const muted = mutedRows.length ? CW.table("muted", mutedColumns, mutedRows, { sort: "severity" }) : el("p", { id: "muted" }, "Nothing silenced or inhibited.");
  // A storm: the server sends the first alerts only (criticals, then oldest) with the total.
  const shownNote = v.alerts_total > v.alerts.length ? el("p", { id: "alerts-shown" },
    `Showing ${v.alerts.length} of ${v.alerts_total} current alerts (criticals first, then oldest); filter to narrow.`) : null;
  const queues = v.receivers.length ? CW.table("queues", [
    { key: "receiver", label: "receiver" }, { key: "integration", label: "integration" },
    { key: "pending", label: "pending", cls: "num" },
    { key: "dropped", label: "dropped", cls: "num", render: r => el("span", { class: r.dropped ? "bad" : null }, String(r.dropped)) },
  ], v.receivers, { sort: "receiver" }) : el("p", { id: "queues" }, "No receiver.");
  const pending = v.pending.length ? CW.table("pending", [
    { key: "alertname", label: "alert", sortValue: r => r.labels.alertname, text: r => r.labels.alertname },
    { key: "severity", label: "severity", sortValue: r => r.labels.severity, text: r => r.labels.severity || "–" },
    { key: "instance", label: "instance", sortValue: r => r.labels.instance, text: r => r.labels.instance || "", render: node },
    { key: "gpu", label: "GPU", sortValue: r => Number(r.labels.gpu ?? -1), text: r => r.labels.gpu ?? "" },
    { key: "active_since", label: "condition true since", text: r => fmt.time(r.active_since) },
  ], v.pending) : el("p", { id: "pending" }, "Nothing pending.");
  const silences = v.silences.length ? CW.table("silences", [
    { key: "id", label: "id", text: r => r.id.slice(0, 8) }, { key: "matchers", label: "matchers", cls: "wrap", sortValue: r => matcherText(r.matchers), text: r => matcherText(r.matchers) },
    { key: "state", label: "state" }, { key: "startsAt", label: "from", text: r => fmt.iso(r.startsAt) }, { key: "endsAt", label: "until", text: r => fmt.iso(r.endsAt) },
    { key: "createdBy", label: "by" }, { key: "comment", label: "comment", cls: "wrap" },
    { key: "actions", label: "", sortValue: () => 0, text: () => "", render: r => r.state === "expired" ? "" :
      el("button", { type: "button", class: "expire", onclick: () => expireForm(r) }, "Expire") },
  ], v.silences, { sort: "endsAt" }) : el("p", { id: "silences" }, "No silences.");
  const history = v.history.length ? CW.table("history", [
    { key: "at", label: "at", text: r => fmt.iso(r.at) }, { key: "status", label: "became", render: r => el("span", { class: "state st-" + r.status }, r.status) },
    { key: "alertname", label: "alert" }, { key: "instance", label: "instance", sortValue: r => r.labels.instance, text: r => r.labels.instance || "" },
    { key: "summary", label: "summary", sortValue: r => r.annotations.summary, text: r => r.annotations.summary || "" },
  ], v.history, { sort: "at", desc: true }) : el("p", { id: "history" }, "No alert started or resolved in this range.");
  return [kpis, filterBar(v), result, shownNote, section("Firing", firing), section("Silenced and inhibited", muted), section("Pending (condition true, waiting for its 'for')", pending),
    section("Silences", silences), section("Notification queues (pending, and dropped since start)", queues), section("History", history),
    section("Automation", el("div", { id: "automation" }, "loading…"))];
});

// The automation log is the remediation engine's own API (its JSON is this section's view model);
// fetched after each render, and absent (404) when serve runs with automation off.
function decideForm(c, verb) {
  const { el } = CW;
  dialog.open(`${verb === "approve" ? "Approve" : "Reject"} case ${c.id}`, verb === "approve" ? "Approve" : "Reject",
    [el("p", {}, `${c.alertname} on ${c.node || "–"}${c.gpu ? " GPU " + c.gpu : ""}${c.job_id ? ", job " + c.job_id : ""}: ${c.ladder.join(" → ")}`)],
    async () => {
      if (!confirm(`${verb} automation case ${c.id} (${c.current_step || c.ladder[0]} on ${c.node})?`)) return false;
      return call(`${verb} case ${c.id}`, "POST", `/api/automation/cases/${c.id}/${verb}`);
    });
}

CW.afterRender = async v => {
  const { el, fmt } = CW;
  const box = document.getElementById("automation");
  if (!v.automation) { box.replaceChildren(el("p", {}, "Automation is off on this server (serve --automation).")); return; }
  let cases, audit;
  try {
    [cases, audit] = await Promise.all(["/api/automation/cases", `/api/automation/audit?since=${v.start}&limit=200`]
      .map(url => fetch(url, { headers: { Accept: "application/json" } })));
  } catch (e) { box.replaceChildren(el("p", { class: "bad" }, "automation API: " + e.message)); return; }
  if (!cases.ok || !audit.ok) { box.replaceChildren(el("p", { class: "bad" }, `automation API: ${cases.status} / ${audit.status}`)); return; }
  const c = await cases.json(), log = await audit.json();
  const proposed = c.cases.filter(x => x.state === "pending_approval");
  const approvals = proposed.length ? CW.table("approvals", [
    { key: "id", label: "case", cls: "num" }, { key: "alertname", label: "alert" }, { key: "node", label: "node" },
    { key: "gpu", label: "GPU" }, { key: "job_id", label: "job" }, { key: "ladder", label: "plan", text: r => r.ladder.join(" → ") },
    { key: "created_at", label: "proposed", text: r => fmt.time(r.created_at) },
    { key: "actions", label: "", sortValue: () => 0, text: () => "", render: r => el("span", { class: "row-actions" },
      el("button", { type: "button", class: "approve", onclick: () => decideForm(r, "approve") }, "Approve"),
      el("button", { type: "button", class: "reject", onclick: () => decideForm(r, "reject") }, "Reject")) },
  ], proposed, { sort: "id", desc: true }) : el("p", { id: "approvals" }, "No case waits for approval.");
  const open = CW.table("cases", [
    { key: "id", label: "case", cls: "num" }, { key: "alertname", label: "alert" }, { key: "node", label: "node" },
    { key: "state", label: "state" }, { key: "current_step", label: "step" }, { key: "mode", label: "mode" },
    { key: "updated_at", label: "updated", text: r => fmt.time(r.updated_at) }, { key: "detail", label: "detail", cls: "wrap" },
  ], c.cases, { sort: "id", desc: true });
  const entries = CW.table("audit", [
    { key: "time", label: "time", text: r => fmt.time(r.time) }, { key: "action", label: "action" }, { key: "alert", label: "alert" },
    { key: "node", label: "node" }, { key: "job_id", label: "job" }, { key: "mode", label: "mode" }, { key: "actor", label: "actor" },
    { key: "result", label: "result" }, { key: "detail", label: "detail", cls: "wrap" },
  ], log, { sort: "time", desc: true });
  box.replaceChildren(el("p", {}, `mode ${c.mode}` + (c.budget ? ` · drain budget: ${c.budget.drained} drained, ${c.budget.remaining} left` : "")),
    el("h3", {}, "Waiting for approval"), approvals, el("h3", {}, "Cases"), open, el("h3", {}, "Audit log"), entries);
};
