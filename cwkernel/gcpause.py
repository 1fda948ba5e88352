"""Python's cyclic garbage collector held off while a large computation runs (``gc_paused()``).

Why: a query or a dashboard view over 131,072 GPUs allocates hundreds of thousands of objects,
none in reference cycles (reference counting frees them), and the collections those allocations
trigger walk every object of the process (the store's label sets and all): about a second per
full collection at 16,384 nodes. Objects that die before the pause ends never reach a collection.
The collector runs again, as configured, once the last computation in flight ends; the pause is
process-wide, so cycles made by other threads meanwhile wait until then.
"""
from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_active = 0  # computations inside gc_paused() now, in any thread
_was_enabled = False


class gc_paused:  # noqa: N801 - used like a function: ``with gc_paused():``
    def __enter__(self) -> "gc_paused":
        global _active, _was_enabled
        with _lock:
            if _active == 0:
                _was_enabled = gc.isenabled()
                gc.disable()
            _active += 1
        return self

    def __exit__(self, *exc: object) -> bool:
        global _active
        with _lock:
            _active -= 1
            if _active == 0 and _was_enabled:
                gc.enable()
        return False
