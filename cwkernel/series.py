"""Names of Prometheus's data model used on both sides of the query interface: the store keeps
series under them, the rule evaluator and its test runner read and write them."""
from __future__ import annotations

import struct

Labels = tuple[tuple[str, str], ...]  # one series' labels, sorted by name, including __name__

# Prometheus's staleness marker: a NaN with this exact bit pattern ends a series (a target gone,
# a series no longer exposed); an ordinary NaN is a value.
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
