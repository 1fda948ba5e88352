"""A GPU the driver hangs on must not freeze the node's exporter.

On a GPU in a bad state NVML calls can block for minutes or for good (nvidia-smi stuck in D state:
NVIDIA/gpu-monitoring-tools#46, where dcgm-exporter "simply stops reporting metrics"). Observed
before: the collection ran every collector on one thread, so one hung call stopped the whole
node's collection, host, InfiniBand and disk metrics included; the exporter went on serving its
last snapshot, and only ExporterCollectionStale, four minutes later, said anything was wrong.
Now the NVML collectors run on a lane of their own that the collection waits for up to
``nvml_timeout``: past it the node's other metrics are served fresh, and NVML is reported down
(``clusterwatch_exporter_nvml_up 0``, every GPU ``gpu_up 0``), so NvmlDown can drain the node."""
from __future__ import annotations

import threading
import time

from exporter.build import create_exporter
from exporter.collector import default_collectors
from exporter.config import ExporterConfig
from exporter.exporter import Exporter
from simulator.fleet import Fleet
from tests.rawserver import outcome_in_a_thread
from tsdb.exposition import parse_exposition

T0 = 1_760_000_000.0


def node_exporter(nvml_timeout: float) -> tuple[Exporter, object]:
    fleet = Fleet(nodes=1, seed=1, speed=0, start=T0, warm=False)
    node = next(iter(fleet.nodes.values()))
    config = ExporterConfig(backend="fake", collectors=default_collectors(), nvml_timeout=nvml_timeout)
    exporter = create_exporter(config, nvml_module=node.nvml, procfs=node.procfs, sysfs=node.sysfs,
                               statvfs=node.host.statvfs, clock=lambda: T0)
    return exporter, node


def values(exporter: Exporter, name: str) -> list[float]:
    collection = outcome_in_a_thread(exporter.collect_once)
    assert collection, "the collection did not come back"
    samples = parse_exposition(collection[0].text.decode()).samples
    return [value for sample_name, _, value, _ in samples if sample_name == name]


def test_a_hung_gpu_leaves_the_rest_of_the_node_collected_and_reports_nvml_down() -> None:
    # Far longer than 8 fake GPUs take on the busiest machine: only the hung call reaches it.
    exporter, node = node_exporter(nvml_timeout=5.0)
    release = threading.Event()
    try:
        assert values(exporter, "gpu_up") == [1.0] * 8
        node.state.gpu(3).hang = release
        for _ in range(2):  # the first collection waits out the timeout, the next one does not call NVML again
            collection = outcome_in_a_thread(exporter.collect_once)
            assert collection, "a hung GPU froze the collection"
            samples = parse_exposition(collection[0].text.decode()).samples
            seen = {name: [value for n, _, value, _ in samples if n == name] for name, *_ in samples}
            assert seen["clusterwatch_exporter_nvml_up"] == [0.0]
            assert seen["gpu_up"] == [0.0] * 8
            assert seen["clusterwatch_exporter_nvml_stuck_seconds"][0] > 0
            assert seen["node_load1"] and seen["node_memory_MemAvailable_bytes"]
            assert "gpu_temperature_celsius" not in seen
        release.set()
        node.state.gpu(3).hang = None
        deadline = time.monotonic() + 60  # the call in flight returns; then collections call NVML again
        while values(exporter, "clusterwatch_exporter_nvml_up") != [1.0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert values(exporter, "gpu_up") == [1.0] * 8
        assert values(exporter, "clusterwatch_exporter_nvml_stuck_seconds") == [0.0]
    finally:
        release.set()
        exporter.close()
