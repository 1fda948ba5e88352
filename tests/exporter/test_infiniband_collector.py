"""InfiniBand collector on four mlx5 HCAs: node_exporter's names, data in bytes, every error counter."""
from __future__ import annotations

from pathlib import Path

import pytest

from exporter.collector import CollectorContext, NoDataError
from exporter.collectors.infiniband import HW_COUNTERS, PORT_COUNTERS, InfiniBandCollector, family_name
from exporter.config import ExporterConfig
from exporter.hostfs import HostFS, MemoryFS
from tests.exporter.helpers import parse_exposition, render, sample, series

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SYS = FIXTURES / "node" / "sys" / "class" / "infiniband"


def scrape(sysfs) -> tuple[dict, CollectorContext]:
    ctx = CollectorContext(ExporterConfig(), MemoryFS(), sysfs)
    return parse_exposition(render(InfiniBandCollector(ctx).collect())), ctx


def counter_file(device: str, name: str, directory: str = "counters") -> int:
    return int((SYS / device / "ports" / "1" / directory / name).read_text())


def test_state_rate_and_identity_of_each_port() -> None:
    samples, ctx = scrape(HostFS(FIXTURES / "node" / "sys"))
    assert {(s["device"], s["port"]) for s in series(samples, "node_infiniband_state_id")} == {
        (f"mlx5_{i}", "1") for i in range(4)}
    assert sample(samples, "node_infiniband_state_id", device="mlx5_0", port="1") == 4
    assert sample(samples, "node_infiniband_physical_state_id", device="mlx5_0", port="1") == 5
    assert sample(samples, "node_infiniband_rate_bytes_per_second", device="mlx5_0", port="1") == 50e9  # 400 Gb/s
    assert sample(samples, "node_infiniband_state_id", device="mlx5_3", port="1") == 1  # DOWN
    assert sample(samples, "node_infiniband_physical_state_id", device="mlx5_3", port="1") == 2  # Polling
    assert sample(samples, "node_infiniband_info", device="mlx5_2", board_id="MT_0000000838",
                  firmware_version="28.39.1002", hca_type="MT4129") == 1
    assert ctx.errors.counts() == {}


def test_data_counters_are_four_byte_words() -> None:
    samples, _ = scrape(HostFS(FIXTURES / "node" / "sys"))
    for device in ("mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"):
        assert sample(samples, "node_infiniband_port_data_received_bytes_total", device=device, port="1") == \
            4 * counter_file(device, "port_rcv_data")
        assert sample(samples, "node_infiniband_port_data_transmitted_bytes_total", device=device, port="1") == \
            4 * counter_file(device, "port_xmit_data")
    assert sample(samples, "node_infiniband_port_packets_received_total", device="mlx5_1", port="1") == \
        counter_file("mlx5_1", "port_rcv_packets")
    assert sample(samples, "node_infiniband_unicast_packets_transmitted_total", device="mlx5_1", port="1") == \
        counter_file("mlx5_1", "unicast_xmit_packets")


@pytest.mark.parametrize("file,name", [
    ("symbol_error", "node_infiniband_symbol_error_total"),
    ("link_downed", "node_infiniband_link_downed_total"),
    ("link_error_recovery", "node_infiniband_link_error_recovery_total"),
    ("port_rcv_errors", "node_infiniband_port_errors_received_total"),
    ("local_link_integrity_errors", "node_infiniband_local_link_integrity_errors_total"),
    ("excessive_buffer_overrun_errors", "node_infiniband_excessive_buffer_overrun_errors_total"),
    ("port_xmit_discards", "node_infiniband_port_discards_transmitted_total"),
    ("port_xmit_wait", "node_infiniband_port_transmit_wait_total"),
    ("port_rcv_remote_physical_errors", "node_infiniband_port_receive_remote_physical_errors_total"),
    ("port_rcv_switch_relay_errors", "node_infiniband_port_receive_switch_relay_errors_total"),
    ("port_rcv_constraint_errors", "node_infiniband_port_constraint_errors_received_total"),
    ("port_xmit_constraint_errors", "node_infiniband_port_constraint_errors_transmitted_total"),
    ("VL15_dropped", "node_infiniband_vl15_dropped_total"),
])
def test_every_error_counter_under_node_exporters_name(file: str, name: str) -> None:
    samples, _ = scrape(HostFS(FIXTURES / "node" / "sys"))
    assert sample(samples, name, device="mlx5_2", port="1") == counter_file("mlx5_2", file)


