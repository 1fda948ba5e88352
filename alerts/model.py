"""The alert as every part of alerting passes it on: evaluator -> pipeline -> receivers.

Its fields are Alertmanager's (labels, annotations, startsAt, endsAt, generatorURL) so that an
alert from the embedded evaluator and one received from a production Alertmanager's webhook are
the same object to the pipeline, the dashboard and the remediation engine.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

FIRING, RESOLVED = "firing", "resolved"
# The times ``rfc3339`` can write: a later one (a silence of "99999999y") would break every view.
EARLIEST = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()
# Alertmanager's model.LabelName.IsValid (legacy validation, what 0.25 to 0.27 accept).
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint: 64-bit FNV-1a over the sorted label pairs, as 16 hex digits."""
    value = 0xCBF29CE484222325
    for name in sorted(labels):
        # prometheus/common's SeparatorByte is the single byte 0xff between names and values.
        for byte in name.encode() + b"\xff" + labels[name].encode() + b"\xff":
            value ^= byte
            value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def renderable(timestamp: float) -> bool:
    """Whether ``rfc3339`` can write ``timestamp`` (finite, within years 1 to 9999)."""
    return math.isfinite(timestamp) and EARLIEST <= timestamp <= LATEST


def label_set_problem(labels: Mapping[str, str], max_value: int) -> tuple[str, str] | None:
    """What Alertmanager would refuse in a label set (or an annotation set), as (the key at
    fault or "", the reason); None when it is valid. Values longer than ``max_value`` characters
    are refused too (Alertmanager has no bound; one megabyte labels only cost memory)."""
    for name, value in labels.items():
        if not LABEL_NAME.fullmatch(name):
            return "", f"invalid label name {name!r} (must match [a-zA-Z_][a-zA-Z0-9_]*)"
        if len(value) > max_value:
            return name, f"value longer than {max_value} characters ({len(value)})"
    return None


def rfc3339(timestamp: float | None) -> str:
    """Alertmanager's time format; the zero time for "not set", as it sends for endsAt."""
    if timestamp is None:
        return "0001-01-01T00:00:00Z"
    text = datetime.fromtimestamp(timestamp, timezone.utc).isoformat().replace("+00:00", "")
    if "." in text:
        text = text.rstrip("0").rstrip(".")  # Go's RFC3339Nano drops trailing zeros of the fraction
    return text + "Z"


@dataclass(slots=True)
class Alert:
    """Slotted, its fingerprint computed once: a storm keeps 50,000 of them, and each object
    fewer per alert is one less for every full pass of the cyclic garbage collector (which
    stalls every thread). A changed alert is a new object (``dataclasses.replace``); its labels
    are never changed in place."""

    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: float = 0.0
    ends_at: float | None = None  # set once resolved
    generator_url: str = ""
    fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint(self.labels)

    @property
    def status(self) -> str:
        return RESOLVED if self.ends_at is not None else FIRING

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def to_json(self) -> dict:
        """One alert of Alertmanager's webhook payload (version 4)."""
        return {
            "status": self.status, "labels": dict(self.labels), "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at), "endsAt": rfc3339(self.ends_at),
            "generatorURL": self.generator_url, "fingerprint": self.fingerprint,
        }
