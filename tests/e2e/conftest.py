"""Hooks of the end-to-end tests: the waits and, for a failing test, the server logs of its stack
(tests/e2e/stack.py, one per engine module) attached to its report."""
from __future__ import annotations

import pytest

from tests.e2e.stack import Stack


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    stack = getattr(item, "funcargs", {}).get("stack")
    if isinstance(stack, Stack) and report.when == "call":
        report.sections.append(("waits", "\n".join(f"{seconds:6.1f}s  {what}" for what, seconds in stack.timings)))
        stack.timings.clear()
    if report.failed and isinstance(stack, Stack):
        report.sections.append(("server logs", stack.logs()))
