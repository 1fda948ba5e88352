"""Deterministic noise: the same seed gives the same cluster, whenever and however often it is sampled.

Values are a pure function of (seed, key, time bucket) rather than draws from one shared stream,
so the fleet's state at a given simulated time does not depend on how many ticks or scrapes
happened before it.
"""
from __future__ import annotations

import hashlib
import struct


def unit(seed: int, *key: object) -> float:
    """A uniform value in [0, 1) determined by ``seed`` and ``key``."""
    digest = hashlib.blake2b(repr((seed, key)).encode(), digest_size=8).digest()
    return struct.unpack("<Q", digest)[0] / 2**64


def jitter(seed: int, spread: float, *key: object) -> float:
    """A value in [-spread, +spread), deterministic like ``unit``."""
    return (unit(seed, *key) * 2 - 1) * spread
