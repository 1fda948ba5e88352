"""slurmrestd and the simulator's command face are read within the poll's time and up to a cap:
an answer that drips, or never ends, is a ``SchedulerError`` and the poll comes back.

Observed before: httpx's timeout bounds each read, so a server sending a byte every 0.1 s held
the poll (and the adapter's thread) for as long as it kept sending; an answer was read whole
before it was looked at.
"""
from __future__ import annotations

import pytest

from scheduler.backends import base
from scheduler.backends.runners import HttpRunner
from scheduler.backends.slurm_commands import SlurmCommandBackend
from scheduler.backends.slurmrestd import SlurmRestBackend
from scheduler.errors import SchedulerError, SchedulerTimeout
from tests.rawserver import Answer, drip_body, drip_headers, endless_body, outcome_in_a_thread, raw_server


def backends(address: str) -> dict:
    url = f"http://{address}"
    return {"slurmrestd": SlurmRestBackend(url, api_version="v0.0.40"),
            "simulator": SlurmCommandBackend(HttpRunner(url))}


@pytest.mark.parametrize("answer", [drip_body, drip_headers], ids=["body", "headers"])
@pytest.mark.parametrize("kind", ["slurmrestd", "simulator"])
def test_an_answer_that_drips_ends_with_the_poll(kind: str, answer: Answer) -> None:
    """The answer's deadline was checked between chunks of the body only: headers sent a byte at a
    time held the poll (and a drain, on the same client) for as long as they kept coming."""
    with raw_server(answer) as url:
        backend = backends(url)[kind]
        outcome = outcome_in_a_thread(lambda: backend.fetch(timeout=1))
    assert len(outcome) == 1 and isinstance(outcome[0], SchedulerTimeout), outcome
    assert "no answer within 1.0s" in str(outcome[0])


@pytest.mark.parametrize("kind", ["slurmrestd", "simulator"])
def test_an_answer_past_the_cap_is_refused(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MAX_ANSWER_BYTES", 1 << 20)
    with raw_server(endless_body) as url:
        backend = backends(url)[kind]
        outcome = outcome_in_a_thread(lambda: backend.fetch(timeout=30))
    assert len(outcome) == 1 and isinstance(outcome[0], SchedulerError), outcome
    assert "answer over 1,048,576 bytes" in str(outcome[0])

