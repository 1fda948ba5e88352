"""Every fault kind: what the node's exporter then serves, and what the scheduler face shows."""
from __future__ import annotations

import time

import pytest

from simulator.faults import FaultError
from simulator.fleet import ExporterHung, Fleet, NodeUnreachable
from tests.exporter.helpers import parse_exposition, sample, series
from tests.rawserver import outcome_in_a_thread

T0 = 1_800_000_000.0


@pytest.fixture
def fleet():
    fleet = Fleet(nodes=6, seed=3, speed=0, start=T0)
    fleet.advance(300)
    yield fleet
    fleet.stop()


def scrape(fleet: Fleet, node: str) -> dict:
    for simulated in fleet.nodes.values():
        simulated._collected_at = -1e9  # a new scrape, not one within the same real second
    return parse_exposition(fleet.render_metrics(node))


def busy_gpu(fleet: Fleet) -> tuple[str, int, int]:
    """(node, gpu, job id) of a GPU running a normally training job's process."""
    for job in fleet.scheduler.jobs.values():
        if job.state == "RUNNING" and job.behaviour == "train":
            node, gpus = next(iter(job.gpus.items()))
            return node, gpus[0], job.job_id
    raise AssertionError("no training job running")


def uuid_of(fleet: Fleet, node: str, gpu: int) -> str:
    return fleet.nodes[node].state.gpu(gpu).uuid


def job_state(fleet: Fleet, job_id: int) -> str:
    return next(j["job_state"] for j in fleet.squeue()["jobs"] if j["job_id"] == job_id)


def test_xid_79_gpu_falls_off_the_bus_and_crashes_its_job(fleet):
    node, gpu, job_id = busy_gpu(fleet)
    uuid = uuid_of(fleet, node, gpu)
    scrape(fleet, node)  # the exporter has seen the GPU before it falls off
    fleet.inject({"kind": "xid", "node": node, "gpu": gpu, "xid": 79})
    fleet.advance(30)
    samples = scrape(fleet, node)
    assert sample(samples, "gpu_up", gpu=gpu, uuid=uuid) == 0
    assert job_state(fleet, job_id) == "FAILED"
    assert fleet.ground_truth()["nodes"][fleet.node_names().index(node)]["gpus"][gpu]["healthy"] is False


def test_repeated_xids_are_each_counted(fleet):
    node, gpu, _ = busy_gpu(fleet)
    uuid = uuid_of(fleet, node, gpu)
    scrape(fleet, node)
    for _ in range(3):
        fleet.inject({"kind": "xid", "node": node, "gpu": gpu, "xid": 13})
    samples = _wait_for(fleet, node, lambda s: _xids(s, "13") >= 3)
    assert _xids(samples, "13") == 3
    assert sample(samples, "gpu_up", gpu=gpu, uuid=uuid) == 1  # an application XID leaves the GPU up


def _xids(samples: dict, code: str) -> float:
    return sum(v for (name, labels), v in samples.items() if name == "gpu_xid_errors_total" and dict(labels)["xid"] == code)


def _wait_for(fleet: Fleet, node: str, condition, tries: int = 50) -> dict:
    import time

    for _ in range(tries):
        samples = scrape(fleet, node)
        if condition(samples):
            return samples
        time.sleep(0.05)  # the XID thread delivers events asynchronously
    return samples


def test_uncorrectable_ecc_counts_retires_a_page_and_crashes_the_job(fleet):
    node, gpu, job_id = busy_gpu(fleet)
    uuid = uuid_of(fleet, node, gpu)
    fleet.inject({"kind": "ecc", "node": node, "gpu": gpu, "type": "uncorrected", "count": 2})
    samples = scrape(fleet, node)
    assert sample(samples, "gpu_ecc_errors_total", gpu=gpu, uuid=uuid, type="uncorrected", counter="volatile") == 2
    assert sample(samples, "gpu_retired_pages_pending", gpu=gpu, uuid=uuid) == 1
    assert job_state(fleet, job_id) == "FAILED"


def test_corrected_ecc_is_counted_and_harmless(fleet):
    node, gpu, job_id = busy_gpu(fleet)
    uuid = uuid_of(fleet, node, gpu)
    fleet.inject({"kind": "ecc", "node": node, "gpu": gpu, "type": "corrected", "count": 40})
    samples = scrape(fleet, node)
    assert sample(samples, "gpu_ecc_errors_total", gpu=gpu, uuid=uuid, type="corrected", counter="aggregate") == 40
    assert job_state(fleet, job_id) == "RUNNING"


@pytest.mark.parametrize(("state", "metric"), [("pending", "gpu_remapped_rows_pending"), ("failure", "gpu_remapped_rows_failure")])
def test_row_remap(fleet, state, metric):
    node, gpu, _ = busy_gpu(fleet)
    fleet.inject({"kind": "row_remap", "node": node, "gpu": gpu, "state": state})
    assert sample(scrape(fleet, node), metric, gpu=gpu, uuid=uuid_of(fleet, node, gpu)) == 1


