"""What remediation sends out is bounded by what comes back: the reset or health-check command's
output is capped, and a webhook's answer is read only as far as its status and the start of a
refusal.

Observed before: a command printing without end was held in memory until its timeout (a 30 s
timeout: gigabytes, and then only "timed out"); a ticket webhook answering 500 and then sending
its body slowly held the case's step until the receiver's timeout, because the whole answer was
read to keep its first 200 characters.
"""
from __future__ import annotations

import socket
import sys
import threading

from remediation.outbound import OutboundError, run_command, send_webhook
from remediation.policy import Receiver
from tests.rawserver import outcome_in_a_thread


def test_a_command_that_prints_without_end_is_stopped_at_the_cap() -> None:
    endless = [sys.executable, "-c", "import sys\nwhile True: sys.stdout.write('x' * 65536)"]
    outcome = outcome_in_a_thread(lambda: run_command(endless, 30))
    assert len(outcome) == 1
    status, output = outcome[0]
    assert status != 0 and "output over" in output


def test_a_command_output_tail_is_kept() -> None:
    status, output = run_command([sys.executable, "-c", "print('a' * 1000); print('reset done')"], 30)
    assert status == 0 and output.endswith("reset done\n") and len(output) <= 500


def test_a_refusal_whose_body_never_ends_is_reported_from_its_start() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100000000\r\n\r\n"
                         + b"ticket system down " * 100)
            release.wait(300)  # the rest of the body never comes while the test runs

    threading.Thread(target=answer, daemon=True).start()
    receiver = Receiver(url=f"http://127.0.0.1:{listener.getsockname()[1]}/tickets", timeout=300)
    try:
        outcome = outcome_in_a_thread(lambda: send_webhook(receiver, {"case": 1}, "key-1"))
    finally:
        release.set()
        listener.close()
    assert len(outcome) == 1 and isinstance(outcome[0], OutboundError), outcome
    assert "answered 500: ticket system down" in str(outcome[0])
