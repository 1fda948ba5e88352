"""NVML access for the exporter: the real ``pynvml`` module or a fake with the same API.

The GPU, XID and job collectors only ever see the object ``load_backend`` returns (through an
``NvmlSession``), so the code that runs against a real driver is the code the tests exercise.
"""
from __future__ import annotations

import ctypes
import struct
from typing import Any, Iterator

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


# c_nvmlFieldValue_t as raw bytes (fieldId, scopeId, timestamp, latencyUsec, valueType,
# nvmlReturn, value). pynvml's structure accessors cost about half a microsecond each; a GPU's
# hundred field values per cycle read ten times faster unpacked from the array in one pass.
FIELD_VALUE = struct.Struct("@IIqqII8s")
if FIELD_VALUE.size != ctypes.sizeof(pynvml.c_nvmlFieldValue_t):
    raise ImportError("c_nvmlFieldValue_t layout differs from FIELD_VALUE; update the format")
VALUE_FORMATS: dict[int, struct.Struct] = {
    pynvml.NVML_VALUE_TYPE_DOUBLE: struct.Struct("@d"),
    pynvml.NVML_VALUE_TYPE_UNSIGNED_INT: struct.Struct("@I"),
    pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG: struct.Struct("@L"),
    pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: struct.Struct("@Q"),
    pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: struct.Struct("@q"),
    pynvml.NVML_VALUE_TYPE_SIGNED_INT: struct.Struct("@i"),
    pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT: struct.Struct("@H"),
}


def unpack_field_values(values: Any) -> Iterator[tuple[int, int, int, float | None]]:
    """(fieldId, scopeId, nvmlReturn, value or None on error) of each ``c_nvmlFieldValue_t``."""
    for field_id, scope_id, _, _, value_type, ret, raw in FIELD_VALUE.iter_unpack(bytes(values)):
        value_format = VALUE_FORMATS.get(value_type)
        if ret != pynvml.NVML_SUCCESS or value_format is None:
            yield field_id, scope_id, ret, None
        else:
            yield field_id, scope_id, ret, value_format.unpack_from(raw)[0]


def pack_field_value(field_id: int, scope_id: int, timestamp_us: int, ret: int, value_type: int, value: float) -> bytes:
    """The bytes of one ``c_nvmlFieldValue_t`` (how the fake fills the array NVML would)."""
    raw = VALUE_FORMATS[value_type].pack(value).ljust(8, b"\0") if ret == pynvml.NVML_SUCCESS else bytes(8)
    return FIELD_VALUE.pack(field_id, scope_id, timestamp_us, 0, value_type, ret, raw)


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
