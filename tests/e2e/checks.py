"""What the end-to-end tests check, the same for every engine: an XID 79 injected into the
simulator arrives at the engine's rule evaluator, at Alertmanager and at ClusterWatch's inbound
receiver; remediation decides (dry-run) or drains through the simulated Slurm (auto); the
dashboard in --prometheus-url mode agrees with the simulator's ground truth."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.stack import OPERATOR_TOKEN, Stack, get, start_serve

ALERT = "GpuXidRebootRequired"
SHIPPED_POLICY = Path(__file__).resolve().parents[2] / "remediation" / "default-policy.yml"


def test_policy(path: Path) -> Path:
    """The shipped policy; only the partition guard is widened: 10% of a 6-node partition is 0
    nodes, so the shipped guard would (rightly) refuse every drain in a fleet this small."""
    policy = yaml.safe_load(SHIPPED_POLICY.read_text())
    policy["guards"]["max_drained_percent"] = 50
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


test_policy.__test__ = False  # a helper, not a test


def inject_xid79(stack: Stack, node: str, gpu: int) -> None:
    response = httpx.post(f"{stack.sim_url}/api/faults", json={"kind": "xid", "node": node, "gpu": gpu, "xid": 79},
                          timeout=10)
    assert response.status_code == 201, response.text


def fleet_node(stack: Stack, node: str) -> dict[str, Any]:
    return next(n for n in get(f"{stack.sim_url}/api/fleet")["nodes"] if n["name"] == node)


def _ours(labels: dict[str, str], node: str, gpu: int) -> bool:
    return (labels.get("alertname") == ALERT and labels.get("instance") == node and labels.get("gpu") == str(gpu)
            and labels.get("xid") == "79" and labels.get("action") == "reboot")


def check_alert_path(stack: Stack, node: str, gpu: int) -> dict[str, Any]:
    """The alert at each hop; returns ClusterWatch's view of it."""
    def evaluated():
        alerts = get(f"{stack.rules_url}/api/v1/alerts")["data"]["alerts"] or []  # vmalert: null when none
        return [a for a in alerts if _ours(a["labels"], node, gpu) and a["state"] == "firing"]

    fired = stack.wait_for(f"{ALERT} firing in {stack.engine}'s rule evaluator", evaluated, timeout=45)
    assert fired[0]["labels"]["severity"] == "critical"

    def in_alertmanager():
        alerts = get(f"{stack.alertmanager_url}/api/v2/alerts", params={"filter": [f'alertname="{ALERT}"',
                                                                                   f'instance="{node}"']})
        return [a for a in alerts if _ours(a["labels"], node, gpu) and a["status"]["state"] == "active"]

    held = stack.wait_for(f"{ALERT} active in Alertmanager", in_alertmanager, timeout=20)
    assert [r["name"] for r in held[0]["receivers"]] == ["clusterwatch"]

    def received():
        alerts = get(f"{stack.serve_url}/api/alerts", params={"source": "alertmanager:clusterwatch"})
        return [a for a in alerts if _ours(a["labels"], node, gpu) and a["status"] == "firing"]

    seen = stack.wait_for(f"{ALERT} received by ClusterWatch from Alertmanager", received, timeout=20)[0]
    assert seen["state"] == "firing" and seen["source"] == "alertmanager:clusterwatch"
    assert seen["annotations"]["summary"] == f"XID 79 on {node} GPU {gpu}: node reboot required"
    if stack.engine == "victoriametrics":
        assert seen["labels"].get("alertgroup") == "gpu-hardware", seen["labels"]  # vmalert's own label
    # Nothing reached ClusterWatch another way: its own evaluator runs no rules in this deployment.
    assert not get(f"{stack.serve_url}/api/alerts", params={"source": "evaluator"})
    return seen


def cases_for(stack: Stack, node: str) -> list[dict[str, Any]]:
    return [c for c in get(f"{stack.serve_url}/api/automation/cases")["cases"] if c["node"] == node]


def audit_for(stack: Stack, node: str) -> list[dict[str, Any]]:
    return [e for e in get(f"{stack.serve_url}/api/automation/audit") if e["node"] == node]


