"""XIDs are never lost in the simulator: not before a node's first scrape, not across an exporter restart.

Finding 13 of issue 14: an XID injected before the node's exporter first ran was recorded in
/api/fleet but never appeared in the node's metrics. Each simulated node now keeps a kernel log
the fake driver writes its ``NVRM: Xid`` lines to, and the exporter recovers from it at start
what NVML could not deliver, exactly as on a real node.
"""
from __future__ import annotations

import time

import pytest

from simulator.fleet import Fleet
from tests.exporter.helpers import Samples, parse_exposition

T0 = 1_800_000_000.0


@pytest.fixture
def fleet():
    fleet = Fleet(nodes=4, seed=7, speed=0, start=T0)
    fleet.advance(300)
    yield fleet
    fleet.stop()


def scrape(fleet: Fleet, node: str) -> Samples:
    return parse_exposition(fleet.render_metrics(node))


def xid_series(samples: Samples) -> dict[tuple[str, str, str], float]:
    """{(gpu, uuid, xid): count} of gpu_xid_errors_total."""
    return {(dict(labels)["gpu"], dict(labels)["uuid"], dict(labels)["xid"]): value
            for (name, labels), value in samples.items() if name == "gpu_xid_errors_total"}


def wait_for(fleet: Fleet, node: str, condition, timeout: float = 20.0) -> Samples:
    """Scrape until ``condition`` holds: NVML events reach the watcher thread asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(fleet, node)
        if condition(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def uuid_of(fleet: Fleet, node: str, gpu: int) -> str:
    return fleet.nodes[node].state.gpu(gpu).uuid


def test_an_xid_injected_before_the_first_scrape_is_in_the_first_scrape(fleet):
    node = fleet.node_names()[0]
    fleet.inject({"kind": "xid", "node": node, "gpu": 2, "xid": 13})
    fleet.inject({"kind": "xid", "node": node, "gpu": 2, "xid": 13})
    fleet.inject({"kind": "xid", "node": node, "gpu": 5, "xid": 31})
    assert xid_series(scrape(fleet, node)) == {
        ("2", uuid_of(fleet, node, 2), "13"): 2,
        ("5", uuid_of(fleet, node, 5), "31"): 1,
    }


def test_an_xid_79_before_the_first_scrape_is_counted_on_the_gpu_that_fell_off(fleet):
    """The GPU is lost, so NVML cannot name it: the driver's own "GPU at PCI" line does."""
    node = fleet.node_names()[1]
    fleet.inject({"kind": "xid", "node": node, "gpu": 4, "xid": 79})
    samples = scrape(fleet, node)
    assert xid_series(samples) == {("", uuid_of(fleet, node, 4), "79"): 1}
    truth = next(n for n in fleet.ground_truth()["nodes"] if n["name"] == node)
    assert truth["gpus"][4]["lost"] is True


def test_a_restarted_exporter_counts_each_xid_since_boot_once(fleet):
    node = fleet.node_names()[2]
    uuid = uuid_of(fleet, node, 1)
    fleet.inject({"kind": "xid", "node": node, "gpu": 1, "xid": 13})  # before the exporter ran
    assert xid_series(scrape(fleet, node)) == {("1", uuid, "13"): 1}
    fleet.inject({"kind": "xid", "node": node, "gpu": 1, "xid": 13})  # delivered by NVML (and logged)
    assert xid_series(wait_for(fleet, node, lambda s: xid_series(s).get(("1", uuid, "13")) == 2)) == {("1", uuid, "13"): 2}

    fleet.inject({"kind": "exporter_restart", "node": node})
    fleet.inject({"kind": "xid", "node": node, "gpu": 1, "xid": 31})  # while the exporter is down
    # The counter a restarted exporter serves continues where the old one stopped, plus what it missed.
    assert xid_series(scrape(fleet, node)) == {("1", uuid, "13"): 2, ("1", uuid, "31"): 1}
    fleet.inject({"kind": "xid", "node": node, "gpu": 1, "xid": 31})
    samples = wait_for(fleet, node, lambda s: xid_series(s).get(("1", uuid, "31")) == 2)
    assert xid_series(samples) == {("1", uuid, "13"): 2, ("1", uuid, "31"): 2}


def test_a_reboot_starts_a_new_kernel_log(fleet):
    node = fleet.node_names()[3]
    fleet.inject({"kind": "xid", "node": node, "gpu": 0, "xid": 79})
    assert xid_series(scrape(fleet, node)) == {("", uuid_of(fleet, node, 0), "79"): 1}
    fleet.scontrol(["reboot", "ASAP", "nextstate=RESUME", "reason=xid79", node])
    for _ in range(14):  # every job on the node ends (within its time limit), then it reboots
        if fleet.nodes[node].gpu_ok(0):
            break
        fleet.advance(86400)
    assert fleet.nodes[node].gpu_ok(0)
    samples = scrape(fleet, node)
    assert xid_series(samples) == {}  # what the last boot logged is gone with it, as on a real node
    assert samples[("clusterwatch_exporter_xid_recovery_complete", frozenset())] == 1
