"""End to end in process: the simulator's exporters scraped into the embedded store on an explicit
clock, the shipped pack evaluated over it; XID 79 raises the right alerts, a healthy fleet none."""
from __future__ import annotations

import pytest

from tests.alerts.simulated import Harness


HARDWARE = {"GpuXidRebootRequired", "GpuXidResetRequired", "GpuXidHardwareFault", "GpuXidNeedsInvestigation",
            "GpuXidApplicationErrorsRepeated", "GpuEccUncorrectableErrors", "GpuRowRemapPending",
            "GpuRowRemapFailed", "GpuRetiredPagesPending", "GpuRetiredPagesHigh", "GpuLost", "GpuCountDropped",
            "GpuNvlinkErrorRateHigh", "GpuNvlinkLinkDown", "GpuPcieReplaysHigh", "GpuPcieLinkWidthDegraded",
            "GpuPcieLinkGenerationDegraded", "GpuThermalThrottling", "GpuPowerThrottling", "GpuTemperatureHigh",
            "GpuMemoryTemperatureHigh", "InfinibandPortDown", "InfinibandLinkFlapping", "InfinibandSymbolErrors",
            "InfinibandReceiveErrors"}


def test_xid79_raises_reboot_and_lost_gpu_alerts_with_labels():
    h = Harness()
    try:
        node = h.xid(79)
        lost = h.alerts("GpuLost")
        assert [(a.state, a.labels["instance"], a.labels["gpu"]) for a in lost] == [("pending", node, "2")]
        reboot = h.alerts("GpuXidRebootRequired")
        assert [(a.state, a.labels["instance"], a.labels["gpu"], a.labels["xid"], a.labels["action"])
                for a in reboot] == [("firing", node, "2", "79", "reboot")]
        h.step(60)
        lost = h.alerts("GpuLost")
        assert [(a.state, a.labels["action"]) for a in lost] == [("firing", "reboot")]
        assert {a.labels["alertname"] for a in h.sent} >= {"GpuLost", "GpuXidRebootRequired"}
    finally:
        h.close()


@pytest.mark.slow
def test_healthy_fleet_raises_no_hardware_alert():
    h = Harness()
    try:
        h.step(20 * 60)
        active = {a.labels["alertname"] for _, a in h.evaluator.active_alerts()}
        assert not active & HARDWARE, active
        assert all(not health.last_error for g in h.evaluator.groups for health in g.health.values())
    finally:
        h.close()
