"""The remediation policy file: alert classes, their ladders and modes, guards, receivers.

Loaded once at start; every mistake is a ``PolicyError`` naming the field (as a path such as
``classes[2].ladder``) and the file, so an admin fixes the right line. Nothing here acts: the
engine reads the resulting ``Policy``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # noqa: F401 - tests and benches read the shipped file through it

from remediation.ladder import STEPS
from scheduler.checkpoint import DEFAULT_SIGNAL, SIGNALS, signal_name
from cwkernel.durations import parse_duration
from cwkernel.errors import ConfigError, read_yaml

DEFAULT_POLICY = Path(__file__).with_name("default-policy.yml")
MODES = ("off", "dry-run", "auto")
CLASS_MODES = ("off", "approve", "auto")
# Slurm's state for a node that ClusterWatch rebooted, once it is back: DOWN, so that no job lands
# on it before verification passes (``nextstate=RESUME`` would return it to service at boot).
REBOOT_NEXT_STATE = "DOWN"
# Alerts a reboot or a reset causes by itself, held (a silence) while the node is expected back.
DEFAULT_EXPECTED_ALERTS = {
    "reboot": ("NodeUnreachable", "ExporterDown", "GpuMetricsMissing", "ExporterCollectionStale", "NvmlDown",
               "XidWatcherDown", "InfinibandPortDown", "FabricLinkDown"),
    "reset": ("GpuLost", "GpuCountDropped", "GpuMetricsMissing", "NvmlDown"),
}
# Placeholders a command or a PromQL check may use; filled only with validated values.
PLACEHOLDERS = frozenset({"node", "gpu", "alertname", "job_id"})
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# How long the checkpoint step waits for a job's mark before the requeue goes ahead anyway.
DEFAULT_CHECKPOINT_TIMEOUT = 600.0


class PolicyError(ConfigError):
    """A policy mistake: ``field`` is the path inside the file."""


@dataclass(frozen=True)
class Guards:
    max_drained_nodes: int = 8
    max_drained_percent: float = 10.0
    actions_per_hour: int = 30
    node_cooldown: float = 7200.0
    lemon_window: float = 86400.0
    return_timeout: float = 900.0  # how long a reboot or reset may take before the node counts as lost
    verify_timeout: float = 1800.0


@dataclass(frozen=True)
class Receiver:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0


@dataclass(frozen=True)
class AlertClass:
    name: str
    alertnames: frozenset[str]
    labels: dict[str, str]
    ladder: tuple[str, ...]
    mode: str
    receiver: str | None = None
    persist_evaluations: int = 1
    command: str | None = None  # key of ``commands`` the reset step runs
    checkpoint_timeout: float = DEFAULT_CHECKPOINT_TIMEOUT  # 0: the checkpoint step asks nothing

    def matches(self, labels: dict[str, str]) -> bool:
        if self.alertnames and labels.get("alertname") not in self.alertnames:
            return False
        return all(labels.get(k) == v for k, v in self.labels.items())


@dataclass(frozen=True)
class Policy:
    mode: str
    reason_prefix: str
    evaluation_interval: float
    guards: Guards
    receivers: dict[str, Receiver]
    commands: dict[str, tuple[str, ...]]
    verify: tuple[str, ...]
    classes: tuple[AlertClass, ...]
    expected_alerts: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_EXPECTED_ALERTS))
    source: str = ""
    checkpoint_signal: str = DEFAULT_SIGNAL  # what the checkpoint step sends (scheduler/checkpoint.py)

    @property
    def reboot_next_state(self) -> str:
        return REBOOT_NEXT_STATE

    def classify(self, labels: dict[str, str]) -> AlertClass | None:
        """The first class whose match fits (file order), like a routing tree's first match."""
        for alert_class in self.classes:
            if alert_class.matches(labels):
                return alert_class
        return None


def load(path: str | Path | None = None) -> Policy:
    """The policy in ``path`` (the shipped default without one)."""
    source = str(path or DEFAULT_POLICY)
    return parse(read_yaml(source, "policy", PolicyError), source)


