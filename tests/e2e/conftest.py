"""Fixtures of the end-to-end tests: one stack of real servers per engine (module scope, so the
dry-run and auto tests share the simulator, the engine and Alertmanager), and server logs attached
to the report of a failing test."""
from __future__ import annotations

import pytest

from tests.e2e.stack import Stack, start_engine


def engine_stack(engine: str, seed: int, tmp_path_factory: pytest.TempPathFactory):
    stack = Stack(workdir=tmp_path_factory.mktemp(f"e2e-{engine}"))
    try:
        start_engine(stack, engine, seed)
        yield stack
    finally:
        stack.stop_all()  # every process by its PID, whatever happened


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
