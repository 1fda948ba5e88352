"""Fixtures shared by every test; component-specific ones live beside their tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests import realcomponents
from tests.realcomponents import process_factory  # noqa: F401  (re-exported fixture)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before the test's fixtures: a real component started in one of them names this test.
    realcomponents.current_test = item
