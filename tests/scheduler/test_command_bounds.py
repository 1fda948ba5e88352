"""Slurm's client commands are run within the poll's time and with a cap on what they print:
a command whose own child keeps its output open, one that prints without end, or a document
nested without end is a ``SchedulerError`` that names why, and the poll comes back.

Observed before: everything a command printed was held until its timeout (an endless ``squeue``
grew the adapter by gigabytes within a 30 s poll); 100,000 nested brackets raised
``RecursionError`` out of the poll. The two timeout tests held before too (``subprocess.run``
waits for the killed child, not for its output) and hold the new runner to the same.
"""
from __future__ import annotations

import sys

import pytest

from scheduler.backends import base
from scheduler.backends.runners import LocalRunner
from scheduler.backends.slurm_commands import SlurmCommandBackend
from scheduler.errors import SchedulerError, SchedulerTimeout
from tests.rawserver import outcome_in_a_thread


def fetch_in_a_thread(backend: SlurmCommandBackend, timeout: float) -> list:
    return outcome_in_a_thread(lambda: backend.fetch(timeout=timeout))


def test_a_squeue_whose_child_holds_its_output_open_times_out_with_the_poll() -> None:
    # The shell prints, leaves a child holding stdout for five minutes, and hangs itself.
    squeue = ["sh", "-c", "echo '{'; sleep 300 & sleep 300", "squeue"]
    outcome = fetch_in_a_thread(SlurmCommandBackend(LocalRunner({"squeue": squeue})), timeout=1)
    assert len(outcome) == 1 and isinstance(outcome[0], SchedulerTimeout), outcome
    assert "no answer within" in str(outcome[0])


def test_a_squeue_that_ends_but_leaves_a_child_holding_its_output_times_out() -> None:
    squeue = ["sh", "-c", "echo '{}'; sleep 300 &", "squeue"]
    outcome = fetch_in_a_thread(SlurmCommandBackend(LocalRunner({"squeue": squeue})), timeout=1)
    assert len(outcome) == 1 and isinstance(outcome[0], SchedulerTimeout), outcome


def test_output_past_the_cap_is_refused_and_the_command_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MAX_ANSWER_BYTES", 1 << 20)
    endless = [sys.executable, "-c", "import sys\nwhile True: sys.stdout.write('x' * 65536)"]
    outcome = fetch_in_a_thread(SlurmCommandBackend(LocalRunner({"squeue": endless})), timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], SchedulerError), outcome
    assert "output over 1,048,576 bytes" in str(outcome[0])


def test_a_document_nested_without_end_is_a_slurm_response_error() -> None:
    deep = [sys.executable, "-c", "print('[' * 100000 + ']' * 100000)"]
    outcome = fetch_in_a_thread(SlurmCommandBackend(LocalRunner({"squeue": deep})), timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], SchedulerError), outcome
    assert "nested too deeply" in str(outcome[0])