def check_dashboard(stack: Stack, node: str, gpu: int, drained: bool) -> None:
    """Overview, node page and jobs view, read through --prometheus-url, against the ground truth."""
    def overview_agrees():
        overview = get(f"{stack.serve_url}/api/overview")
        heatmap = overview["heatmap"]
        truth = get(f"{stack.sim_url}/api/fleet")
        unhealthy_truth = sorted([n["name"], g["index"]] for n in truth["nodes"] for g in n["gpus"] if not g["healthy"])
        unhealthy_shown = sorted([heatmap["nodes"][i], g] for i, g in heatmap["unhealthy"])
        drained_truth = sum(1 for n in truth["nodes"] if "DRAIN" in n["state_flags"])
        ok = (unhealthy_shown == unhealthy_truth and [node, gpu] in unhealthy_shown
              and overview["kpis"]["gpus_unhealthy"] == len(unhealthy_truth)
              and overview["kpis"]["nodes_total"] == len(truth["nodes"])
              and overview["kpis"]["gpus_total"] == sum(len(n["gpus"]) for n in truth["nodes"])
              and overview["kpis"]["nodes_drained"] == drained_truth
              and overview["kpis"]["alerts_firing"].get("critical", 0) >= 1)
        return ok or f"overview {overview['kpis']}, unhealthy {unhealthy_shown}; truth {unhealthy_truth}, " \
                     f"{drained_truth} drained"

    stack.wait_for("dashboard overview agreeing with the simulator's ground truth", overview_agrees, timeout=50)

    def node_page_agrees():
        page = get(f"{stack.serve_url}/api/nodes/{node}")
        truth = fleet_node(stack, node)
        ok = (page["unhealthy_gpus"] == [gpu]
              and any(e["kind"] == "xid" and e["gpu"] == str(gpu) and "XID 79" in e["detail"] for e in page["events"])
              and sorted(page["scheduler"]["flags"]) == sorted(truth["state_flags"])
              and page["scheduler"]["reason"] == truth["reason"]
              and ("DRAIN" in page["scheduler"]["flags"]) == drained)
        return ok or f"node page {page['unhealthy_gpus']}, {page['events']}, {page['scheduler']}; truth " \
                     f"{truth['state_flags']} {truth['reason']!r}"

    stack.wait_for(f"dashboard node page of {node}", node_page_agrees, timeout=30)

    def jobs_agree():
        shown = {j["job_id"]: (sorted(j["nodes"]), j["gpus"], j["user"])
                 for j in get(f"{stack.serve_url}/api/jobs")["jobs"] if j["state"] == "RUNNING"}
        truth = {str(j["job_id"]): (sorted(j["nodes"]), sum(map(len, j["gpus"].values())), j["user"])
                 for j in get(f"{stack.sim_url}/api/fleet")["jobs"] if j["state"] == "RUNNING"}
        return (truth and shown == truth) or f"dashboard {shown} != ground truth {truth}"

    stack.wait_for("dashboard jobs view equal to the simulator's running jobs", jobs_agree, timeout=30)


def run_dry_run(stack: Stack, workdir: Path, node: str, gpu: int) -> None:
    state = workdir / "state-dry-run"
    state.mkdir()
    proc = start_serve(stack, "dry-run", state, test_policy(workdir / "policy.yml"))
    try:
        inject_xid79(stack, node, gpu)
        check_alert_path(stack, node, gpu)

        def decided():
            cases = [c for c in cases_for(stack, node) if c["alertname"] == ALERT]
            would = [e for e in audit_for(stack, node) if e["action"] == "drain" and e["result"] == "would"]
            return (cases and would and (cases, would)) or f"cases {cases}, audit {audit_for(stack, node)}"

        cases, would = stack.wait_for("a dry-run decision to drain", decided, timeout=20)
        assert cases[0]["mode"] == "dry-run" and cases[0]["state"] == "planned", cases
        assert would[0]["mode"] == "dry-run" and would[0]["detail"].startswith("would drain: cw:"), would
        check_dashboard(stack, node, gpu, drained=False)
        truth = fleet_node(stack, node)
        assert "DRAIN" not in truth["state_flags"] and not truth["reason"], truth  # nothing executed
        assert not any(e["result"] == "done" and e["action"] in ("drain", "requeue", "reboot")
                       for e in audit_for(stack, node))
    finally:
        proc.stop()


def run_auto(stack: Stack, workdir: Path, node: str, gpu: int) -> None:
    state = workdir / "state-auto"
    state.mkdir()
    proc = start_serve(stack, "auto", state, test_policy(workdir / "policy.yml"))
    try:
        inject_xid79(stack, node, gpu)
        check_alert_path(stack, node, gpu)

        def drained():
            truth = fleet_node(stack, node)
            return ("DRAIN" in truth["state_flags"] and truth) or f"{node} in the simulator: {truth['state_flags']}"

        truth = stack.wait_for(f"{node} drained in the simulated Slurm", drained, timeout=20)
        audit = audit_for(stack, node)
        done = [e for e in audit if e["action"] == "drain" and e["result"] == "done"]
        assert done and done[0]["mode"] == "auto" and done[0]["actor"] == "policy:gpu-reboot", audit
        assert truth["reason"].startswith("cw:"), truth
        # The reason in Slurm is one ClusterWatch wrote (the drain's, or the reboot's that follows it).
        assert any(e["detail"].startswith(truth["reason"]) for e in audit if e["result"] == "done"), (truth, audit)
        case = next(c for c in cases_for(stack, node) if c["alertname"] == ALERT)
        assert case["mode"] == "auto" and case["owned"], case
        check_dashboard(stack, node, gpu, drained=True)
    finally:
        proc.stop()


__all__ = ["run_dry_run", "run_auto", "OPERATOR_TOKEN"]
