"""The demo the dashboard tests share (the ``demo`` fixture, tests/dashboard/conftest.py): its
number of nodes (8 GPUs each) and its operator's token."""
from __future__ import annotations

NODES = 6
TOKEN = "test-operator-secret"
