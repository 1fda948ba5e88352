"""Fixtures of the alerts tests."""
from __future__ import annotations

import pytest

import simulator.node


@pytest.fixture
def fresh_collections(monkeypatch):
    """The simulator reuses an exporter's collection for a while of wall time; on an explicit simulated
    clock (tests/alerts/simulated.py) every scrape must collect anew."""
    monkeypatch.setattr(simulator.node, "COLLECTION_REUSE_SECONDS", -1.0)
