"""NVML access for the exporter: the real ``pynvml`` module or a fake with the same API.

The GPU, XID and job collectors only ever see the object ``load_backend`` returns (through an
``NvmlSession``), so the code that runs against a real driver is the code the tests exercise.
"""
from __future__ import annotations

from typing import Any

import pynvml

BACKENDS = ("nvml", "fake")

# Clock-event reasons whose accumulated duration (ns) NVML reports as a field, by reason bit.
# Both the GPU collector and the fake read this, so they cannot disagree on which field is which.
CLOCK_EVENT_DURATION_FIELDS: dict[int, int] = {
    pynvml.nvmlClocksEventReasonSwPowerCap: pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP,
    pynvml.nvmlClocksEventReasonSyncBoost: pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST,
    pynvml.nvmlClocksEventReasonSwThermalSlowdown: pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN,
    pynvml.nvmlClocksEventReasonHwThermalSlowdown: pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN,
    pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown: pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN,
}


def load_backend(name: str, scenario: str | None = None) -> Any:
    """The module to call NVML through: ``pynvml`` for "nvml", a ``FakeNVML`` for "fake".

    ``scenario`` (fake only) is a YAML scenario file; without one the fake is an idle 8-GPU
    H100 node.
    """
    if name == "nvml":
        if scenario is not None:
            raise ValueError("a fake scenario only applies to the fake backend")
        return pynvml
    if name == "fake":
        from exporter.nvml.fake import FakeNVML, FakeState

        if scenario is None:
            return FakeNVML(FakeState.h100_node())
        from exporter.nvml.scenario import load_scenario

        return FakeNVML(load_scenario(scenario))
    raise ValueError(f"unknown NVML backend {name!r}; expected one of {', '.join(BACKENDS)}")
