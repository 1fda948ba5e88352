"""The overview's queries at scale: what the engine ships back must not grow with every GPU's
labels, and in PromQL-only mode (no scheduler adapter, ``serve --prometheus-url``) the Slurm flags
it reads must be the ones scheduler/metrics.py writes (lower case)."""
from __future__ import annotations

from pathlib import Path

from dashboard.context import DashboardContext
from dashboard.params import TimeRange
from dashboard.views.overview import STATUS_CODES, overview
from tests.dashboard.query_log import RecordingClient
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tsdb.store import Store

RULES = Path(__file__).resolve().parents[2] / "alerts" / "rules"
NODES, GPUS = 4, 8
T0 = 1_700_000_000.0
STEP = 30.0
STEPS = 40  # 20 minutes


def labels(**kv: str) -> tuple:
    return tuple(sorted(kv.items()))


XID_STEP = STEPS - 5  # gpu-4's GPU 5 raises an XID 79 here


def fleet_store(first_xid: bool = False) -> Store:
    """4 nodes: gpu-1 and GPUs 0-5 of gpu-2 run job 101 (gpu-2's GPU 3 idle the whole time), GPUs
    6-7 of gpu-2 run job 103, gpu-3 is free and drained, gpu-4 is down per Slurm (not_responding)
    and has a GPU with an XID at XID_STEP: its counter goes from 0 to 1, or with ``first_xid`` it
    is the GPU's first XID of that code, so the series is born at 1 (as the exporter creates it)."""
    store = Store(retention_s=86400)
    flags = {"gpu-3": {"drain"}, "gpu-4": {"not_responding"}}
    for step in range(STEPS):
        ts = int((T0 + step * STEP) * 1000)
        scheduler = [(labels(__name__="slurm_job_info", job_id="101", state="RUNNING", user="u", partition="p"), 1.0),
                     (labels(__name__="slurm_job_info", job_id="102", state="PENDING", user="u", partition="p"), 1.0),
                     (labels(__name__="slurm_job_info", job_id="103", state="RUNNING", user="v", partition="p"), 1.0)]
        for n in range(1, NODES + 1):
            node = f"gpu-{n}"
            target = {"instance": node, "job": "gpu-nodes", "rack": "rack-1" if n <= 2 else "rack-2"}
            samples = [(labels(__name__="up", **target), 1.0)]
            for g in range(GPUS):
                gpu = {**target, "gpu": str(g), "uuid": f"GPU-{n}-{g}"}
                allocated = n <= 2
                util = 0.0 if not allocated or (n, g) == (2, 3) else 0.8
                samples += [(labels(__name__="gpu_up", **gpu), 1.0),
                            (labels(__name__="gpu_utilization_ratio", **gpu), util),
                            (labels(__name__="gpu_power_watts", **gpu), 100.0 + 500 * util),
                            (labels(__name__="gpu_memory_used_bytes", **gpu), 2.0**30 * (1 + 10 * util)),
                            (labels(__name__="gpu_remapped_rows_pending", **gpu), 0.0),
                            (labels(__name__="gpu_remapped_rows_failure", **gpu), 0.0)]
                if allocated:
                    job = "103" if (n, g) in ((2, 6), (2, 7)) else "101"
                    samples.append((labels(__name__="gpu_job_info", job_id=job, pod="", source="cgroup", **gpu), 1.0))
                if (n, g) == (4, 5) and (step >= XID_STEP or not first_xid):
                    samples.append((labels(__name__="gpu_xid_errors_total", xid="79", action="reboot", **gpu),
                                    float(step >= XID_STEP)))
            store.append_scrape(node, ts, samples)
            for flag in ("drain", "down", "fail", "not_responding", "maint"):
                scheduler.append((labels(__name__="slurm_node_flag", instance=node, flag=flag),
                                  1.0 if flag in flags.get(node, ()) else 0.0))
        store.append_scrape("scheduler", ts, scheduler)
    return store


def view(color: str = "util", store: Store | None = None):
    client = RecordingClient(Engine(store or fleet_store()))
    end = T0 + (STEPS - 1) * STEP
    ctx = DashboardContext(query=client, clock=lambda: end)
    return overview(ctx, TimeRange(end - 900, end), color), client


