"""Asks the kubelet for its allocations in a thread of its own, so the collection loop never waits on it.

dcgm-exporter calls ``List`` every collection; so does this poller, once per interval, but off the
collection loop: a kubelet that hangs delays only the pod attribution (by at most the call's
deadline), never the other collectors. The collector reads the latest ``Snapshot``; an answer
older than ``max_age`` is not used, so a stalled poller cannot keep attributing GPUs to pods that
have gone.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from exporter.podresources.allocations import DeviceAllocation, PodResourcesError

if TYPE_CHECKING:
    from exporter.podresources.client import PodResourcesClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """The kubelet's answer at ``taken_at`` (the poller's clock), or why there is none."""

    taken_at: float
    devices: tuple[DeviceAllocation, ...] = ()
    # (resource, device id) the kubelet can allocate; None when unknown (an old kubelet, or an error).
    allocatable: tuple[tuple[str, str], ...] | None = None
    error: PodResourcesError | None = None


class PodResourcesPoller:
    """Polls ``client`` every ``interval`` seconds in a daemon thread; ``latest()`` is its last answer."""

    def __init__(self, client: PodResourcesClient, interval: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.interval = interval
        self.max_age = 3 * interval + client.timeout
        self._clock = clock
        self._latest: Snapshot | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pod-resources-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.client.timeout + 5)
        self.client.close()

    def latest(self) -> Snapshot | None:
        """The last answer (None before the first); one older than ``max_age`` is an error, not allocations."""
        with self._lock:
            snapshot = self._latest
        if snapshot is None or snapshot.error is not None:
            return snapshot
        age = self._clock() - snapshot.taken_at
        if age > self.max_age:
            return Snapshot(snapshot.taken_at, error=PodResourcesError("no recent answer", f"the last one is {age:.0f} s old"))
        return snapshot

    def poll_once(self) -> Snapshot:
        """Ask the kubelet now (in the caller's thread) and keep the answer."""
        try:
            devices = tuple(self.client.list_devices())
        except PodResourcesError as exc:
            snapshot = Snapshot(self._clock(), error=exc)
        else:
            try:
                allocatable = self.client.allocatable_devices()
            except PodResourcesError as exc:  # List answered: its attribution still holds
                log.debug("kubelet GetAllocatableResources: %s", exc)
                allocatable = None
            snapshot = Snapshot(self._clock(), devices, tuple(allocatable) if allocatable is not None else None)
        with self._lock:
            self._latest = snapshot
        return snapshot

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must outlive a surprise; the next poll retries
                log.exception("pod-resources poller")
            self._stop.wait(self.interval)