def test_every_counter_file_of_the_fixture_is_exposed() -> None:
    samples, _ = scrape(HostFS(FIXTURES / "node" / "sys"))
    for directory, table in (("counters", PORT_COUNTERS), ("hw_counters", HW_COUNTERS)):
        for file in (SYS / "mlx5_0" / "ports" / "1" / directory).iterdir():
            if file.name == "lifespan":
                continue
            suffix, _, _, scale = table[file.name]
            assert sample(samples, family_name(suffix), device="mlx5_0", port="1") == \
                scale * int(file.read_text()), file


def test_hw_counters_and_lifespan() -> None:
    samples, _ = scrape(HostFS(FIXTURES / "node" / "sys"))
    assert sample(samples, "node_infiniband_out_of_buffer_drops_total", device="mlx5_1", port="1") == 7
    assert sample(samples, "infiniband_port_req_transport_retries_exceeded_total", device="mlx5_1", port="1") == 2
    assert sample(samples, "node_infiniband_local_ack_timeout_errors_total", device="mlx5_0", port="1") == 4
    assert sample(samples, "node_infiniband_lifespan_seconds", device="mlx5_0", port="1") == pytest.approx(0.012)


def test_counter_the_hca_cannot_report_is_absent_not_an_error() -> None:
    samples, ctx = scrape(HostFS(FIXTURES / "node" / "sys"))  # mlx5_3 VL15_dropped: "N/A (no PMA)"
    assert {s["device"] for s in series(samples, "node_infiniband_vl15_dropped_total")} == {"mlx5_0", "mlx5_1", "mlx5_2"}
    assert ctx.errors.counts() == {}


def test_unreadable_and_malformed_counters_are_skipped_counted_and_the_rest_exposed() -> None:
    # node-broken: mlx5_0 symbol_error "seven", out_of_buffer "-5"; mlx5_1 state without an id and
    # rate "fast"; on both, counters/link_downed is a directory (reading it fails).
    samples, ctx = scrape(HostFS(FIXTURES / "node-broken" / "sys"))
    assert sample(samples, "node_infiniband_port_data_received_bytes_total", device="mlx5_0", port="1") == 4000
    assert sample(samples, "node_infiniband_port_data_transmitted_bytes_total", device="mlx5_1", port="1") == 8000
    assert {s["device"] for s in series(samples, "node_infiniband_symbol_error_total")} == {"mlx5_1"}
    assert {s["device"] for s in series(samples, "node_infiniband_out_of_buffer_drops_total")} == {"mlx5_1"}
    assert not series(samples, "node_infiniband_link_downed_total")
    assert {s["device"] for s in series(samples, "node_infiniband_state_id")} == {"mlx5_0"}
    assert {s["device"] for s in series(samples, "node_infiniband_rate_bytes_per_second")} == {"mlx5_0"}
    assert sample(samples, "node_infiniband_physical_state_id", device="mlx5_1", port="1") == 5
    assert ctx.errors.counts() == {"infiniband": 6}


def test_missing_or_empty_class_directory_means_no_data() -> None:
    with pytest.raises(NoDataError):
        scrape(MemoryFS({"class/net/eno1/operstate": "up\n"}))
    empty = MemoryFS({"class/infiniband/mlx5_0/fw_ver": "1\n"})
    empty.remove("class/infiniband/mlx5_0")  # the driver is loaded but every HCA is gone
    with pytest.raises(NoDataError):
        scrape(empty)


def test_a_port_removed_between_cycles_disappears_without_errors() -> None:
    base = "class/infiniband/mlx5_0"
    sysfs = MemoryFS({
        f"{base}/fw_ver": "28.39.1002\n",
        f"{base}/ports/1/state": "4: ACTIVE\n",
        f"{base}/ports/1/phys_state": "5: LinkUp\n",
        f"{base}/ports/1/rate": "400 Gb/sec (4X NDR)\n",
        f"{base}/ports/1/counters/port_rcv_data": lambda: "25\n",
    })
    samples, ctx = scrape(sysfs)
    assert sample(samples, "node_infiniband_port_data_received_bytes_total", device="mlx5_0", port="1") == 100
    assert sample(samples, "node_infiniband_info", device="mlx5_0", board_id="", firmware_version="28.39.1002", hca_type="") == 1
    sysfs.remove(f"{base}/ports/1")
    samples = parse_exposition(render(InfiniBandCollector(ctx).collect()))
    assert not series(samples, "node_infiniband_state_id")
    assert ctx.errors.counts() == {}