def test_promql_only_overview_reads_slurm_flags_as_written():
    model, _ = view()
    kpis = model.kpis
    assert kpis.nodes_drained == 1  # slurm_node_flag{flag="drain"}: was asked as "DRAIN" and never matched
    assert kpis.nodes_down == 1
    status = {node: STATUS_CODES[code] for rack in model.racks for node, code in zip(rack.nodes, rack.status)}
    assert status == {"gpu-1": "alloc", "gpu-2": "alloc", "gpu-3": "drain", "gpu-4": "down"}


def test_overview_kpis_and_heatmap_from_engine_side_aggregations():
    model, _ = view()
    kpis = model.kpis
    assert (kpis.gpus_total, kpis.nodes_total) == (NODES * GPUS, NODES)
    assert (kpis.gpus_busy, kpis.gpus_idle, kpis.gpus_free) == (15, 1, 16)
    assert (kpis.jobs_running, kpis.jobs_pending) == (2, 1)
    assert kpis.gpus_unhealthy == 1 and model.heatmap.unhealthy == [[3, 5]]
    assert kpis.mean_utilization == round(15 * 0.8 / 32, 4)
    assert kpis.power_kw == round((32 * 100 + 15 * 500 * 0.8) / 1000, 2)
    heat = model.heatmap
    assert heat.job_ids == ["101", "103"] and heat.jobs[0] == [0] * GPUS and heat.jobs[2] == [-1] * GPUS
    assert heat.jobs[1] == [0] * 6 + [1, 1]
    assert heat.z[0] == [80.0] * GPUS and heat.z[1][3] == 0.0


def test_only_the_heatmap_and_the_job_mapping_come_back_per_gpu():
    """Every other answer is per node or smaller, and per-GPU answers carry no label but the key."""
    for color in ("util", "memory"):
        _, client = view(color)
        per_gpu = [(q, rows) for q, rows in client.answers if len(rows) > NODES and any("gpu" in r for r in rows)]
        # heat, job mapping, GPUs below 1% for the whole range and now (the complement of busy)
        assert len(per_gpu) <= 4, [q for q, _ in per_gpu]
        for query, rows in per_gpu:
            assert all(set(r) <= {"instance", "gpu", "job_id"} for r in rows), query
        for query, rows in client.answers:
            assert all("uuid" not in r for r in rows), query


def test_recording_rules_hold_the_dashboards_own_expressions():
    """alerts/rules/recording.yml records what dashboard/definitions.py would compute: the same
    PromQL, so reading the recorded series cannot change a number on the page."""
    import promql_parser as pp

    from alerts.evaluator.rulefile import load_rule_file
    from dashboard.definitions import (GPUS_PRESENT_BY_NODE, GPUS_PRESENT_RECORDED, UNHEALTHY,
                                       UNHEALTHY_RECORDED)

    rules = {rule.name: rule.expr for group in load_rule_file(RULES / "recording.yml") for rule in group.rules}
    assert str(pp.parse(rules[GPUS_PRESENT_RECORDED])) == str(pp.parse(GPUS_PRESENT_BY_NODE))
    assert str(pp.parse(rules[UNHEALTHY_RECORDED])) == str(pp.parse(f"count by (instance, gpu) ({UNHEALTHY})"))


def evaluate_dashboard_rules(store: Store, at: float) -> None:
    from alerts.evaluator.manager import RuleEvaluator
    from alerts.evaluator.rulefile import load_rule_file

    groups = [g for g in load_rule_file(RULES / "recording.yml") if g.name == "clusterwatch-dashboard"]
    RuleEvaluator(groups, LocalQueryClient(Engine(store)), writer=store.append_rule_output).evaluate(at)


def test_overview_reads_the_recorded_series_when_the_rules_run(monkeypatch):
    import dashboard.definitions as definitions

    monkeypatch.setattr(definitions, "RECORDED_UNHEALTHY_FROM_NODES", 1)  # as on a fleet of thousands of nodes
    store = fleet_store()
    end = T0 + (STEPS - 1) * STEP
    computed, _ = view()
    evaluate_dashboard_rules(store, end)
    client = RecordingClient(Engine(store))
    recorded = overview(DashboardContext(query=client, clock=lambda: end), TimeRange(end - 900, end))
    asked = [query for query, _ in client.answers]
    assert definitions.GPUS_PRESENT_BY_NODE not in asked and not any(definitions.UNHEALTHY in q for q in asked)
    assert recorded.kpis == computed.kpis and recorded.heatmap == computed.heatmap
    assert recorded.kpis.gpus_unhealthy == 1 and recorded.heatmap.unhealthy == [[3, 5]]


