"""Scenario files: a YAML description of a fake node turned into a ``FakeState``.

The format is documented in ``docs/fake-backend.md``; ``exporter/nvml/scenarios/example.yml``
uses every part of it. Every mistake is reported as a ``ConfigError`` naming the field (with
its path, e.g. ``overrides.3.utilization_gpu``) and the file.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable

import pynvml

from cwkernel.errors import ConfigError, read_yaml
from exporter.nvml.fake import FakeGPU, FakeMigInstance, FakeNvLink, FakeProcess, FakeState, h100_gpu

MODELS: dict[str, Callable[..., FakeGPU]] = {"h100-sxm": h100_gpu}
TOP_LEVEL = ("model", "gpus", "seed", "driver_version", "cuda_driver_version", "library_missing", "init_error",
             "overrides", "xid_events")
# FakeGPU fields a scenario may not set: identity of the handle, and lists with their own syntax.
_NOT_SETTABLE = {"index", "handle"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB)\s*$")
_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}
_REASONS = {
    name[len("nvmlClocksEventReason"):]: value
    for name, value in vars(pynvml).items()
    if name.startswith("nvmlClocksEventReason") and isinstance(value, int) and name not in ("nvmlClocksEventReasonAll",)
}


class _Reader:
    """Reads one file's values, raising ConfigError with the field path and the file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(path, message, source=self.source)

    def mapping(self, path: str, value: Any, allowed: tuple[str, ...] | set[str] | None = None) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        unknown = sorted(str(key) for key in value if allowed is not None and key not in allowed)
        if unknown:
            raise self.fail(f"{path}.{unknown[0]}" if path else unknown[0],
                            f"unknown field; expected one of {', '.join(sorted(map(str, allowed or ())))}")
        return value

    def typed(self, path: str, value: Any, kind: type, minimum: int | None = None) -> Any:
        # bool is an int in Python; a scenario writing `gpus: true` is a mistake, not 1.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.fail(path, f"expected {kind.__name__}, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(path, f"must be at least {minimum}, got {value}")
        return value

    def size(self, path: str, value: Any) -> int:
        """Bytes, as an integer or a string such as "60GiB"."""
        if isinstance(value, str):
            match = _SIZE.match(value)
            if match is None:
                raise self.fail(path, f"expected bytes or a size like 60GiB, got {value!r}")
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
        return self.typed(path, value, int, minimum=0)

    def error_code(self, path: str, value: Any) -> int:
        """An NVML_ERROR_* name (GPU_IS_LOST or NVML_ERROR_GPU_IS_LOST) or its number."""
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            name = value if value.startswith("NVML_ERROR_") else f"NVML_ERROR_{value}"
            code = getattr(pynvml, name.upper(), None)
            if isinstance(code, int):
                return code
        raise self.fail(path, f"expected an NVML error name such as GPU_IS_LOST, got {value!r}")


def load_scenario(path: str | Path) -> FakeState:
    """The ``FakeState`` a scenario file describes."""
    source = str(path)
    document = read_yaml(source, "fake_scenario")
    return build_state(document if document is not None else {}, source)


