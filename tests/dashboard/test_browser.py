"""Every page in a real Chromium (Debian's, driven by playwright): no console errors, no request
leaving 127.0.0.1, the heatmap's cell count, a fault showing up within a refresh, and an operator
drain from the node page reaching the simulated Slurm and the audit list. Screenshots go to
test-artifacts/dashboard/."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.dashboard.chromium import shot
from tests.dashboard.fleet import NODES, TOKEN

pytestmark = pytest.mark.real_component


def test_every_page_loads_clean_and_the_heatmap_has_every_gpu(demo, page):
    base = demo["base"]
    job_id = httpx.get(f"{base}/api/jobs", params={"state": "RUNNING"}).json()["jobs"][0]["job_id"]
    node = httpx.get(f"{base}/api/nodes").json()["nodes"][0]["name"]
    for name, path in [("overview", "/"), ("jobs", "/jobs"), ("job", f"/jobs/{job_id}"), ("nodes", "/nodes"),
                       ("node", f"/nodes/{node}"), ("users", "/users?range=15m"),
                       ("alerts", "/alerts")]:
        page.goto(base + path)
        page.wait_for_selector("#updated:not(:empty)")
        if name in ("overview", "job", "node"):
            page.wait_for_selector(".main-svg")
        shot(page, name)
    assert page.errors == [] and page.foreign == []
    page.goto(base + "/?color=util")
    page.wait_for_selector("#heatmap .main-svg")
    cells = page.evaluate("() => { const z = document.getElementById('heatmap').data[0].z;"
                          " return z.length * z[0].length }")
    assert cells == NODES * 8
    page.goto(base + "/jobs?jobs_sort=gpus&jobs_desc=1")  # a deep link: sort state in the URL
    first = page.locator("#jobs tbody tr").first.locator("td").nth(6).inner_text()
    assert int(first) == max(j["gpus"] for j in httpx.get(f"{base}/api/jobs").json()["jobs"])


def test_injected_fault_shows_on_overview_and_node_page_within_a_refresh(demo, page):
    base, sim = demo["base"], demo["sim"]
    node = httpx.get(f"{sim}/api/fleet").json()["nodes"][1]["name"]
    page.goto(base + "/?refresh=5")
    page.wait_for_selector("#kpis")
    before = int(page.locator("#kpis .kpi").nth(4).locator(".value").inner_text())
    httpx.post(f"{sim}/api/faults", json={"kind": "xid", "node": node, "gpu": 5, "xid": 79}).raise_for_status()
    page.wait_for_function(f"() => Number(document.querySelectorAll('#kpis .kpi')[4]"
                           f".querySelector('.value').textContent) > {before}", timeout=20_000)
    shot(page, "overview-fault")
    page.goto(f"{base}/nodes/{node}")
    page.wait_for_selector("#node-state")
    assert "5" in page.locator("#node-state .kpi").nth(6).inner_text()
    assert "XID 79" in page.locator("body").inner_text()
    assert page.errors == [] and page.foreign == []


def test_operator_drains_a_node_from_its_page(demo, page):
    base, sim = demo["base"], demo["sim"]
    node = httpx.get(f"{sim}/api/fleet").json()["nodes"][2]["name"]
    page.goto(f"{base}/nodes/{node}?refresh=0")
    page.wait_for_selector("#actions")
    page.fill("#reason", "browser test drain")
    page.fill("#token", TOKEN)
    page.once("dialog", lambda dialog: dialog.accept())  # the confirmation
    page.click("#drain")
    page.wait_for_function("() => document.getElementById('action-result').textContent.includes('drain')")
    assert "done by dashboard:alice" in page.locator("#action-result").inner_text()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = next(n for n in httpx.get(f"{sim}/api/fleet").json()["nodes"] if n["name"] == node)
        if state["reason"] == "browser test drain":
            break
        time.sleep(0.3)
    assert state["reason"] == "browser test drain" and state["reason_set_by"]
    page.wait_for_function("() => document.getElementById('audit').textContent.includes('browser test drain')")
    shot(page, "node-drained")
    assert page.errors == [] and page.foreign == []


def firing_row(page, alertname: str, node: str, gpu: int):
    return page.locator("#firing tbody tr", has_text=alertname).filter(has_text=node).filter(
        has=page.locator("td:nth-child(4)", has_text=str(gpu)))


def test_alerts_page_fault_raises_an_alert_and_silencing_it_from_the_ui_mutes_it(demo, page):
    base, sim = demo["base"], demo["sim"]
    view = httpx.get(f"{base}/api/alerts-view").json()
    assert view["connected"], ("serve does not hand the notification pipeline to the dashboard: "
                               "DashboardContext(..., alerting=deps.alerting) in dashboard/component.py's build")
    node = httpx.get(f"{sim}/api/fleet").json()["nodes"][3]["name"]
    page.goto(base + "/alerts?refresh=5")
    page.wait_for_selector("#alert-kpis")
    shot(page, "alerts")
    # XID 79 (fallen off the bus): the pack's GpuXidRebootRequired has no `for`, its group a 15 s interval.
    httpx.post(f"{sim}/api/faults", json={"kind": "xid", "node": node, "gpu": 6, "xid": 79}).raise_for_status()
    row = firing_row(page, "GpuXidRebootRequired", node, 6)
    row.wait_for(timeout=90_000)
    assert "firing" in row.inner_text()
    shot(page, "alerts-firing")

    row.locator("button.silence").click()
    page.wait_for_selector("#act-dialog[open]")
    page.fill("#sil-comment", "browser test: node being rebooted")
    page.fill("#sil-by", "alice")
    page.fill("#token", TOKEN)
    shot(page, "alerts-silence-dialog")
    page.once("dialog", lambda dialog: dialog.accept())  # the confirmation
    page.click("#act-submit")
    page.wait_for_function("() => document.getElementById('action-result').textContent.includes('silence: done')")
    # Out of the firing list, into the muted one, and a silence listed with the operator's comment.
    row.wait_for(state="detached", timeout=15_000)
    muted = page.locator("#muted tbody tr", has_text="GpuXidRebootRequired").filter(has_text=node)
    muted.first.wait_for(timeout=15_000)
    assert "silenced" in muted.first.inner_text()
    assert "alice: browser test: node being rebooted" in muted.first.inner_text(), "the muted row says why"
    assert "browser test: node being rebooted" in page.locator("#silences").inner_text()
    states = {a["state"] for a in httpx.get(f"{base}/api/alerts", params={"filter": f'instance="{node}"'}).json()
              if a["labels"]["alertname"] == "GpuXidRebootRequired" and a["labels"].get("gpu") == "6"}
    assert states == {"silenced"}
    shot(page, "alerts-silenced")

    # Expiring the silence from the UI brings the alert back to the firing list.
    page.locator("#silences tbody tr", has_text="browser test").locator("button.expire").click()
    page.wait_for_selector("#act-dialog[open]")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#act-submit")
    firing_row(page, "GpuXidRebootRequired", node, 6).wait_for(timeout=15_000)
    assert page.errors == [] and page.foreign == []
