"""Holding the alerts an action of the automation causes, as silences anyone can see and expire.

A node that ClusterWatch reboots stops answering scrapes and Slurm, which is what
``NodeUnreachable`` ("power-cycle it") and ``ExporterDown`` are about; paging someone for the
automation's own reboot is a false alarm. While the node is expected back, the alerts the policy
lists for the step (``expected_alerts``) on that node are held by a silence whose author is
``AUTHOR`` and whose comment names the case and why; the alerts page shows them as silenced, with
that comment. The silence ends by itself when the node should have been back (the guard
``return_timeout``), so a node that does not come back pages as usual; when the node is back the
case shortens it to a settling time, and ends it at once when the case gives up.

``Suppressor`` is what the engine needs; ``SilenceSuppressor`` does it with the pipeline's
``SilenceStore``. Without a pipeline (a bare engine in tests) nothing is held.
"""
from __future__ import annotations

import logging
import re
from typing import Protocol

from alerts.notify.matchers import AlertMatcher
from alerts.silences import ACTIVE, PENDING, SilenceError, SilenceStore

log = logging.getLogger(__name__)

AUTHOR = "ClusterWatch automation"
# After the node is back, its scrapes, Slurm's view and the rules' evaluation need a few cycles to
# see it; alerts still firing from before it came back resolve meanwhile instead of paging.
SETTLE_SECONDS = 180.0


class Suppressor(Protocol):
    def hold(self, case_id: int, node: str, alertnames: tuple[str, ...], until: float, why: str) -> None: ...

    def lift(self, case_id: int, at: float) -> None: ...


def _tag(case_id: int) -> str:
    return f"case {case_id}: "


class SilenceSuppressor:
    """A ``Suppressor`` made of silences in the notification pipeline's store."""

    def __init__(self, silences: SilenceStore) -> None:
        self.silences = silences

    def hold(self, case_id: int, node: str, alertnames: tuple[str, ...], until: float, why: str) -> None:
        if not alertnames:
            return
        names = "|".join(re.escape(name) for name in sorted(alertnames))
        matchers = (AlertMatcher("instance", "=", node), AlertMatcher("alertname", "=~", names))
        try:
            self.silences.create(matchers, until, AUTHOR, _tag(case_id) + why)
        except SilenceError as exc:  # a clock already past ``until``: nothing to hold
            log.warning("alerts of case %s not held: %s", case_id, exc)

    def lift(self, case_id: int, at: float) -> None:
        """End the case's silences at ``at`` (now or soon), never later than they would have."""
        for silence in self.silences.list():
            if silence.created_by == AUTHOR and silence.comment.startswith(_tag(case_id)) and \
                    silence.state(self.silences.clock()) in (ACTIVE, PENDING) and at < silence.ends_at:
                self.silences.end_at(silence.id, at)