def parse(raw: Any, source: str = "<policy>") -> Policy:
    reader = _Reader(source)
    top = reader.mapping(raw, "policy", {"mode", "reason_prefix", "evaluation_interval", "guards", "receivers",
                                         "commands", "verify", "ladders", "classes", "reboot_next_state",
                                         "expected_alerts", "checkpoint_signal"})
    prefix = reader.string(top.get("reason_prefix", "cw:"), "reason_prefix")
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,16}", prefix):
        reader.fail("reason_prefix", "must be 1-16 letters, digits or _.:- (it must survive Slurm's reason field "
                                     "unchanged, since ownership is read back from it)")
    receivers = {name: reader.receiver(value, f"receivers.{name}")
                 for name, value in reader.mapping(top.get("receivers") or {}, "receivers").items()}
    commands = {name: reader.command(value, f"commands.{name}")
                for name, value in reader.mapping(top.get("commands") or {}, "commands").items()}
    ladders = {name: reader.ladder(value, f"ladders.{name}")
               for name, value in reader.mapping(top.get("ladders") or {}, "ladders").items()}
    classes = tuple(reader.alert_class(value, f"classes[{i}]", ladders, receivers, commands)
                    for i, value in enumerate(reader.sequence(top.get("classes") or [], "classes")))
    names = [c.name for c in classes]
    for name in names:
        if names.count(name) > 1:
            reader.fail("classes", f"class name {name!r} is used twice")
    verify = tuple(reader.template(v, f"verify[{i}]")
                   for i, v in enumerate(reader.sequence(top.get("verify") or [], "verify")))
    if "reboot_next_state" in top and str(top["reboot_next_state"]).upper() != REBOOT_NEXT_STATE:
        reader.fail("reboot_next_state", f"only {REBOOT_NEXT_STATE} is allowed (remove the field): a node "
                                         "rebooted by ClusterWatch stays out of service until verification passes, "
                                         "and RESUME would return it to service at boot")
    return Policy(
        mode=reader.choice(top.get("mode", "dry-run"), "mode", MODES), reason_prefix=prefix,
        evaluation_interval=reader.duration(top.get("evaluation_interval", "30s"), "evaluation_interval"),
        guards=reader.guards(top.get("guards") or {}), receivers=receivers, commands=commands, verify=verify,
        classes=classes, expected_alerts=reader.expected_alerts(top.get("expected_alerts")), source=source,
        checkpoint_signal=reader.signal(top.get("checkpoint_signal", DEFAULT_SIGNAL), "checkpoint_signal"))


