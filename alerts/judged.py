"""Every current alert with its state (firing, silenced, inhibited, acknowledged, resolved),
judged once and shared by every reader until something it depends on changes.

Why: the alerts API and the alerts page each judged all current alerts per request. With a
storm's 50,000 alerts that is ~0.5 s of CPU a request, and fifty dashboard users asking at once
took the interpreter from scraping and rule evaluation (bench/bench_storm.py, profiled). The
state of an alert changes only when the alerts, acknowledgements or silences change, or when a
silence starts or ends; so the judgement is kept with the versions it was judged at and the next
time a silence starts or ends, and it is judged again only when one of those has moved. Readers
that arrive while it is being judged wait for that one judgement instead of starting their own.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from alerts.model import Alert
from alerts.notify.store import Ack

if TYPE_CHECKING:
    from alerts.notify.pipeline import Pipeline

AlertState = Literal["firing", "silenced", "inhibited", "acknowledged", "resolved"]


@dataclass(frozen=True)
class Judged:
    """An alert with its state as judged at one moment (the state is never stored)."""

    alert: Alert
    state: AlertState
    silenced_by: list[str]
    inhibited_by: list[str]
    ack: Ack | None

    @property
    def sort_key(self) -> tuple:
        return self.alert.ends_at is not None, self.alert.starts_at, self.alert.fingerprint


def judge(pipeline: "Pipeline", alert: Alert, now: float) -> Judged:
    """The state of ``alert`` at ``now`` (the inhibitor and the acknowledgements are indexed, so
    this is cheap enough for each of 50,000 alerts)."""
    firing = alert.ends_at is None
    silenced = pipeline.silences.muted_by(alert, now) if firing else []
    inhibited = pipeline.inhibitor.muted_by(alert, now) if firing else []
    ack = pipeline.store.ack_of(alert)
    if not firing:
        state = "resolved"
    elif silenced:
        state = "silenced"
    elif inhibited:
        state = "inhibited"
    elif ack:
        state = "acknowledged"
    else:
        state = "firing"
    return Judged(alert, state, silenced, inhibited, ack)


@dataclass(frozen=True)
class _Judgement:
    """Every current alert judged once, and what that judgement is valid for."""

    versions: tuple[int, int]
    valid_until: float  # the next start or end of a silence after the judgement
    judged: list[Judged]


class JudgedAlerts:
    """``current()``: every alert the pipeline holds, judged, in ``Judged.sort_key`` order."""

    def __init__(self, pipeline: "Pipeline") -> None:
        self._pipeline = pipeline
        self._lock = threading.Lock()  # one judgement at a time; readers meanwhile wait and share it
        self._last: _Judgement | None = None
        self.judgements = 0  # how many times every alert was judged (tests, and what it saves)

    def current(self) -> list[Judged]:
        with self._lock:
            pipeline = self._pipeline
            now = pipeline.clock()
            versions = (pipeline.store.version, pipeline.silences.version)
            last = self._last
            if last is not None and last.versions == versions and now < last.valid_until:
                return last.judged
            judged = sorted((judge(pipeline, alert, now) for alert in pipeline.store.current()),
                            key=lambda j: j.sort_key)
            self._last = _Judgement(versions, self._next_transition(now), judged)
            self.judgements += 1
            return judged

    def _next_transition(self, now: float) -> float:
        times = [t for s in self._pipeline.silences.list() for t in (s.starts_at, s.ends_at) if t > now]
        return min(times, default=math.inf)
