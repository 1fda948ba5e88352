"""Builds a node's exporter from its configuration: the one factory the CLI and the simulator share."""
from __future__ import annotations

import os
import time
from typing import Any, Callable

from exporter.collector import NVML_COLLECTORS, CollectorContext, ErrorCounter, available_collectors
from exporter.config import ExporterConfig
from exporter.exporter import Exporter
from exporter.hostfs import FileTree, HostFS
from exporter.kmsg import KernelLog, KmsgDevice


def create_exporter(
    config: ExporterConfig,
    *,
    nvml_module: Any | None = None,
    procfs: FileTree | None = None,
    sysfs: FileTree | None = None,
    statvfs: Callable[[str], Any] = os.statvfs,
    clock: Callable[[], float] = time.time,
    kernel_log: KernelLog | None = None,
    fabric_tools: Any = None,
) -> Exporter:
    """An ``Exporter`` for ``config``; pass trees, an NVML module or a kernel log to override what config names.

    The fake NVML backend brings its own kernel log (the fake driver's lines), read instead of
    ``config.kmsg``: the host's log does not describe fake GPUs.
    """
    session = None
    if NVML_COLLECTORS & set(config.collectors):
        from exporter.nvml import load_backend
        from exporter.nvml.session import NvmlSession

        module = nvml_module if nvml_module is not None else load_backend(config.backend, config.fake_scenario)
        session = NvmlSession(module)
        if kernel_log is None:
            kernel_log = _kernel_log(config, module)
    ctx = CollectorContext(
        config=config,
        procfs=procfs if procfs is not None else HostFS(config.procfs),
        sysfs=sysfs if sysfs is not None else HostFS(config.sysfs),
        nvml=session,
        statvfs=statvfs,
        clock=clock,
        errors=ErrorCounter(),
        kernel_log=kernel_log,
        fabric_tools=fabric_tools,
    )
    specs = available_collectors()
    return Exporter(ctx, [specs[name].factory(ctx) for name in config.collectors])


def _kernel_log(config: ExporterConfig, nvml_module: Any) -> KernelLog | None:
    from exporter.nvml.fake import FakeNVML

    if isinstance(nvml_module, FakeNVML):
        return nvml_module.state.kernel_log
    return KmsgDevice(config.kmsg) if config.kmsg else None