def build_state(document: Any, source: str = "<scenario>") -> FakeState:
    """A ``FakeState`` from an already parsed scenario document."""
    reader = _Reader(source)
    spec = reader.mapping("", document, TOP_LEVEL)
    model = spec.get("model", "h100-sxm")
    if model not in MODELS:
        raise reader.fail("model", f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    count = reader.typed("gpus", spec.get("gpus", 8), int, minimum=0)
    seed = reader.typed("seed", spec.get("seed", 0), int)
    state = FakeState.h100_node(gpus=count, seed=seed)
    state.driver_version = str(spec.get("driver_version", state.driver_version))
    state.cuda_driver_version = reader.typed("cuda_driver_version", spec.get("cuda_driver_version", state.cuda_driver_version), int)
    state.library_missing = reader.typed("library_missing", spec.get("library_missing", False), bool)
    if spec.get("init_error") is not None:
        state.init_error = reader.error_code("init_error", spec["init_error"])
    for index, overrides in reader.mapping("overrides", spec.get("overrides", {})).items():
        _apply_overrides(reader, state, index, overrides)
    for position, event in enumerate(_list(reader, "xid_events", spec.get("xid_events", []))):
        _schedule_xid(reader, state, f"xid_events.{position}", event)
    return state


def _list(reader: _Reader, path: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise reader.fail(path, f"expected a list, got {type(value).__name__}")
    return value


def _gpu(reader: _Reader, state: FakeState, path: str, index: Any) -> FakeGPU:
    try:
        return state.gpu(reader.typed(path, index, int))
    except KeyError:
        raise reader.fail(path, f"no GPU {index} on this node of {len(state.gpus)} GPUs") from None


def _apply_overrides(reader: _Reader, state: FakeState, index: Any, overrides: Any) -> None:
    path = f"overrides.{index}"
    gpu = _gpu(reader, state, path, index)
    defaults = {f.name: getattr(gpu, f.name) for f in dataclasses.fields(FakeGPU) if f.name not in _NOT_SETTABLE}
    for key, value in reader.mapping(path, overrides, set(defaults)).items():
        setattr(gpu, key, _gpu_value(reader, f"{path}.{key}", key, value, defaults[key]))


def _gpu_value(reader: _Reader, path: str, key: str, value: Any, default: Any) -> Any:
    """One FakeGPU field from its YAML value, checked against the type of the default."""
    if key.startswith("memory_"):
        return reader.size(path, value)
    if key == "clock_event_reasons":
        return _reasons(reader, path, value)
    if key == "clock_event_ns":
        return {_reason(reader, f"{path}.{name}", name): reader.typed(f"{path}.{name}", ns, int, minimum=0)
                for name, ns in reader.mapping(path, value).items()}
    if key == "unsupported":
        return {str(name) for name in _list(reader, path, value)}
    if key == "failing":
        return {str(name): reader.error_code(f"{path}.{name}", code) for name, code in reader.mapping(path, value).items()}
    if key == "processes":
        return [_dataclass(reader, f"{path}.{i}", FakeProcess, item) for i, item in enumerate(_list(reader, path, value))]
    if key == "mig_instances":
        return [_dataclass(reader, f"{path}.{i}", FakeMigInstance, item) for i, item in enumerate(_list(reader, path, value))]
    if key == "nvlinks":
        return _nvlinks(reader, path, value, default)
    return reader.typed(path, value, type(default))


def _reasons(reader: _Reader, path: str, value: Any) -> int:
    """A bitmask from a list of reason names (SwPowerCap, HwSlowdown, ...) or a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    mask = 0
    for position, name in enumerate(_list(reader, path, value)):
        mask |= _reason(reader, f"{path}.{position}", name)
    return mask


def _reason(reader: _Reader, path: str, name: Any) -> int:
    if name not in _REASONS:
        raise reader.fail(path, f"unknown clock event reason {name!r}; expected one of {', '.join(_REASONS)}")
    return _REASONS[name]


def _nvlinks(reader: _Reader, path: str, value: Any, default: list[FakeNvLink]) -> list[FakeNvLink]:
    """Either a link count, or {link: {up, replay, ...}} changing some of the default links."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [FakeNvLink() for _ in range(reader.typed(path, value, int, minimum=0))]
    links = [dataclasses.replace(link) for link in default]
    for link, changes in reader.mapping(path, value).items():
        if not isinstance(link, int) or not 0 <= link < len(links):
            raise reader.fail(f"{path}.{link}", f"no NVLink {link}; this GPU has {len(links)}")
        links[link] = _dataclass(reader, f"{path}.{link}", FakeNvLink, changes, base=links[link])
    return links


def _dataclass(reader: _Reader, path: str, cls: type, value: Any, base: Any = None) -> Any:
    """An instance of a fake's dataclass from a mapping of its init fields, types checked."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    items = reader.mapping(path, value, set(fields))
    missing = [name for name, f in fields.items() if name not in items and base is None
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise reader.fail(f"{path}.{missing[0]}", "required")
    checked = {}
    for name, item in items.items():
        if name in ("used_gpu_memory", "memory_total", "memory_used"):
            checked[name] = None if item is None else reader.size(f"{path}.{name}", item)
        else:
            kind = type(getattr(base, name)) if base is not None else _field_type(fields[name])
            checked[name] = reader.typed(f"{path}.{name}", item, kind)
    return dataclasses.replace(base, **checked) if base is not None else cls(**checked)


def _field_type(f: dataclasses.Field) -> type:
    if f.default is not dataclasses.MISSING:
        return type(f.default)
    return {"int": int, "str": str, "bool": bool}[str(f.type).split(" ")[0]]


def _schedule_xid(reader: _Reader, state: FakeState, path: str, event: Any) -> None:
    spec = reader.mapping(path, event, ("at", "gpu", "xid"))
    for required in ("at", "gpu", "xid"):
        if required not in spec:
            raise reader.fail(f"{path}.{required}", "required")
    at = spec["at"]
    if isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0:
        raise reader.fail(f"{path}.at", f"expected seconds after start (a number >= 0), got {at!r}")
    gpu = _gpu(reader, state, f"{path}.gpu", spec["gpu"])
    state.schedule_xid(gpu.index, reader.typed(f"{path}.xid", spec["xid"], int, minimum=1), float(at))
