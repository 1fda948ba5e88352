"""XID errors, counted from NVML's event stream so that no occurrence is missed.

NVML reports XIDs (the driver's error codes: 13 graphics exception, 48 double-bit ECC, 79 fallen
off the bus, ...) as events, not as a value to poll: a last-value gauge would miss a code that
repeats, and polling would miss one between two cycles. So a background thread waits on an NVML
event set (``nvmlEventSetCreate``, ``nvmlDeviceRegisterEvents`` with
``nvmlEventTypeXidCriticalError`` per GPU, ``nvmlEventSetWait`` with a short timeout so that it
can stop) and counts every event; ``collect()`` only reads the counts under a lock, so the
collection loop never blocks on NVML events.

Each count carries the catalog's normalised ``action`` (see ``exporter.xid_catalog``): a function
of ``xid``, so it adds no series, and a rule can match ``action=~"reset_gpu|reboot"`` without a
join. NVIDIA's own wording for the codes seen is in ``gpu_xid_catalog_info``.

NVML events carry no time; ``gpu_xid_last_timestamp_seconds`` is when the exporter received the
event (within the wait timeout of the driver's report). It and ``gpu_xid_last_code`` are 0 on a
watched GPU until its first XID, so ``changes()`` over them sees the first XID too, which
``increase()`` on a counter series born at 1 does not.

XIDs raised before the watcher registered a GPU (while the exporter was down or restarting, or
before its first collection) never reach NVML's event set. The driver logs them in the kernel
log too: when the watcher first registers its GPUs it recovers them from there (see
``exporter.xid_recovery``: deduplicated against what NVML delivers, attributed by PCI bus id), so
``gpu_xid_errors_total`` counts every XID since boot. When NVML is up at the first collection,
that first registration and the recovery run within it, so the first snapshot already has them;
they run once, never per cycle.

What the thread copes with:
- NVML not up yet, or down: it idles and registers once the session is up (the collection
  loop's ``NvmlSession.refresh()`` brings NVML up; this thread never initialises it);
- NVML re-initialised: event sets and handles of the earlier init are invalid, so the set is
  dropped when the session is seen down (or the set is refused) and re-created with every GPU;
- a GPU that does not support XID events (``NotSupported``): skipped and counted once, reported
  ``gpu_xid_watch_active 0``; the others are watched;
- a GPU lost (``GpuIsLost`` from registration, or from the wait, after which the set is re-made
  so the GPUs still there are registered again): its counts stay, it is reported not watched,
  and the other GPUs keep being counted.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pynvml
from pynvml import NVMLError

from cwkernel.metrics import FamilySet, counter, gauge, metric_table
from exporter.collector import Collector, CollectorContext, NoDataError, register_collector
from exporter.kmsg import ReadLimits
from exporter.nvml.session import GpuDevice, NvmlSession, handle_key
from exporter.xid_catalog import lookup
from exporter.xid_recovery import RecoveredXids, XidRecovery

log = logging.getLogger(__name__)

GPU = ("gpu", "uuid")
CATALOG = "exporter/data/xid-catalog.csv (NVIDIA XID catalog)"
EVENT_SOURCE = "nvmlEventSetWait (nvmlEventTypeXidCriticalError, eventData = XID)"
KMSG_SOURCE = "/dev/kmsg (the driver's NVRM: Xid lines), read once at start"

XID_METRICS = metric_table(
    counter("gpu_xid_errors_total", "XID errors the driver reported, by code; action is the catalog's normalised "
            "recommended action (ignore, restart_app, reset_gpu, reboot, check_hardware, update_sw, workflow, "
            "recovery, contact_support, unknown). Counts every XID since boot: those raised before the exporter "
            "started are recovered from the kernel log; gpu=\"\" for a GPU NVML does not enumerate, and "
            "uuid=\"PCI:<bus id>\" if not even the driver's log names it.", [*GPU, "xid", "action"], "",
            f"{EVENT_SOURCE}; {KMSG_SOURCE}; action from {CATALOG}"),
    gauge("gpu_xid_last_timestamp_seconds", "When the GPU's last XID happened (Unix time): when the exporter received "
          "it, or the kernel log's stamp for one recovered at start; 0 until the first.", GPU, "seconds",
          f"{EVENT_SOURCE}, time of receipt (NVML events carry no time); {KMSG_SOURCE}"),
    gauge("gpu_xid_last_code", "The GPU's last XID code; 0 until the first.", GPU, "", f"{EVENT_SOURCE}; {KMSG_SOURCE}"),
    gauge("gpu_xid_catalog_info", "NVIDIA's catalog entry of each XID code seen on this node, value 1.",
          ("xid", "mnemonic", "action", "immediate_action", "investigatory_action"), "", CATALOG),
    gauge("gpu_xid_watch_active", "1 if the exporter receives the GPU's XID events; 0 if the GPU does not support "
          "them, is lost, or could not be registered.", GPU, "", "nvmlDeviceRegisterEvents"),
    gauge("clusterwatch_exporter_xid_watcher_up", "1 while the XID thread holds an NVML event set and waits on it.",
          [], "", "nvmlEventSetCreate, nvmlEventSetWait"),
    counter("clusterwatch_exporter_xid_recovery_records_total", "Kernel-log records the start-up XID recovery read, "
            "by result: counted (an XID NVML could not deliver), seen_by_nvml (an XID NVML delivered: not counted "
            "twice), other (other messages), malformed (not a record, or an XID line that cannot be read: skipped).",
            ["result"], "", KMSG_SOURCE),
    gauge("clusterwatch_exporter_xid_recovery_complete", "1 once the start-up XID recovery read the whole kernel log; "
          "0 until it ran, or if the log could not be read or a bound (records, bytes, time) stopped it (the log "
          "says which).", [], "", KMSG_SOURCE),
)
RECOVERY_RESULTS = ("counted", "seen_by_nvml", "other", "malformed")

# The wait timeout bounds how long close() waits for the thread, and how late the thread notices
# that NVML went down or a GPU appeared; the cost is a few idle wake-ups per second.
WAIT_MS = 200
# After an unexpected NVML error: pause before the next wait, and before retrying a registration.
ERROR_PAUSE_SECONDS = 1.0
REGISTER_RETRY_SECONDS = 30.0
# Errors meaning the event set (or the library behind it) is no longer valid: make a new one.
_SET_INVALID = (pynvml.NVMLError_Uninitialized, pynvml.NVMLError_InvalidArgument)


@dataclass
class _GpuXids:
    """What has been counted for one GPU (by uuid: the index can shift when a GPU leaves)."""

    index: int | None  # None for events NVML could not tie to a registered GPU (label gpu="")
    uuid: str
    counts: dict[int, int] = field(default_factory=dict)
    last_time: float = 0.0
    last_code: int = 0
    watched: bool = False


@register_collector("xid")
class XidCollector(Collector):
    """XID errors from NVML events, counted per GPU and code, classified by NVIDIA's XID catalog."""

    # How long one nvmlEventSetWait blocks. Events wake the wait at once whatever this is; it only
    # bounds how fast the thread notices a stop or NVML going down. The simulator, which runs one
    # watcher per simulated node, raises it so thousands of threads do not wake 5 times a second.
    wait_ms: int = WAIT_MS
    # Bounds of the one reading of the kernel log at start (records, bytes, seconds).
    recovery_limits: ReadLimits = ReadLimits()

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._lock = threading.Lock()
        self._gpus: dict[str, _GpuXids] = {}
        self._watcher_up = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._crashed = False
        # Owned by the watcher thread alone (no lock): the event set and what is registered on it.
        self._set: Any = None
        self._registered: dict[int, tuple[GpuDevice, bool]] = {}  # id(device) -> (device, watching)
        self._by_handle: dict[int, _GpuXids] = {}
        self._retry_at: dict[str, float] = {}
        # Pending until the first registration pass, then done for good (None).
        self._recovery = XidRecovery(ctx.kernel_log, self.recovery_limits) if ctx.kernel_log is not None else None
        self._recovery_stats = self._recovery.stats if self._recovery is not None else None
        self._watched_since: dict[str, int] = {}  # uuid -> kernel-log time of its registration

    # -- the collector's side -------------------------------------------------------------------

    def collect(self) -> FamilySet:
        if self.ctx.nvml is None:
            raise NoDataError("no NVML session")
        self._start()
        out = FamilySet(XID_METRICS)
        with self._lock:
            out.add("clusterwatch_exporter_xid_watcher_up", 1 if self._watcher_up else 0)
            self._add_recovery_stats(out)
            gpus = sorted(self._gpus.values(), key=lambda gpu: (gpu.index is None, gpu.index or 0, gpu.uuid))
            seen: set[int] = set()
            for gpu in gpus:
                labels = {"gpu": "" if gpu.index is None else gpu.index, "uuid": gpu.uuid}
                for code, count in sorted(gpu.counts.items()):
                    out.add("gpu_xid_errors_total", count, **labels, xid=code, action=lookup(code).action)
                    seen.add(code)
                out.add("gpu_xid_last_timestamp_seconds", gpu.last_time, **labels)
                out.add("gpu_xid_last_code", gpu.last_code, **labels)
                out.add("gpu_xid_watch_active", 1 if gpu.watched else 0, **labels)
        for code in sorted(seen):
            entry = lookup(code)
            out.add("gpu_xid_catalog_info", 1, xid=code, mnemonic=entry.mnemonic, action=entry.action,
                    immediate_action=entry.immediate_action, investigatory_action=entry.investigatory_action)
        return out

    def _add_recovery_stats(self, out: FamilySet) -> None:
        stats = self._recovery_stats
        if stats is None:
            return  # no kernel log configured
        for result in RECOVERY_RESULTS:
            out.add("clusterwatch_exporter_xid_recovery_records_total", getattr(stats, result), result=result)
        out.add("clusterwatch_exporter_xid_recovery_complete", 1 if stats.complete else 0)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5 * self.wait_ms / 1000 + 1)
            if thread.is_alive():
                log.warning("XID watcher did not stop within %.1fs (blocked in NVML)", 5 * self.wait_ms / 1000 + 1)

    def _start(self) -> None:
        # Started by the first collection, not the constructor: building an exporter has no side
        # effect. Restarted by a later collection if a bug ended it, so XIDs are not lost for good.
        if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
            return
        if self._thread is None and self._recovery is not None:
            self._first_pass_now()
        self._thread = threading.Thread(target=self._watch, name="xid-watcher", daemon=True)
        self._thread.start()

    def _first_pass_now(self) -> None:
        """Register and recover on the collecting thread, so the first snapshot has the recovered XIDs.

        The watcher thread has not started: what it owns is this thread's until it does.
        """
        session: NvmlSession = self.ctx.nvml  # type: ignore[assignment]  (collect() checked it)
        if not session.up:
            return  # the watcher registers (and recovers) once NVML is up
        try:
            if self._set is not None or self._create_set(session, pause=False):
                self._register_pass(session)
        except Exception as exc:  # noqa: BLE001 - the watcher must start whatever this hit
            log.exception("XID watcher: first registration failed; the watcher thread retries")
            self.skip("XID first registration", exc)
            self._drop_set(session)

    # -- the watcher thread ---------------------------------------------------------------------

    def _watch(self) -> None:
        session: NvmlSession = self.ctx.nvml  # type: ignore[assignment]  (collect() checked it)
        try:
            while not self._stop.is_set():
                if not session.up:
                    self._drop_set(session)  # a later init invalidates this one's set and handles
                    self._stop.wait(self.wait_ms / 1000)
                    continue
                if self._set is None and not self._create_set(session):
                    continue
                self._register_pass(session)
                if self._set is not None:
                    self._wait_once(session)
        except Exception as exc:  # noqa: BLE001 - a bug here must show as watcher down, not die silently
            if not self._crashed:  # the traceback once; restarts then fail quietly but counted
                log.exception("XID watcher failed")
            self._crashed = True
            self.skip("XID watcher thread failed", exc)
        finally:
            self._drop_set(session)

    def _create_set(self, session: NvmlSession, pause: bool = True) -> bool:
        try:
            self._set = session.nvml.nvmlEventSetCreate()
        except NVMLError as exc:
            if not isinstance(exc, pynvml.NVMLError_Uninitialized):  # NVML going down: seen next turn
                self.skip("nvmlEventSetCreate", exc)
            if pause:
                self._stop.wait(ERROR_PAUSE_SECONDS)
            return False
        self._set_watcher_up(True)
        return True

    def _drop_set(self, session: NvmlSession) -> None:
        if self._set is not None:
            try:
                session.nvml.nvmlEventSetFree(self._set)
            except NVMLError as exc:
                log.debug("nvmlEventSetFree: %s", exc)  # after nvmlShutdown the set is gone anyway
        self._set = None
        self._registered.clear()
        self._by_handle.clear()
        self._watched_since.clear()  # a registration on a dropped set watched nothing after it
        self._set_watcher_up(False)
        with self._lock:
            for gpu in self._gpus.values():
                gpu.watched = False

    def _register_pass(self, session: NvmlSession) -> None:
        """Register what is not registered; the first complete pass also recovers missed XIDs."""
        recovery = self._recovery
        if recovery is None:
            self._register_devices(session)
            return
        recovery.read_backlog()  # before registering: all of it is what NVML cannot deliver
        self._register_devices(session)
        if self._set is None:
            return  # the set was refused: the next pass registers again, then recovers
        self._recovery = None
        recovered = recovery.finish([*session.devices, *session.missing], dict(self._watched_since))
        self._watched_since.clear()
        self._count_recovered(recovered, recovery.kernel_log.now_us())
        if recovery.stats.problem:
            self.skip("XID recovery from the kernel log incomplete: " + recovery.stats.problem)

    def _count_recovered(self, recovered: list[RecoveredXids], now_us: int) -> None:
        now = self.ctx.clock()
        with self._lock:
            for entry in recovered:
                record = self._gpus.get(entry.uuid)
                if record is None:
                    record = self._gpus[entry.uuid] = _GpuXids(entry.index, entry.uuid)
                elif entry.index is not None:
                    record.index = entry.index
                for code, count in entry.counts.items():
                    record.counts[code] = record.counts.get(code, 0) + count
                happened = now - (now_us - entry.last_us) / 1e6  # the log's stamp as Unix time
                if happened > record.last_time:
                    record.last_time, record.last_code = happened, entry.last_code

    def _register_devices(self, session: NvmlSession) -> None:
        """Register GPUs not yet on the set (new, returned, or after a re-init); note who is watched."""
        current = {id(device): device for device in session.devices}
        # Devices gone from the session (lost) are forgotten; one coming back is a new object.
        self._registered = {key: entry for key, entry in self._registered.items() if key in current}
        now = time.monotonic()
        for key, device in current.items():
            if key in self._registered or now < self._retry_at.get(device.uuid, 0.0):
                continue
            watching = self._register(session, device)
            if self._set is None:
                return  # the set was refused: re-created on the next turn
            if watching is not None:
                self._registered[key] = (device, watching)
        watched = {device.uuid for device, watching in self._registered.values() if watching}
        with self._lock:
            for gpu in self._gpus.values():
                gpu.watched = gpu.uuid in watched

    def _register(self, session: NvmlSession, device: GpuDevice) -> bool | None:
        """True if registered, False if this GPU cannot be watched, None to retry later."""
        record = self._record_for(device)
        try:
            session.nvml.nvmlDeviceRegisterEvents(device.handle, pynvml.nvmlEventTypeXidCriticalError, self._set)
        except NVMLError as exc:
            if isinstance(exc, pynvml.NVMLError_NotSupported):
                self.skip(f"GPU {device.index} does not support XID events", exc)
                return False
            if isinstance(exc, pynvml.NVMLError_GpuIsLost):
                return False  # reported down by the GPU collector; counted again if it returns
            if isinstance(exc, _SET_INVALID):
                self._drop_set(session)
                return None
            self.skip(f"GPU {device.index} nvmlDeviceRegisterEvents", exc)
            self._retry_at[device.uuid] = time.monotonic() + REGISTER_RETRY_SECONDS
            return None
        self._by_handle[handle_key(device.handle)] = record
        if self._recovery is not None:
            # Right after the call: an XID stamped before this may have missed the set (counted
            # from the log); one stamped after it reaches the set. The instant between can count
            # twice, never be lost.
            self._watched_since[device.uuid] = self._recovery.kernel_log.now_us()
        return True

    def _wait_once(self, session: NvmlSession) -> None:
        try:
            event = session.nvml.nvmlEventSetWait(self._set, self.wait_ms)
        except NVMLError as exc:
            if isinstance(exc, pynvml.NVMLError_Timeout):
                return
            if isinstance(exc, (pynvml.NVMLError_GpuIsLost, *_SET_INVALID)):
                # A registered GPU fell off the bus, or the set went stale: a fresh set re-registers
                # the GPUs still there. The pause keeps a driver that insists from spinning this loop.
                log.info("XID watcher: %s; re-creating the event set", exc)
                self._drop_set(session)
                self._stop.wait(self.wait_ms / 1000)
                return
            self.skip("nvmlEventSetWait", exc)
            self._stop.wait(ERROR_PAUSE_SECONDS)
            return
        if event.eventType & pynvml.nvmlEventTypeXidCriticalError:
            self._count(session, event)

    def _count(self, session: NvmlSession, event: Any) -> None:
        record = self._record_of_event(session, event)
        code = int(event.eventData)
        now = self.ctx.clock()
        with self._lock:
            count = record.counts[code] = record.counts.get(code, 0) + 1
            record.last_time, record.last_code = now, code
        # Warned at its first occurrence per GPU only: an application XID can repeat thousands of times.
        log.log(logging.WARNING if count == 1 else logging.DEBUG, "XID %d on GPU %s (%s): %s", code, record.index,
                record.uuid or "uuid unknown", lookup(code).mnemonic or "not in the XID catalog")

    def _record_of_event(self, session: NvmlSession, event: Any) -> _GpuXids:
        try:
            key = handle_key(event.device)
        except ValueError:  # a NULL device: NVML could not say which GPU
            key = 0
        record = self._by_handle.get(key)
        if record is None:
            device = session.device_for_handle(event.device) if key else None
            if device is not None:
                return self._record_for(device)
            # Never drop an XID: count it under an empty GPU identity, and say so.
            self.skip("XID event from a GPU not registered by this exporter")
            with self._lock:
                return self._gpus.setdefault("", _GpuXids(None, ""))
        return record

    def _record_for(self, device: GpuDevice) -> _GpuXids:
        with self._lock:
            record = self._gpus.get(device.uuid)
            if record is None:
                record = self._gpus[device.uuid] = _GpuXids(device.index, device.uuid)
            else:
                record.index = device.index
            return record

    def _set_watcher_up(self, up: bool) -> None:
        with self._lock:
            self._watcher_up = up