class _Reader:
    """Field readers that know where they are, so every error names its field and file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> None:
        raise PolicyError(where, message, self.source)

    def mapping(self, value: Any, where: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, "must be a mapping")
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                self.fail(f"{where}.{unknown[0]}" if where != "policy" else unknown[0],
                          f"unknown field (allowed: {', '.join(sorted(allowed))})")
        return value

    def sequence(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(where, "must be a list")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(where, "must be a non-empty string")
        return value

    def choice(self, value: Any, where: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(where, f"must be one of {', '.join(allowed)}, not {value!r}")
        return value

    def duration(self, value: Any, where: str) -> float:
        try:
            seconds = parse_duration(value)
        except (ValueError, TypeError) as exc:
            self.fail(where, str(exc))
        if seconds < 0:
            self.fail(where, "must not be negative")
        return seconds

    def number(self, value: Any, where: str, low: float, high: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or \
                (high is not None and value > high):
            self.fail(where, f"must be a number >= {low}" + (f" and <= {high}" if high is not None else ""))
        return value

    def signal(self, value: Any, where: str) -> str:
        name = signal_name(value)
        if name is None:
            self.fail(where, f"must be one of {', '.join(sorted(SIGNALS))} (the job's script traps it), "
                             f"not {value!r}")
        return name  # type: ignore[return-value]

    def guards(self, raw: Any) -> Guards:
        values = self.mapping(raw, "guards", {"max_drained_nodes", "max_drained_percent", "actions_per_hour",
                                              "node_cooldown", "lemon_window", "return_timeout", "verify_timeout"})
        default = Guards()
        return Guards(
            max_drained_nodes=int(self.number(values.get("max_drained_nodes", default.max_drained_nodes),
                                              "guards.max_drained_nodes", 0)),
            max_drained_percent=float(self.number(values.get("max_drained_percent", default.max_drained_percent),
                                                  "guards.max_drained_percent", 0, 100)),
            actions_per_hour=int(self.number(values.get("actions_per_hour", default.actions_per_hour),
                                             "guards.actions_per_hour", 0)),
            node_cooldown=self.duration(values.get("node_cooldown", default.node_cooldown), "guards.node_cooldown"),
            lemon_window=self.duration(values.get("lemon_window", default.lemon_window), "guards.lemon_window"),
            return_timeout=self.duration(values.get("return_timeout", default.return_timeout),
                                         "guards.return_timeout"),
            verify_timeout=self.duration(values.get("verify_timeout", default.verify_timeout),
                                         "guards.verify_timeout"))

    def expected_alerts(self, raw: Any) -> dict[str, tuple[str, ...]]:
        """Per restarting step (reboot, reset), the alert names it causes on its node; a step left
        out keeps its default list, an empty list holds nothing."""
        values = self.mapping(raw if raw is not None else {}, "expected_alerts", set(DEFAULT_EXPECTED_ALERTS))
        found = dict(DEFAULT_EXPECTED_ALERTS)
        for step, names in values.items():
            names = self.sequence(names if names is not None else [], f"expected_alerts.{step}")
            for i, name in enumerate(names):
                if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    self.fail(f"expected_alerts.{step}[{i}]", "must be an alert name (letters, digits, _)")
            found[step] = tuple(names)
        return found

    def receiver(self, raw: Any, where: str) -> Receiver:
        values = self.mapping(raw, where, {"url", "headers", "timeout"})
        url = self.string(values.get("url"), f"{where}.url")
        if not url.startswith(("http://", "https://")):
            self.fail(f"{where}.url", "must be an http:// or https:// URL")
        headers = self.mapping(values.get("headers") or {}, f"{where}.headers")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            self.fail(f"{where}.headers", "names and values must be strings")
        return Receiver(url, dict(headers), self.duration(values.get("timeout", 10), f"{where}.timeout"))

    def command(self, raw: Any, where: str) -> tuple[str, ...]:
        # An argument vector, never a shell line: "ssh {node} nvidia-smi -r" as one string would
        # tempt a shell, so only a list is accepted.
        if not isinstance(raw, list):
            self.fail(where, "must be a list of strings (an argument vector; no shell is used)")
        argv = raw
        if not argv or not all(isinstance(a, str) and a for a in argv):
            self.fail(where, "must be a non-empty list of strings (an argument vector; no shell is used)")
        if not argv[0].startswith("/"):
            self.fail(f"{where}[0]", "the program must be an absolute path")
        for i, arg in enumerate(argv):
            self.template(arg, f"{where}[{i}]")
        return tuple(argv)

    def template(self, value: Any, where: str) -> str:
        text = self.string(value, where)
        for name in _PLACEHOLDER.findall(text):
            if name not in PLACEHOLDERS:
                self.fail(where, f"unknown placeholder {{{name}}} (known: {', '.join(sorted(PLACEHOLDERS))})")
        return text

    def ladder(self, raw: Any, where: str) -> tuple[str, ...]:
        steps = self.sequence(raw, where)
        for i, step in enumerate(steps):
            if step not in STEPS:
                self.fail(f"{where}[{i}]", f"unknown step {step!r} (known: {', '.join(STEPS)})")
        if "resume" in steps and "verify" not in steps[:steps.index("resume")]:
            self.fail(where, "resume must come after a verify step: a node is never returned unchecked")
        for later in ("reboot", "reset"):
            if later in steps and "evidence" in steps and steps.index("evidence") > steps.index(later):
                self.fail(where, f"evidence must come before {later}: a reset wipes the counters it records")
        if "checkpoint" in steps and ("requeue" not in steps or steps.index("checkpoint") > steps.index("requeue")):
            self.fail(where, "checkpoint must come before a requeue: it saves the work the requeue would throw away")
        return tuple(steps)

    def alert_class(self, raw: Any, where: str, ladders: dict[str, tuple[str, ...]],
                    receivers: dict[str, Receiver], commands: dict[str, tuple[str, ...]]) -> AlertClass:
        values = self.mapping(raw, where, {"name", "match", "ladder", "mode", "receiver", "persist_evaluations",
                                           "command", "cancel", "checkpoint_timeout"})
        name = self.string(values.get("name"), f"{where}.name")
        match = self.mapping(values.get("match"), f"{where}.match", {"alertname", "labels"})
        alertnames = match.get("alertname") or []
        alertnames = [alertnames] if isinstance(alertnames, str) else alertnames
        if not isinstance(alertnames, list) or not all(isinstance(a, str) for a in alertnames):
            self.fail(f"{where}.match.alertname", "must be a name or a list of names")
        labels = self.mapping(match.get("labels") or {}, f"{where}.match.labels")
        if not alertnames and not labels:
            self.fail(f"{where}.match", "needs alertname or labels (a class matching every alert is a mistake)")
        ladder_name = self.string(values.get("ladder"), f"{where}.ladder")
        if ladder_name not in ladders:
            self.fail(f"{where}.ladder", f"no ladder {ladder_name!r} in ladders")
        ladder = ladders[ladder_name]
        receiver = values.get("receiver")
        if receiver is not None and receiver not in receivers:
            # A receiver left commented out in the shipped file is fine: the notify/ticket step
            # then records "no receiver configured" instead of failing the whole policy.
            receiver = str(receiver)
        command = values.get("command")
        if command is not None and command not in commands:
            self.fail(f"{where}.command", f"no command {command!r} in commands")
        if "reset" in ladder and command is None:
            self.fail(f"{where}.command", f"ladder {ladder_name!r} has a reset step: name the command it runs")
        if values.get("cancel"):
            self.fail(f"{where}.cancel", "cancelling jobs is not available: the scheduler adapter has no cancel "
                                         "action yet (set cancel: false or leave it out)")
        return AlertClass(
            name=name, alertnames=frozenset(alertnames), labels={str(k): str(v) for k, v in labels.items()},
            ladder=ladder, mode=self.choice(values.get("mode", "approve"), f"{where}.mode", CLASS_MODES),
            receiver=receiver,
            persist_evaluations=int(self.number(values.get("persist_evaluations", 1),
                                                f"{where}.persist_evaluations", 1)),
            command=command,
            checkpoint_timeout=self.duration(values.get("checkpoint_timeout", DEFAULT_CHECKPOINT_TIMEOUT),
                                             f"{where}.checkpoint_timeout"))
