"""The GPU collector as an operator sees it: the exposition for a fake H100 node, and its failures."""
from __future__ import annotations

import types

import pynvml
import pytest

from exporter.collector import CollectorContext
from exporter.collectors.gpu import GpuCollector
from exporter.nvml.fake import GIB, FakeMigInstance, FakeState
from tests.exporter.helpers import FakeGpuNode, parse_exposition, render, sample, series


def Node(state: FakeState) -> FakeGpuNode:  # noqa: N802 - reads as the node it builds
    return FakeGpuNode(state, GpuCollector, errors_of="gpu")


@pytest.fixture
def node() -> FakeGpuNode:
    return Node(FakeState.h100_node(gpus=8, seed=7))


def uuid(node: FakeGpuNode, index: int) -> str:
    return node.state.gpu(index).uuid


def test_every_gpu_is_exposed_in_base_units(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(3)
    gpu.utilization_gpu, gpu.utilization_memory = 87, 41
    gpu.memory_used, gpu.power_mw, gpu.energy_mj = 60 * GIB, 512_345, 7_000_000
    gpu.clock_sm_mhz, gpu.pcie_tx_kbps, gpu.temperature_gpu, gpu.temperature_memory = 1980, 2_000, 64, 71
    samples = node.scrape()
    labels = {"gpu": "3", "uuid": gpu.uuid}
    assert len(series(samples, "gpu_up")) == 8
    assert sample(samples, "gpu_up", **labels) == 1
    assert sample(samples, "gpu_utilization_ratio", **labels) == 0.87
    assert sample(samples, "gpu_memory_copy_utilization_ratio", **labels) == 0.41
    assert sample(samples, "gpu_memory_used_bytes", **labels) == 60 * GIB
    assert sample(samples, "gpu_memory_free_bytes", **labels) == 20 * GIB
    assert sample(samples, "gpu_memory_total_bytes", **labels) == 80 * GIB
    assert sample(samples, "gpu_power_watts", **labels) == pytest.approx(512.345)
    assert sample(samples, "gpu_power_limit_watts", **labels) == 700
    assert sample(samples, "gpu_energy_joules_total", **labels) == 7000
    assert sample(samples, "gpu_sm_clock_hertz", **labels) == 1.98e9
    assert sample(samples, "gpu_sm_clock_max_hertz", **labels) == 1.98e9
    assert sample(samples, "gpu_memory_clock_max_hertz", **labels) == 2.619e9
    assert sample(samples, "gpu_pcie_transmit_bytes_per_second", **labels) == 2_048_000
    assert sample(samples, "gpu_pcie_link_generation", **labels) == 5
    assert sample(samples, "gpu_pcie_link_width_max", **labels) == 16
    assert sample(samples, "gpu_temperature_celsius", **labels) == 64
    assert sample(samples, "gpu_memory_temperature_celsius", **labels) == 71
    assert sample(samples, "gpu_persistence_mode", **labels) == 1
    assert sample(samples, "gpu_performance_state", **labels) == 0
    assert sample(samples, "clusterwatch_exporter_nvml_up") == 1
    assert node.errors() == 0


def test_gpu_info_carries_identity(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(0)
    info = series(node.scrape(), "gpu_info")[0]
    assert info == {
        "gpu": "0", "uuid": gpu.uuid, "model_name": "NVIDIA H100 80GB HBM3", "serial": gpu.serial,
        "driver_version": "550.90.07", "vbios_version": "96.00.99.00.01", "pci_bus_id": "00000000:18:00.0",
        "cuda_version": "12.4",
    }


def test_error_counters_have_their_labels(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(1)
    gpu.ecc_sbe_volatile, gpu.ecc_dbe_aggregate, gpu.pcie_replay = 12, 1, 9
    gpu.remapped_uncorrectable, gpu.remap_pending = 2, True
    samples = node.scrape()
    labels = {"gpu": "1", "uuid": gpu.uuid}
    assert sample(samples, "gpu_ecc_errors_total", type="corrected", counter="volatile", **labels) == 12
    assert sample(samples, "gpu_ecc_errors_total", type="uncorrected", counter="aggregate", **labels) == 1
    assert sample(samples, "gpu_pcie_replay_total", **labels) == 9
    assert sample(samples, "gpu_remapped_rows", type="uncorrectable", **labels) == 2
    assert sample(samples, "gpu_remapped_rows_pending", **labels) == 1
    assert sample(samples, "gpu_remapped_rows_failure", **labels) == 0
    assert sample(samples, "gpu_retired_pages", cause="double_bit", **labels) == 0


def test_nvlink_state_and_errors_per_gpu_and_for_the_bad_links(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(2)
    gpu.nvlinks[5].up = False
    gpu.nvlinks[5].replay, gpu.nvlinks[5].crc_data, gpu.nvlinks[15].crc_flit = 4, 2, 30
    gpu.nvlinks[7].replay = 1
    samples = node.scrape()
    labels = {"gpu": "2", "uuid": gpu.uuid}
    assert sample(samples, "gpu_nvlink_links", **labels) == 18
    assert sample(samples, "gpu_nvlink_links_active", **labels) == 17
    assert sample(samples, "gpu_nvlink_link_down", link="5", **labels) == 1
    assert [s["link"] for s in series(samples, "gpu_nvlink_link_down")] == ["5"]  # healthy links add no series
    assert sample(samples, "gpu_nvlink_errors_total", type="replay", **labels) == 5
    assert sample(samples, "gpu_nvlink_errors_total", type="crc_data", **labels) == 2
    assert sample(samples, "gpu_nvlink_errors_total", type="crc_flit", **labels) == 30
    assert sample(samples, "gpu_nvlink_errors_total", type="recovery", **labels) == 0
    # One series per GPU with every type's errors, the one a rule over the whole fleet reads.
    assert sample(samples, "gpu_nvlink_errors_all_types_total", **labels) == 5 + 2 + 30
    # The bad links are named; links without errors are not.
    assert sample(samples, "gpu_nvlink_link_errors_total", link="5", type="replay", **labels) == 4
    assert sample(samples, "gpu_nvlink_link_errors_total", link="15", type="crc_flit", **labels) == 30
    assert {s["link"] for s in series(samples, "gpu_nvlink_link_errors_total") if s["gpu"] == "2"} == {"5", "7", "15"}
    # Healthy GPUs: totals at zero, no per-link series.
    other = {"gpu": "0", "uuid": node.state.gpu(0).uuid}
    assert sample(samples, "gpu_nvlink_errors_total", type="replay", **other) == 0
    assert sample(samples, "gpu_nvlink_errors_all_types_total", **other) == 0
    assert not [s for s in series(samples, "gpu_nvlink_link_errors_total") if s["gpu"] == "0"]


def test_recovery_action_is_a_code_with_its_name(node: FakeGpuNode) -> None:
    node.state.gpu(4).recovery_action = pynvml.NVML_GPU_RECOVERY_ACTION_DRAIN_AND_RESET
    samples = node.scrape()
    assert sample(samples, "gpu_recovery_action", gpu="4", uuid=uuid(node, 4), action="drain_and_reset") == 4
    assert sample(samples, "gpu_recovery_action", gpu="0", uuid=uuid(node, 0), action="none") == 0


def test_lost_gpu_is_down_and_its_series_dropped_others_unaffected(node: FakeGpuNode) -> None:
    node.scrape()
    node.state.gpu(5).lost = True
    samples = node.scrape()
    lost = uuid(node, 5)
    assert sample(samples, "gpu_up", gpu="5", uuid=lost) == 0
    assert [name for name, labels in samples if dict(labels).get("uuid") == lost] == ["gpu_up"]
    assert len([s for s in series(samples, "gpu_up") if s["uuid"] != lost]) == 7
    assert all(sample(samples, "gpu_up", gpu=str(i), uuid=uuid(node, i)) == 1 for i in range(8) if i != 5)
    assert len(series(samples, "gpu_utilization_ratio")) == 7
    assert node.errors() == 0
    # still down in later cycles, not vanished
    assert sample(node.scrape(), "gpu_up", gpu="5", uuid=lost) == 0


def test_gpu_lost_in_the_middle_of_a_cycle_drops_its_partial_series(node: FakeGpuNode) -> None:
    node.scrape()
    node.state.gpu(6).failing["nvmlDeviceGetPcieThroughput"] = pynvml.NVML_ERROR_GPU_IS_LOST
    samples = node.scrape()
    lost = uuid(node, 6)
    assert sample(samples, "gpu_up", gpu="6", uuid=lost) == 0
    assert [name for name, labels in samples if dict(labels).get("uuid") == lost] == ["gpu_up"]
    assert len(series(samples, "gpu_info")) == 7


def test_gpu_gone_from_the_bus_is_down_with_its_last_uuid(node: FakeGpuNode) -> None:
    node.scrape()
    node.state.gpu(2).absent = True
    samples = node.scrape()
    assert sample(samples, "gpu_up", gpu="2", uuid=uuid(node, 2)) == 0
    assert len(series(samples, "gpu_info")) == 7
    # the GPUs after it keep their uuids (NVML renumbers them, as after a re-enumeration)
    assert sample(samples, "gpu_up", gpu="2", uuid=uuid(node, 3)) == 1


def test_not_supported_omits_only_that_metric_and_is_no_error(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(0)
    gpu.unsupported |= {"nvmlDeviceGetFanSpeed", "NVML_FI_DEV_GET_GPU_RECOVERY_ACTION"}
    samples = node.scrape()
    assert len(series(samples, "gpu_fan_speed_ratio")) == 7
    assert len(series(samples, "gpu_recovery_action")) == 7
    assert sample(samples, "gpu_power_watts", gpu="0", uuid=gpu.uuid) > 0
    assert node.errors() == 0


def test_other_nvml_errors_omit_the_metric_and_are_counted(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(1)
    gpu.failing["nvmlDeviceGetPowerUsage"] = pynvml.NVML_ERROR_NO_PERMISSION
    gpu.failing["NVML_FI_DEV_MEMORY_TEMP"] = pynvml.NVML_ERROR_UNKNOWN
    samples = node.scrape()
    assert len(series(samples, "gpu_power_watts")) == 7
    assert len(series(samples, "gpu_memory_temperature_celsius")) == 7
    assert sample(samples, "gpu_up", gpu="1", uuid=gpu.uuid) == 1
    assert node.errors() == 2


def test_nvml_library_missing_reports_nvml_down_and_no_gpus() -> None:
    state = FakeState.h100_node(gpus=8)
    state.library_missing = True
    node = Node(state)
    samples = node.scrape()
    assert sample(samples, "clusterwatch_exporter_nvml_up") == 0
    assert series(samples, "gpu_up") == []
    state.library_missing = False
    samples = node.scrape(advance=5)
    assert sample(samples, "clusterwatch_exporter_nvml_up") == 1
    assert len(series(samples, "gpu_up")) == 8


def test_without_a_session_only_nvml_up_is_exposed() -> None:
    ctx = CollectorContext(config=types.SimpleNamespace(interval=5.0), procfs=None, sysfs=None, nvml=None)
    samples = parse_exposition(render(GpuCollector(ctx).collect()))
    assert samples == {("clusterwatch_exporter_nvml_up", frozenset()): 0}


def test_busy_seconds_integrate_utilization_between_cycles(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(0)
    labels = {"gpu": "0", "uuid": gpu.uuid}
    gpu.utilization_gpu = 100
    assert sample(node.scrape(), "gpu_busy_seconds_total", **labels) == 0
    assert sample(node.scrape(advance=10), "gpu_busy_seconds_total", **labels) == 10
    gpu.utilization_gpu = 0
    # trapezoid: the level went from 1 to 0 over these 10 s
    assert sample(node.scrape(advance=10), "gpu_busy_seconds_total", **labels) == 15
    assert sample(node.scrape(advance=10), "gpu_busy_seconds_total", **labels) == 15


def test_clock_events_use_driver_durations_else_integrate_the_bitmask(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(0)
    labels = {"gpu": "0", "uuid": gpu.uuid}
    gpu.clock_event_reasons = pynvml.nvmlClocksEventReasonSwPowerCap | pynvml.nvmlClocksEventReasonHwSlowdown
    gpu.clock_event_ns = {pynvml.nvmlClocksEventReasonSwPowerCap: 42_500_000_000}
    node.scrape()
    samples = node.scrape(advance=5)
    assert sample(samples, "gpu_clock_event_active", reason="sw_power_cap", **labels) == 1
    assert sample(samples, "gpu_clock_event_active", reason="gpu_idle", **labels) == 0
    assert sample(samples, "gpu_clock_event_seconds_total", reason="sw_power_cap", **labels) == 42.5
    # hw_slowdown has no duration field: integrated by the exporter over the 5 s between cycles
    assert sample(samples, "gpu_clock_event_seconds_total", reason="hw_slowdown", **labels) == 5


def test_clock_event_classes_sum_their_reasons_per_gpu(node: FakeGpuNode) -> None:
    """What GpuThermalThrottling and GpuPowerThrottling read: one series per GPU and class."""
    gpu = node.state.gpu(0)
    labels = {"gpu": "0", "uuid": gpu.uuid}
    gpu.clock_event_reasons = pynvml.nvmlClocksEventReasonHwSlowdown | pynvml.nvmlClocksEventReasonSwPowerCap
    gpu.clock_event_ns = {pynvml.nvmlClocksEventReasonHwThermalSlowdown: 3_000_000_000,
                          pynvml.nvmlClocksEventReasonSwThermalSlowdown: 4_000_000_000,
                          pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown: 2_000_000_000}
    node.scrape()
    samples = node.scrape(advance=5)
    assert sample(samples, "gpu_clock_event_class_seconds_total", **{"class": "thermal"}, **labels) == 7
    # hw_slowdown integrated (5 s) plus the driver's power-brake duration; the software power cap is not in it
    assert sample(samples, "gpu_clock_event_class_seconds_total", **{"class": "power_brake"}, **labels) == 7
    assert {s["class"] for s in series(samples, "gpu_clock_event_class_seconds_total")} == {"thermal", "power_brake"}


def test_clock_events_are_integrated_on_drivers_without_duration_fields(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(0)
    gpu.unsupported.add("NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN")
    gpu.clock_event_reasons = pynvml.nvmlClocksEventReasonSwThermalSlowdown
    node.scrape()
    samples = node.scrape(advance=4)
    assert sample(samples, "gpu_clock_event_seconds_total", gpu="0", uuid=gpu.uuid, reason="sw_thermal_slowdown") == 4
    assert node.errors() == 0


def test_mig_instances_are_exposed_with_their_ids(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(7)
    gpu.mig_mode = True
    gpu.mig_instances = [
        FakeMigInstance(1, 0, "MIG-11111111-2222-3333-4444-555555555555", "3g.40gb", 40 * GIB, 10 * GIB),
        FakeMigInstance(2, 0, "MIG-66666666-2222-3333-4444-555555555555", "3g.40gb", 40 * GIB),
    ]
    samples = node.scrape()
    labels = {"gpu": "7", "uuid": gpu.uuid}
    assert sample(samples, "gpu_mig_mode", **labels) == 1
    assert sample(samples, "gpu_mig_mode", gpu="0", uuid=uuid(node, 0)) == 0
    ids = {"gpu_instance_id": "1", "compute_instance_id": "0"}
    assert sample(samples, "gpu_mig_info", mig_uuid=gpu.mig_instances[0].uuid, profile="3g.40gb", **ids, **labels) == 1
    assert sample(samples, "gpu_mig_memory_used_bytes", **ids, **labels) == 10 * GIB
    assert len(series(samples, "gpu_mig_memory_total_bytes")) == 2


def test_exposition_is_valid_prometheus_text(node: FakeGpuNode) -> None:
    node.session.refresh()
    text = render(node.collectors[0].collect())
    assert "# TYPE gpu_energy_joules_total counter" in text
    assert "# TYPE gpu_nvlink_errors_total counter" in text
    assert "# TYPE gpu_utilization_ratio gauge" in text


def test_every_family_documents_its_source() -> None:
    from exporter.collectors.gpu import GPU_METRICS

    assert all(spec.source for spec in GPU_METRICS.values())
    assert all(spec.unit for name, spec in GPU_METRICS.items() if name.endswith(("_bytes", "_seconds_total", "_hertz", "_celsius", "_watts", "_joules_total", "_ratio")))


def test_nvlink_totals_fall_back_to_the_links_where_the_driver_lacks_them(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(1)
    gpu.unsupported |= {"NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL"}
    gpu.nvlinks[2].replay, gpu.nvlinks[9].replay = 3, 4
    samples = node.scrape()
    labels = {"gpu": "1", "uuid": gpu.uuid}
    assert sample(samples, "gpu_nvlink_errors_total", type="replay", **labels) == 7
    assert sample(samples, "gpu_nvlink_link_errors_total", link="9", type="replay", **labels) == 4