def test_gpu_lost_vanishes_from_nvml_and_is_reported_down(fleet):
    node, gpu, job_id = busy_gpu(fleet)
    uuid = uuid_of(fleet, node, gpu)
    scrape(fleet, node)
    fault = fleet.inject({"kind": "gpu_lost", "node": node, "gpu": gpu})
    samples = scrape(fleet, node)
    assert sample(samples, "gpu_up", gpu=gpu, uuid=uuid) == 0
    assert len([s for s in series(samples, "gpu_up")]) == 8  # still reported, as down
    assert job_state(fleet, job_id) == "FAILED"
    assert fleet.clear(fault.id) == (200, "cleared")
    assert sample(scrape(fleet, node), "gpu_up", gpu=gpu, uuid=uuid) == 1


def test_thermal_fault_heats_the_gpu_and_throttles_its_clocks(fleet):
    node, gpu, _ = busy_gpu(fleet)
    uuid = uuid_of(fleet, node, gpu)
    before = scrape(fleet, node)
    fleet.inject({"kind": "thermal", "node": node, "gpu": gpu, "temperature": 95})
    fleet.advance(600)
    samples = scrape(fleet, node)
    assert sample(samples, "gpu_temperature_celsius", gpu=gpu, uuid=uuid) >= 90
    assert sample(samples, "gpu_clock_event_active", gpu=gpu, uuid=uuid, reason="sw_thermal_slowdown") == 1
    assert sample(samples, "gpu_sm_clock_hertz", gpu=gpu, uuid=uuid) < sample(before, "gpu_sm_clock_hertz", gpu=gpu, uuid=uuid)
    assert sample(samples, "gpu_clock_event_seconds_total", gpu=gpu, uuid=uuid, reason="sw_thermal_slowdown") > 0


def test_power_brake_holds_clocks_and_power_down(fleet):
    node, gpu, _ = busy_gpu(fleet)
    uuid = uuid_of(fleet, node, gpu)
    fleet.inject({"kind": "power", "node": node, "gpu": gpu})
    fleet.advance(60)
    samples = scrape(fleet, node)
    assert sample(samples, "gpu_clock_event_active", gpu=gpu, uuid=uuid, reason="hw_power_brake_slowdown") == 1
    assert sample(samples, "gpu_power_watts", gpu=gpu, uuid=uuid) <= 0.45 * 700 + 1


def test_nvlink_error_burst_grows_the_counters(fleet):
    node, gpu, _ = busy_gpu(fleet)
    uuid = uuid_of(fleet, node, gpu)
    fleet.inject({"kind": "nvlink_errors", "node": node, "gpu": gpu, "link": 3, "rate": 120})
    fleet.advance(120)
    first = sample(scrape(fleet, node), "gpu_nvlink_errors_total", gpu=gpu, uuid=uuid, type="replay")
    fleet.advance(120)
    samples = scrape(fleet, node)
    assert sample(samples, "gpu_nvlink_errors_total", gpu=gpu, uuid=uuid, type="replay") > first > 0
    assert sample(samples, "gpu_nvlink_link_errors_total", gpu=gpu, uuid=uuid, link=3, type="replay") > 0


def test_ib_link_down_and_back(fleet):
    node = fleet.node_names()[0]
    fault = fleet.inject({"kind": "ib_link_down", "node": node, "port": 2})
    fleet.advance(10)
    samples = scrape(fleet, node)
    assert sample(samples, "node_infiniband_state_id", device="mlx5_1", port="1") == 1
    assert sample(samples, "node_infiniband_link_downed_total", device="mlx5_1", port="1") == 1
    assert sample(samples, "node_infiniband_state_id", device="mlx5_0", port="1") == 4
    fleet.clear(fault.id)
    fleet.advance(10)
    assert sample(scrape(fleet, node), "node_infiniband_state_id", device="mlx5_1", port="1") == 4


def test_ib_flapping_counts_every_link_down(fleet):
    node = fleet.node_names()[1]
    fleet.inject({"kind": "ib_flapping", "node": node, "port": 1, "period": "2m"})
    fleet.advance(600)
    assert sample(scrape(fleet, node), "node_infiniband_link_downed_total", device="mlx5_0", port="1") >= 4


def test_ib_symbol_errors_accumulate(fleet):
    node = fleet.node_names()[2]
    fleet.inject({"kind": "ib_symbol_errors", "node": node, "port": 4, "rate": 600})
    fleet.advance(120)
    assert sample(scrape(fleet, node), "node_infiniband_symbol_error_total", device="mlx5_3", port="1") >= 1000


