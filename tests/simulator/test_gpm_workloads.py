"""The simulator drives the fake NVML's GPM levels from the workload (issue 18 part 1): a
tensor-heavy training job, a memory-bound job and an idle-but-allocated one read differently
through the exporter's gpm collector."""
from __future__ import annotations

import types

import pytest

from exporter.collector import CollectorContext
from exporter.collectors.gpm import GpmCollector
from exporter.nvml.fake import FakeNVML, FakeState
from exporter.nvml.session import NvmlSession
from simulator.activity import gpu_activity
from simulator.gpu_model import gpm_levels
from simulator.jobs import IDLE, RUNNING, TRAIN, SimJob
from tests.exporter.helpers import parse_exposition, render, sample

T0 = 1_800_000_000.0


def job(job_id: int, name: str, behaviour: str = TRAIN) -> SimJob:
    return SimJob(job_id=job_id, name=name, user="alice", account="research", partition="gpu", gpus_per_node=8,
                  num_nodes=1, time_limit=86_400, submit_time=T0 - 100, run_seconds=50_000, behaviour=behaviour,
                  state=RUNNING, start_time=T0, gpus={"n1": list(range(8))})


def exported(jobs: dict[int, SimJob], at: float) -> dict[str, dict[str, float]]:
    """The gpm collector's ratios per GPU after one 5 s interval of each job's activity."""
    state = FakeState.h100_node(gpus=len(jobs))
    clock = types.SimpleNamespace(now=0.0)
    state.clock = lambda: clock.now
    session = NvmlSession(FakeNVML(state))
    collector = GpmCollector(CollectorContext(config=types.SimpleNamespace(interval=5.0), procfs=None, sysfs=None,
                                              nvml=session))
    for index, sim_job in jobs.items():
        state.set_gpm(index, gpm_levels(gpu_activity(sim_job, "n1", index, at, seed=1)))
    session.refresh()
    collector.collect()
    clock.now += 5.0
    samples = parse_exposition(render(collector.collect()))
    return {
        name: {sim_job.name: sample(samples, f"gpu_{name}_ratio", gpu=str(i), uuid=state.gpu(i).uuid)
               for i, sim_job in jobs.items()}
        for name in ("sm_active", "tensor_active", "dram_active", "fp64_active")
    }


def test_training_memory_bound_and_idle_jobs_read_as_operators_expect() -> None:
    at = T0 + 1000  # past start-up, before the first checkpoint
    ratios = exported({0: job(1, "llama-70b-pretrain"), 1: job(2, "eval-harness"), 2: job(3, "notebook", IDLE)}, at)
    sm, tensor, dram = ratios["sm_active"], ratios["tensor_active"], ratios["dram_active"]
    assert tensor["llama-70b-pretrain"] > 0.5 and tensor["llama-70b-pretrain"] > dram["llama-70b-pretrain"]
    assert dram["eval-harness"] > 0.7 and dram["eval-harness"] > 5 * tensor["eval-harness"]
    assert sm["notebook"] < 0.02 and tensor["notebook"] < 0.02  # allocated, idle: ~0, yet exported
    assert set(ratios["fp64_active"].values()) == {0.0}


def test_nvlink_traffic_only_for_jobs_spanning_several_gpus() -> None:
    at = T0 + 1000
    multi = gpm_levels(gpu_activity(job(1, "llama-70b-pretrain"), "n1", 0, at, seed=1))
    single_job = job(2, "llama-70b-pretrain")
    single_job.gpus_per_node = 1
    single = gpm_levels(gpu_activity(single_job, "n1", 0, at, seed=1))
    import pynvml

    rx = pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC
    assert multi[rx] > 10_000 and single[rx] == 0  # MiB/s


def test_a_simulated_node_exports_gpm_series_from_its_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.fleet import Fleet

    fleet = Fleet(nodes=4, seed=3, speed=0, start=T0)
    try:
        fleet.advance(900)
        node = fleet.node_names()[0]
        fleet.render_metrics(node)
        fleet.advance(30)
        samples = parse_exposition(fleet.render_metrics(node))
    finally:
        fleet.stop()
    supported = [v for (name, _), v in samples.items() if name == "gpu_gpm_supported"]
    assert supported and set(supported) == {1.0}
    util = {dict(labels)["gpu"]: v for (name, labels), v in samples.items() if name == "gpu_utilization_ratio"}
    active = {dict(labels)["gpu"]: v for (name, labels), v in samples.items() if name == "gpu_sm_active_ratio"}
    assert set(active) == set(util)
    # The pair spans the simulated 30 s, so SM activity follows the GPU's load over it.
    assert any(v > 0.8 for v in util.values())
    for gpu, busy in util.items():
        assert active[gpu] == pytest.approx(0.93 * busy, abs=0.1), gpu


@pytest.mark.parametrize("profile", ["tensor", "memory"])
def test_levels_scale_with_utilization(profile: str) -> None:
    from simulator.activity import GpuActivity

    busy = gpm_levels(GpuActivity(utilization=1.0, profile=profile))
    half = gpm_levels(GpuActivity(utilization=0.5, profile=profile))
    assert all(half[m] == pytest.approx(busy[m] / 2) for m in busy)
    assert all(0 <= v <= 100 for v in busy.values())
