"""Grafana dashboards for teams that keep Grafana: cluster, job and node views over the same
PromQL the ClusterWatch pages use. Each panel is data (title, kind, expressions); the JSON model
is built from that data in one place, so the three dashboards cannot drift in shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboard.definitions import EFFICIENCY_WINDOW, gpu_efficiency, xid_errors_seen

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GPU_JOB = "gpu_job_info{job_id=~\"$job_id\"}"


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # stat | timeseries | heatmap | table
    exprs: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    width: int = 12
    height: int = 8


def _job_gpus(metric: str) -> str:
    """``metric`` for the GPUs of the selected job: the join every per-job panel uses."""
    return f"{metric} * on (instance, gpu) group_left (job_id) {GPU_JOB}"


CLUSTER = (
    Panel("GPUs", "stat", (("count(gpu_up)", "total"), ("count(gpu_up == 0) or vector(0)", "down")), width=6, height=4),
    Panel("Mean GPU utilisation", "stat", (("avg(gpu_utilization_ratio)", "mean"),), "percentunit", 6, 4),
    Panel("Power", "stat", (("sum(gpu_power_watts)", "kW"),), "watt", 6, 4),
    Panel("Jobs running / pending", "stat", (("count(slurm_job_info{state=\"RUNNING\"}) or vector(0)", "running"),
                                              ("count(slurm_job_info{state=\"PENDING\"}) or vector(0)", "pending")),
          width=6, height=4),
    Panel("GPU utilisation by node", "heatmap", (("avg by (instance) (gpu_utilization_ratio)", "{{instance}}"),),
          "percentunit", 24, 10),
    # The XIDs first seen in the window, as the overview and the XID alerts count them (a GPU's
    # first XID included, which increase() alone never sees).
    Panel("XID errors (1 h)", "table",
          ((f"sum by (instance, gpu, xid, action) ({xid_errors_seen('gpu_xid_errors_total', '1h')})", ""),), width=12),
    Panel("Drained nodes", "table", (("slurm_node_flag{flag=\"drain\"} == 1", ""),), width=12),
    Panel("InfiniBand ports down", "table", (("node_infiniband_state_id != 4", ""),), width=12),
    Panel("GPU temperature (max by node)", "timeseries", (("max by (instance) (gpu_temperature_celsius)", "{{instance}}"),),
          "celsius", 12),
)

JOB = (
    Panel("GPU utilisation per GPU", "timeseries", ((_job_gpus("gpu_utilization_ratio"), "{{instance}}/{{gpu}}"),),
          "percentunit", 24, 10),
    Panel("GPU x time", "heatmap", ((_job_gpus("gpu_utilization_ratio"), "{{instance}}/{{gpu}}"),), "percentunit", 24, 10),
    Panel("GPU memory used", "timeseries", ((_job_gpus("gpu_memory_used_bytes"), "{{instance}}/{{gpu}}"),), "bytes"),
    Panel("Power", "timeseries", ((f"sum({_job_gpus('gpu_power_watts')})", "job"),), "watt"),
    # docs/architecture.md#definitions, as JobGpuEfficiencyLow reads it: over the last hour, each
    # GPU's samples weighted alike (the pages and the rule pack's recording rule compute the same).
    Panel(f"Job GPU efficiency ({EFFICIENCY_WINDOW})", "stat",
          ((gpu_efficiency(f"({_job_gpus('gpu_utilization_ratio')})", f"{EFFICIENCY_WINDOW}:1m"), "efficiency"),),
          "percentunit", 8, 4),
    Panel("Job", "table", (("slurm_job_info{job_id=~\"$job_id\"}", ""),), width=16, height=4),
)

NODE = (
    Panel("GPU utilisation", "timeseries", (("gpu_utilization_ratio{instance=~\"$instance\"}", "GPU {{gpu}}"),),
          "percentunit"),
    Panel("GPU memory used", "timeseries", (("gpu_memory_used_bytes{instance=~\"$instance\"}", "GPU {{gpu}}"),), "bytes"),
    Panel("GPU temperature", "timeseries", (("gpu_temperature_celsius{instance=~\"$instance\"}", "GPU {{gpu}}"),),
          "celsius"),
    Panel("Power", "timeseries", (("gpu_power_watts{instance=~\"$instance\"}", "GPU {{gpu}}"),), "watt"),
    Panel("SM clock and throttling", "timeseries",
          (("gpu_sm_clock_hertz{instance=~\"$instance\"}", "GPU {{gpu}} SM clock"),
           ("gpu_clock_event_active{instance=~\"$instance\", reason!=\"gpu_idle\"} == 1", "GPU {{gpu}} {{reason}}")),
          "hertz"),
    Panel("XID and ECC", "table",
          ((xid_errors_seen("gpu_xid_errors_total{instance=~\"$instance\"}", "24h"), "xid"),
           ("gpu_ecc_errors_total{instance=~\"$instance\", type=\"uncorrected\"} > 0", "ecc")), width=12),
    Panel("InfiniBand", "timeseries",
          (("rate(node_infiniband_port_data_received_bytes_total{instance=~\"$instance\"}[1m])", "{{device}} rx"),
           ("rate(node_infiniband_symbol_error_total{instance=~\"$instance\"}[5m])", "{{device}} symbol errors")),
          "Bps"),
    Panel("CPU", "timeseries", (("sum by (mode) (rate(node_cpu_seconds_total{instance=~\"$instance\", mode!=\"idle\"}[1m]))", "{{mode}}"),),
          "short"),
)

DASHBOARDS: dict[str, tuple[str, tuple[Panel, ...], tuple[str, ...]]] = {
    "clusterwatch-cluster": ("ClusterWatch: cluster", CLUSTER, ()),
    "clusterwatch-job": ("ClusterWatch: job", JOB, ("job_id",)),
    "clusterwatch-node": ("ClusterWatch: node", NODE, ("instance",)),
}
VARIABLE_QUERIES = {"job_id": "label_values(slurm_job_info, job_id)", "instance": "label_values(gpu_up, instance)"}


def dashboard(uid: str) -> dict[str, Any]:
    """The Grafana JSON model of one dashboard (schema 39, Grafana 10+)."""
    title, panels, variables = DASHBOARDS[uid]
    templating = [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"}]
    templating += [{"name": name, "type": "query", "datasource": DATASOURCE, "query": VARIABLE_QUERIES[name],
                    "refresh": 2, "includeAll": False, "multi": name == "instance", "sort": 1}
                   for name in variables]
    return {
        "uid": uid, "title": title, "tags": ["clusterwatch", "gpu"], "schemaVersion": 39, "editable": True,
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
        "templating": {"list": templating},
        "panels": _layout(panels),
    }


def _layout(panels: tuple[Panel, ...]) -> list[dict[str, Any]]:
    out, x, y, row_height = [], 0, 0, 0
    for number, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        out.append({
            "id": number, "title": panel.title, "type": panel.kind, "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE,
                         **({"format": "table", "instant": True} if panel.kind == "table" else {})}
                        for i, (expr, legend) in enumerate(panel.exprs)],
        })
        x += panel.width
        row_height = max(row_height, panel.height)
    return out