def test_a_small_fleet_shows_a_new_fault_before_the_rules_record_it():
    """The XID on gpu-4 GPU 5 starts at step 35; the rules last ran at step 34. Below
    RECORDED_UNHEALTHY_FROM_NODES the overview asks the unhealthy expression itself."""
    from dashboard.definitions import fleet_gpus

    store = fleet_store()
    end = T0 + (STEPS - 1) * STEP
    evaluate_dashboard_rules(store, T0 + 34 * STEP)
    client = LocalQueryClient(Engine(store))
    assert fleet_gpus(client, end) == ({f"gpu-{n}": GPUS for n in range(1, NODES + 1)}, {("gpu-4", 5)})
    assert fleet_gpus(client, end, recorded_from_nodes=1) == ({f"gpu-{n}": GPUS for n in range(1, NODES + 1)}, set())


def test_a_gpus_first_ever_xid_shows_it_unhealthy_on_the_overview(monkeypatch):
    """docs/dashboard.md: unhealthy with any XID in the last 15 minutes. A GPU's first XID of a
    code creates the counter's series at 1, an increase that increase() cannot see (issue 15: an
    XID 48 never showed in 15 minutes). Shown by the overview's own query and by the recording
    rule it reads on large fleets, and counted in the errors colour."""
    import dashboard.definitions as definitions

    end = T0 + (STEPS - 1) * STEP
    computed, _ = view(store=fleet_store(first_xid=True))
    assert computed.kpis.gpus_unhealthy == 1 and computed.heatmap.unhealthy == [[3, 5]]
    errors, _ = view("errors", fleet_store(first_xid=True))
    assert errors.heatmap.z[3][5] == 1
    store = fleet_store(first_xid=True)
    evaluate_dashboard_rules(store, end)
    monkeypatch.setattr(definitions, "RECORDED_UNHEALTHY_FROM_NODES", 1)
    recorded = overview(DashboardContext(query=LocalQueryClient(Engine(store)), clock=lambda: end),
                        TimeRange(end - 900, end))
    assert recorded.kpis.gpus_unhealthy == 1 and recorded.heatmap.unhealthy == [[3, 5]]


def test_gpu_samples_skip_series_without_a_node_or_a_gpu_index():
    from dashboard.promql import gpu_samples
    from tsdb.results import QueryResult

    result = QueryResult.of_vector([{"instance": "a", "gpu": "0"}, {"instance": "a", "gpu": "x"},
                                    {"gpu": "1"}, {"instance": "b", "gpu": "99"}, {"instance": "b", "gpu": "7"},
                                    {"instance": "", "gpu": "2"}], [1.0, 2.0, 3.0, 4.0, 0.0, 6.0], 10.0)
    samples = gpu_samples(result)
    assert (samples.nodes, list(samples.gpus), samples.values) == (["a", "b"], [0, 7], [1.0, 0.0])
    many = [{"instance": f"n{i}", "gpu": str(i % 9 * 10)} for i in range(100)]  # 70 and 80 are no GPU indices
    for _ in range(2):  # the engine's shared label sets: read once, then remembered
        shared = gpu_samples(QueryResult.of_vector(many, [float(i) for i in range(100)], 10.0, shared_labels=True))
        assert shared.values == [float(i) for i in range(100) if i % 9 < 7]
        assert list(shared.gpus) == [i % 9 * 10 for i in range(100) if i % 9 < 7]
    jobs = QueryResult.of_vector([{"instance": "a", "gpu": "0", "job_id": "7"}, {"instance": "a", "gpu": "1"}],
                                 [1.0, 1.0], 10.0)
    held = gpu_samples(jobs, "job_id")
    assert (held.nodes, list(held.gpus), held.values) == (["a"], [0], ["7"])
