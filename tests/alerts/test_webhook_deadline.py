"""A notification attempt ends by its ``timeout``, whatever the receiver does on the wire.

Observed before: httpx's timeout bounds each read, so a receiver sending its answer's headers a
byte at a time (a proxy stuck in front of it, a hostile endpoint) held the attempt, and that
receiver's delivery worker, for as long as it kept sending: the notifications queued behind it were
not retried. Alertmanager's webhook ``timeout`` is the whole request's; so is ours now. The same
holds for the remediation's webhook."""
from __future__ import annotations

import time

from alerts.notify import config as alerting_config
from alerts.notify.integrations import DeliveryError
from alerts.notify.pipeline import Pipeline
from remediation.outbound import OutboundError, send_webhook
from remediation.policy import Receiver
from tests.rawserver import drip_headers, outcome_in_a_thread, raw_server


def test_a_receiver_dripping_its_headers_ends_the_attempt_at_its_timeout() -> None:
    with raw_server(drip_headers) as address:
        pipeline = Pipeline(alerting_config.parse(f"""
route: {{receiver: slow}}
receivers:
  - name: slow
    webhook_configs: [{{url: "http://{address}/hook", timeout: 1s}}]
"""))
        integration = pipeline.integrations[("slow", "webhook/0")]
        started = time.monotonic()
        outcome = outcome_in_a_thread(lambda: integration.deliver({"alerts": []}, "key-1"))
        took = time.monotonic() - started
    assert len(outcome) == 1 and isinstance(outcome[0], DeliveryError), outcome
    assert outcome[0].retryable  # kept in the outbox and tried again
    assert took < 30


def test_a_remediation_receiver_dripping_its_headers_ends_at_its_timeout() -> None:
    with raw_server(drip_headers) as address:
        receiver = Receiver(url=f"http://{address}/tickets", timeout=1)
        outcome = outcome_in_a_thread(lambda: send_webhook(receiver, {"case": 1}, "key-1"))
    assert len(outcome) == 1 and isinstance(outcome[0], OutboundError), outcome
