"""Alert labels turned into checked values before anything acts on them.

Labels come from rule evaluation or from an Alertmanager webhook (an HTTP body), so they are
untrusted: a node name must be a single name the scheduler's last node list holds, a GPU a small
index, a job id Slurm's form; the reason written into Slurm is assembled only from these checked
tokens and the policy's prefix, never from free text such as annotations.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from scheduler import validation
from scheduler.errors import ActionRefused
from scheduler.model import SchedulerSnapshot

# Applied with fullmatch: re.match with "$" also accepts a trailing newline.
_ALERTNAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]{0,127}")
_GPU = re.compile(r"[0-9]{1,3}")
# A switch or HCA end as the fabric collector names it ("leaf-r01", "gpu-001 mlx5_0", a trimmed
# vendor description such as "MF0;switch-abc:MQM8700/U1") and a port number.
_FABRIC_END = re.compile(r"[A-Za-z0-9_.:;/# -]{1,128}")
_PORT = re.compile(r"[0-9]{1,4}")
CABLE_LABELS = ("switch", "switch_port", "peer", "peer_port")


class LabelError(ValueError):
    """A label that cannot be used: names the label and why."""


@dataclass(frozen=True)
class Target:
    alertname: str
    node: str | None
    gpu: str | None
    job_id: str | None


def alertname(labels: dict[str, str]) -> str:
    name = labels.get("alertname", "")
    if not _ALERTNAME.fullmatch(name):
        raise LabelError(f"alertname: not a Prometheus alert name: {name[:60]!r}")
    return name


def node(value: str, snapshot: SchedulerSnapshot | None) -> str:
    try:
        return validation.check_node(value, snapshot)
    except ActionRefused as exc:
        raise LabelError(f"instance: {exc}") from None


def target(labels: dict[str, str], snapshot: SchedulerSnapshot | None, needs_node: bool) -> Target:
    """The checked alert name, node, GPU and job id; ``LabelError`` on the first bad one."""
    name = alertname(labels)
    checked_node = None
    if "instance" in labels or needs_node:
        if needs_node or labels.get("instance"):
            checked_node = node(labels.get("instance", ""), snapshot)
    gpu = labels.get("gpu")
    if gpu is not None and not _GPU.fullmatch(gpu):
        raise LabelError(f"gpu: not a GPU index: {gpu[:20]!r}")
    job_id = labels.get("job_id")
    if job_id is not None:
        try:
            job_id = validation.check_job_id(job_id)
        except ActionRefused as exc:
            raise LabelError(f"job_id: {exc}") from None
    return Target(name, checked_node, gpu, job_id)


@dataclass(frozen=True)
class Cable:
    """A fabric alert's subject (docs/alerts.md#fabric-links): one cable by both ends, or, with
    only ``switch``, a switch."""

    switch: str
    switch_port: str | None = None
    peer: str | None = None
    peer_port: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {k: v for k, v in zip(CABLE_LABELS, (self.switch, self.switch_port, self.peer, self.peer_port))
                if v is not None}

    def __str__(self) -> str:
        if self.peer is None:
            return f"switch {self.switch}"
        return f"{self.switch} port {self.switch_port} <-> {self.peer} port {self.peer_port}"


def cable(labels: dict[str, str]) -> Cable | None:
    """The cable (or switch) a fabric alert names, checked; None for an alert that names none.
    ``LabelError`` for a malformed one: the values reach PromQL (quoted) and the repair ticket."""
    if "switch" not in labels:
        return None
    values = {}
    for name in CABLE_LABELS:
        value = labels.get(name)
        if value is None:
            continue
        if not (_PORT if name.endswith("port") else _FABRIC_END).fullmatch(value):
            raise LabelError(f"{name}: not a fabric switch, HCA or port name: {value[:60]!r}")
        values[name] = value
    if "switch_port" not in values:  # a switch alert (which also carries its name as ``peer``)
        return Cable(values["switch"])
    if not {"peer", "peer_port"} <= set(values):
        raise LabelError("a cable needs switch, switch_port, peer and peer_port")
    return Cable(**values)


def reason(prefix: str, target: Target, case_id: int, what: str = "") -> str:
    """``cw: GpuXidRebootRequired gpu 3 case 12``: checked tokens only, cleaned once more."""
    words = [prefix, target.alertname]
    if target.gpu is not None:
        words += ["gpu", target.gpu]
    if what:
        words.append(what)
    words += ["case", str(case_id)]
    return validation.clean_text(" ".join(words), validation.MAX_REASON)
