"""Freed memory handed back to the system after a large query (``release_free_memory``).

A query's arrays are freed when it ends, but glibc keeps much of what it freed in its heaps
(its mmap threshold grows with the largest block freed, so the next large arrays come from the
heap too): the server's RSS stayed at a large query's peak. ``malloc_trim(0)`` returns the free
pages; it costs a few milliseconds, so the engine calls it only after a query that held many
samples. Elsewhere than glibc it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading

_lock = threading.Lock()


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    if _TRIM is not None and _lock.acquire(blocking=False):  # one trim at a time is enough
        try:
            _TRIM(0)
        finally:
            _lock.release()
