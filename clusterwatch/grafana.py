"""Grafana dashboards for teams that keep Grafana: cluster, job and node views over the same
PromQL the ClusterWatch pages use. Each panel is data (title, kind, expressions); the JSON model
is built from that data in one place, so the three dashboards cannot drift in shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboard.definitions import (
    EFFICIENCY_WINDOW, MEASURES, SM_ACTIVE, UTILIZATION, gpu_efficiency, job_activity, xid_errors_seen,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GPU_JOB = "gpu_job_info{job_id=~\"$job_id\", gpu=~\"$gpu\"}"
NODE_GPUS = "instance=~\"$instance\", gpu=~\"$gpu\""  # the node dashboard's selection
# The profiling gauges (NVML GPM, Hopper and later): a GPU without GPM has no series at all, not
# zeros, and gpu_gpm_supported says which GPUs have it (docs/metrics.md).
PROFILING = (("gpu_sm_active_ratio", "SM active"), ("gpu_tensor_active_ratio", "tensor active"),
             ("gpu_dram_active_ratio", "DRAM active"))
PROFILING_NOTE = ("SM, tensor-pipe and DRAM activity from NVML's GPU Performance Monitoring (GPM). Only GPUs "
                  "with GPM (Hopper and later; gpu_gpm_supported == 1) have these series: a GPU without it "
                  "shows no line here, not zero; read its coarse utilisation instead.")
# Firing alerts as annotations: the series Prometheus keeps for every firing alert.
FIRING = "ALERTS{alertstate=\"firing\"}"


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # stat | timeseries | heatmap | table
    exprs: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""


def _job_gpus(metric: str) -> str:
    """``metric`` for the GPUs of the selected job: the join every per-job panel uses."""
    return f"{metric} * on (instance, gpu) group_left (job_id) {GPU_JOB}"


# The job's activity by its measure (docs/architecture.md#definitions): SM activity where every
# selected GPU of the job has it, else utilisation; the measure label, in the legend, says which.
JOB_ACTIVITY = job_activity(_job_gpus(SM_ACTIVE.metric), _job_gpus(UTILIZATION.metric),
                            f"max by (instance, gpu, job_id) ({GPU_JOB})")
EFFICIENCY_NOTE = ("GPU-hour-weighted mean activity of the job's GPUs over the last hour, as JobGpuEfficiencyLow "
                   "reads it: SM activity (NVML GPM) when every GPU of the job has it, else utilisation; the "
                   "legend names the measure. Low below "
                   + ", ".join(f"{m.efficiency_low_below:.0%} {m.title}" for m in MEASURES.values()) + ".")


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
    Panel(f"Job GPU efficiency ({EFFICIENCY_WINDOW}, SM activity or utilisation)", "stat",
          ((gpu_efficiency(f"({JOB_ACTIVITY})", f"{EFFICIENCY_WINDOW}:1m"), "efficiency by {{measure}}"),),
          "percentunit", 8, 4, EFFICIENCY_NOTE),
    Panel("Job", "table", (("slurm_job_info{job_id=~\"$job_id\"}", ""),), width=16, height=4),
    Panel("GPU profiling (GPM)", "timeseries",
          tuple((_job_gpus(metric), f"{{{{instance}}}}/{{{{gpu}}}} {name}") for metric, name in PROFILING),
          "percentunit", 24, 10, PROFILING_NOTE),
)

NODE = (
    Panel("GPU utilisation", "timeseries", ((f"gpu_utilization_ratio{{{NODE_GPUS}}}", "GPU {{gpu}}"),),
          "percentunit"),
    Panel("GPU memory used", "timeseries", ((f"gpu_memory_used_bytes{{{NODE_GPUS}}}", "GPU {{gpu}}"),), "bytes"),
    Panel("GPU temperature", "timeseries", ((f"gpu_temperature_celsius{{{NODE_GPUS}}}", "GPU {{gpu}}"),),
          "celsius"),
    Panel("Power", "timeseries", ((f"gpu_power_watts{{{NODE_GPUS}}}", "GPU {{gpu}}"),), "watt"),
    Panel("SM clock and throttling", "timeseries",
          ((f"gpu_sm_clock_hertz{{{NODE_GPUS}}}", "GPU {{gpu}} SM clock"),
           (f"gpu_clock_event_active{{{NODE_GPUS}, reason!=\"gpu_idle\"}} == 1", "GPU {{gpu}} {{reason}}")),
          "hertz"),
    Panel("GPU profiling (GPM)", "timeseries",
          tuple((f"{metric}{{{NODE_GPUS}}}", f"GPU {{{{gpu}}}} {name}") for metric, name in PROFILING),
          "percentunit", description=PROFILING_NOTE),
    Panel("XID and ECC", "table",
          ((xid_errors_seen(f"gpu_xid_errors_total{{{NODE_GPUS}}}", "24h"), "xid"),
           (f"gpu_ecc_errors_total{{{NODE_GPUS}, type=\"uncorrected\"}} > 0", "ecc")), width=12),
    Panel("InfiniBand", "timeseries",
          (("rate(node_infiniband_port_data_received_bytes_total{instance=~\"$instance\"}[1m])", "{{device}} rx"),
           ("rate(node_infiniband_symbol_error_total{instance=~\"$instance\"}[5m])", "{{device}} symbol errors")),
          "Bps"),
    Panel("CPU", "timeseries", (("sum by (mode) (rate(node_cpu_seconds_total{instance=~\"$instance\", mode!=\"idle\"}[1m]))", "{{mode}}"),),
          "short"),
)

# Each dashboard's variables, in order: (name, label_values query). $gpu offers "All" and several
# GPUs at once; it lists the GPUs of the selected nodes (node) or of the selected job (job).
DASHBOARDS: dict[str, tuple[str, tuple[Panel, ...], tuple[tuple[str, str], ...]]] = {
    "clusterwatch-cluster": ("ClusterWatch: cluster", CLUSTER, ()),
    "clusterwatch-job": ("ClusterWatch: job", JOB, (
        ("job_id", "label_values(slurm_job_info, job_id)"),
        ("gpu", "label_values(gpu_job_info{job_id=~\"$job_id\"}, gpu)"))),
    "clusterwatch-node": ("ClusterWatch: node", NODE, (
        ("instance", "label_values(gpu_up, instance)"),
        ("gpu", "label_values(gpu_up{instance=~\"$instance\"}, gpu)"))),
}
# Firing alerts on the time axis; the node dashboard's only those of the selected nodes.
ANNOTATION_EXPRS = {"clusterwatch-cluster": FIRING, "clusterwatch-job": FIRING,
                    "clusterwatch-node": "ALERTS{alertstate=\"firing\", instance=~\"$instance\"}"}
MULTI = {"instance", "gpu"}
INCLUDE_ALL = {"gpu"}


def _variable(name: str, query: str) -> dict[str, Any]:
    variable: dict[str, Any] = {
        "name": name, "type": "query", "datasource": DATASOURCE, "query": query,
        "definition": query, "refresh": 2, "includeAll": name in INCLUDE_ALL, "multi": name in MULTI,
        "sort": 3 if name == "gpu" else 1}  # GPU indices in numeric order
    if name in INCLUDE_ALL:
        # "All" as one regex rather than every value joined: the selectors use =~.
        variable["allValue"] = ".*"
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def annotations(uid: str) -> list[dict[str, Any]]:
    """Grafana's built-in annotations, and one Prometheus annotation per firing alert: the alert
    name as its title, the name and instance in its text, alertname and severity as tags."""
    return [
        {"builtIn": 1, "name": "Annotations & Alerts", "type": "dashboard", "enable": True, "hide": True,
         "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "iconColor": "rgba(0, 211, 255, 1)"},
        {"name": "Firing alerts", "datasource": DATASOURCE, "enable": True, "hide": False, "iconColor": "red",
         "expr": ANNOTATION_EXPRS[uid], "step": "60s", "titleFormat": "{{alertname}}",
         "textFormat": "{{alertname}} firing on {{instance}}", "tagKeys": "alertname,severity",
         "useValueForTime": False},
    ]


def dashboard(uid: str) -> dict[str, Any]:
    """The Grafana JSON model of one dashboard (schema 39, Grafana 10+)."""
    title, panels, variables = DASHBOARDS[uid]
    templating = [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"}]
    templating += [_variable(name, query) for name, query in variables]
    return {
        "uid": uid, "title": title, "tags": ["clusterwatch", "gpu"], "schemaVersion": 39, "editable": True,
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
        "annotations": {"list": annotations(uid)},
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
            **({"description": panel.description} if panel.description else {}),
            "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE,
                         **({"format": "table", "instant": True} if panel.kind == "table" else {})}
                        for i, (expr, legend) in enumerate(panel.exprs)],
        })
        x += panel.width
        row_height = max(row_height, panel.height)
    return out
