"""What leaves ClusterWatch besides scheduler actions: webhooks (repair tickets, the fabric team,
job owners) and the configured reset/health-check command.

URLs and argument vectors come from the policy file only; the case's values that go into them
were validated (``validate``). The command runs without a shell, with a timeout and a cap on its
output, and its exit status is the step's result. A webhook's answer is read only as far as its
status and the start of a refusal.
"""
from __future__ import annotations

from typing import Any, Callable

import httpx

from cwkernel import httpdeadline
from cwkernel.boundedproc import OutputTooLarge, ProcessTimeout, run_bounded

from remediation.policy import Receiver
from remediation.queries import _PLACEHOLDER

Sender = Callable[[Receiver, dict[str, Any], str], None]
Runner = Callable[[list[str], float], tuple[int, str]]
# A reset or a health check prints a page or two; one that prints more is not trusted to have passed.
MAX_COMMAND_OUTPUT = 1 << 20
OUTPUT_KEPT = 500  # characters of the end of a command's output kept in the audit
ANSWER_KEPT = 200  # bytes of the start of a webhook's refusal kept in the audit


class OutboundError(Exception):
    pass


def send_webhook(receiver: Receiver, body: dict[str, Any], idempotency_key: str) -> None:
    """POST the JSON body; the key lets a receiver drop a repeat after a crash mid-send."""
    headers = {**receiver.headers, "Idempotency-Key": idempotency_key}
    try:
        with httpdeadline.client() as client, httpdeadline.deadline(receiver.timeout) as extensions, \
                client.stream("POST", receiver.url, json=body, headers=headers, timeout=receiver.timeout,
                              extensions=extensions) as response:
            if response.status_code < 300:
                return
            start = next(response.iter_raw(ANSWER_KEPT), b"")
    except httpx.HTTPError as exc:
        raise OutboundError(f"{receiver.url}: {type(exc).__name__}: {exc}") from None
    raise OutboundError(f"{receiver.url} answered {response.status_code}: "
                        f"{start[:ANSWER_KEPT].decode('utf-8', 'replace')}")


def command_argv(template: tuple[str, ...], values: dict[str, str | None]) -> list[str]:
    """The argument vector with placeholders filled; each value stays one argument."""
    return [_PLACEHOLDER.sub(lambda m: values.get(m.group(1)) or "", arg) for arg in template]


def run_command(argv: list[str], timeout: float) -> tuple[int, str]:
    try:
        done = run_bounded(argv, timeout, MAX_COMMAND_OUTPUT, MAX_COMMAND_OUTPUT)
    except ProcessTimeout:
        return 124, f"timed out after {timeout:.0f}s"
    except OutputTooLarge as exc:
        return 125, str(exc)
    except OSError as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout + done.stderr)[-OUTPUT_KEPT:]
