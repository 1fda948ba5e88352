"""What leaves ClusterWatch besides scheduler actions: webhooks (repair tickets, the fabric team,
job owners) and the configured reset/health-check command.

URLs and argument vectors come from the policy file only; the case's values that go into them
were validated (``validate``). The command runs without a shell, with a timeout, and its exit
status is the step's result.
"""
from __future__ import annotations

import subprocess
from typing import Any, Callable

import httpx

from remediation.policy import Receiver
from remediation.queries import _PLACEHOLDER

Sender = Callable[[Receiver, dict[str, Any], str], None]
Runner = Callable[[list[str], float], tuple[int, str]]


class OutboundError(Exception):
    pass


def send_webhook(receiver: Receiver, body: dict[str, Any], idempotency_key: str) -> None:
    """POST the JSON body; the key lets a receiver drop a repeat after a crash mid-send."""
    headers = {**receiver.headers, "Idempotency-Key": idempotency_key}
    try:
        response = httpx.post(receiver.url, json=body, headers=headers, timeout=receiver.timeout)
    except httpx.HTTPError as exc:
        raise OutboundError(f"{receiver.url}: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 300:
        raise OutboundError(f"{receiver.url} answered {response.status_code}: {response.text[:200]}")


def command_argv(template: tuple[str, ...], values: dict[str, str | None]) -> list[str]:
    """The argument vector with placeholders filled; each value stays one argument."""
    return [_PLACEHOLDER.sub(lambda m: values.get(m.group(1)) or "", arg) for arg in template]


def run_command(argv: list[str], timeout: float) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f}s"
    except OSError as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout + done.stderr)[-500:]
