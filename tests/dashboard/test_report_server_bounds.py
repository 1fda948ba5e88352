"""``clusterwatch report --server URL`` reads another process's answer, bounded like any other: a
server dripping it ends at the command's timeout, one streaming without end is refused at the cap,
each with a one-line error naming ``--server``.

Observed before: the answer's size was capped, but httpx's timeout bounded each read, so a server
sending a byte every 0.1 s held the weekly report for as long as it kept sending."""
from __future__ import annotations

import pytest

from clusterwatch.commands import report
from cwkernel.errors import ConfigError
from tests.rawserver import drip_body, drip_headers, endless_body, outcome_in_a_thread, raw_server


@pytest.mark.parametrize("answer", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_server_dripping_its_answer_ends_at_the_timeout(answer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "TIMEOUT_S", 1.0)
    with raw_server(answer) as address:
        outcome = outcome_in_a_thread(lambda: report.from_server(f"http://{address}", {"range": "1d"}))
    assert len(outcome) == 1 and isinstance(outcome[0], ConfigError), outcome
    assert outcome[0].field == "--server" and "no answer within 1.0s" in str(outcome[0])


def test_an_endless_answer_is_refused_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "MAX_ANSWER_BYTES", 1 << 20)
    with raw_server(endless_body) as address:
        outcome = outcome_in_a_thread(lambda: report.from_server(f"http://{address}", {"range": "1d"}))
    assert len(outcome) == 1 and isinstance(outcome[0], ConfigError), outcome
    assert "answer over 1,048,576 bytes" in str(outcome[0])