def test_node_down_stops_answering_and_slurm_marks_it(fleet):
    node, _, job_id = busy_gpu(fleet)
    fault = fleet.inject({"kind": "node_down", "node": node})
    with pytest.raises(NodeUnreachable):
        fleet.render_metrics(node)
    slurm_node = next(n for n in fleet.sinfo()["nodes"] if n["name"] == node)
    assert slurm_node["state"] == "down" and "NOT_RESPONDING" in slurm_node["state_flags"]
    assert job_state(fleet, job_id) in ("PENDING", "RUNNING")  # NODE_FAIL, requeued, maybe restarted
    assert node not in next(j for j in fleet.ground_truth()["jobs"] if j["job_id"] == job_id)["nodes"]
    fleet.clear(fault.id)
    fleet.render_metrics(node)
    assert next(n for n in fleet.sinfo()["nodes"] if n["name"] == node)["state"] != "down"


def test_exporter_hang(fleet):
    node = fleet.node_names()[3]
    fleet.inject({"kind": "exporter_hang", "node": node})
    with pytest.raises(ExporterHung):
        fleet.render_metrics(node)


def test_disk_full(fleet):
    node = fleet.node_names()[4]
    fleet.inject({"kind": "disk_full", "node": node, "mountpoint": "/"})
    samples = scrape(fleet, node)
    root = [s for s in series(samples, "node_filesystem_avail_bytes") if s["mountpoint"] == "/"][0]
    size = sample(samples, "node_filesystem_size_bytes", **root)
    assert sample(samples, "node_filesystem_avail_bytes", **root) / size < 0.01


def test_reboot_clears_what_a_reset_fixes(fleet):
    node, gpu, _ = busy_gpu(fleet)
    fleet.inject({"kind": "xid", "node": node, "gpu": gpu, "xid": 79})
    assert not fleet.nodes[node].gpu_ok(gpu)
    fleet.scontrol(["reboot", "ASAP", "nextstate=RESUME", "reason=xid79", node])
    fleet.advance(86400)  # long enough for every job on the node to end, then the reboot
    assert fleet.nodes[node].gpu_ok(gpu)
    sim_node = fleet.scheduler.nodes[node]
    assert not sim_node.drain and sim_node.rebooting_until is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "meteor", "node": "gpu-001"}, "kind"),
        ({"kind": "xid", "node": "gpu-999", "gpu": 0, "xid": 79}, "node"),
        ({"kind": "xid", "node": "gpu-001", "gpu": 8, "xid": 79}, "gpu"),
        ({"kind": "xid", "node": "gpu-001", "gpu": 0}, "xid"),
        ({"kind": "ib_link_down", "node": "gpu-001", "port": 0}, "port"),
        ({"kind": "thermal", "node": "gpu-001", "gpu": 0, "temperature": 400}, "temperature"),
        ({"kind": "xid", "node": "gpu-001", "gpu": 0, "xid": 79, "duration": "5m"}, "duration"),
        ({"kind": "node_down", "node": "gpu-001", "color": "red"}, "color"),
    ],
)
def test_bad_fault_requests_are_refused_with_the_field(fleet, body, message):
    with pytest.raises(FaultError) as raised:
        fleet.inject(body)
    assert str(raised.value).startswith(message)


def test_instantaneous_faults_cannot_be_cleared_and_lasting_ones_expire(fleet):
    xid = fleet.inject({"kind": "xid", "node": "gpu-001", "gpu": 0, "xid": 31})
    assert fleet.clear(xid.id)[0] == 409
    assert fleet.clear(9999)[0] == 404
    hot = fleet.inject({"kind": "thermal", "node": "gpu-002", "gpu": 1, "duration": "10m"})
    fleet.advance(700)
    assert fleet.faults.get(hot.id).cleared_by == "duration"


def test_driver_hang_is_nvml_down_with_the_rest_of_the_node_scraped_until_cleared(fleet):
    """Every NVML call on the GPU blocks (nvidia-smi stuck in D state): the real exporter code
    serves the node's other metrics and reports NVML down, and its job hangs."""
    node, gpu, job_id = busy_gpu(fleet)
    scrape(fleet, node)  # the exporter has seen its GPUs (one started on a hung driver knows of none)
    fault = fleet.inject({"kind": "driver_hang", "node": node, "gpu": gpu})
    try:
        hung = outcome_in_a_thread(lambda: scrape(fleet, node))
        assert hung, "a hung driver froze the node's scrape"
        assert sample(hung[0], "clusterwatch_exporter_nvml_up") == 0
        assert {sample(hung[0], "gpu_up", **labels) for labels in series(hung[0], "gpu_up")} == {0}
        assert series(hung[0], "node_load1") and not series(hung[0], "gpu_temperature_celsius")
        fleet.advance(600)
        assert job_state(fleet, job_id) == "RUNNING"  # hung, not ended: no rank exits
    finally:
        assert fleet.clear(fault.id)[0] == 200
    deadline = time.monotonic() + 60  # the call in flight returns, then collections call NVML again
    while sample(scrape(fleet, node), "clusterwatch_exporter_nvml_up") != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    recovered = scrape(fleet, node)
    assert {sample(recovered, "gpu_up", **labels) for labels in series(recovered, "gpu_up")} == {1}
