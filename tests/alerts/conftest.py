"""Fixtures of the alerts tests."""
from __future__ import annotations

import pytest

import simulator.node


@pytest.fixture
def fresh_snapshots(monkeypatch):
    """The simulator reuses an exporter snapshot for a while of wall time; on an explicit simulated
    clock (tests/alerts/simulated.py) every scrape must collect anew."""
    monkeypatch.setattr(simulator.node, "SNAPSHOT_REUSE_SECONDS", -1.0)
