"""A real Alertmanager for tests: start it, inject alerts, and send the same alerts to it and to our
pipeline (shared by the Alertmanager comparison tests and the fabric inhibition tests)."""
from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime, timezone

from alerts.notify import config as alerting_config
from alerts.notify.pipeline import Pipeline
from tests.alerts.notify_support import CaptureServer, Clock, alert
from tests.realcomponents import free_port, require_binary, wait_http


def start_alertmanager(process_factory, tmp_path, config_text: str) -> str:
    binary = require_binary("prometheus-alertmanager")
    (tmp_path / "am.yml").write_text(config_text)
    port = free_port()
    proc = process_factory([binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'am'}",
                            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                           name="alertmanager")
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/-/ready", proc=proc)
    return url


def inject(am_url: str, alerts: list[dict]) -> None:
    request = urllib.request.Request(f"{am_url}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def summary(bodies: list[dict]) -> set:
    return {(b["receiver"], b["groupKey"], json.dumps(b["groupLabels"], sort_keys=True), b["status"],
             frozenset(a["fingerprint"] for a in b["alerts"])) for b in bodies}


def notify_both(process_factory, tmp_path, config_for, inputs: list[dict], am_capture: CaptureServer,
                our_capture: CaptureServer) -> int:
    """The same alerts into a real Alertmanager and our pipeline, each with ``config_for(url)``
    pointing at its capture server; returns how many notifications ours sent, once Alertmanager
    has sent as many (and had time to send more)."""
    am = start_alertmanager(process_factory, tmp_path, config_for(am_capture.url))
    now = datetime.now(timezone.utc)
    inject(am, [{"labels": labels, "startsAt": now.isoformat().replace("+00:00", "Z")} for labels in inputs])
    clock = Clock(now.timestamp())
    ours = Pipeline(alerting_config.parse(config_for(our_capture.url)), clock=clock)
    ours.notify([alert(now.timestamp(), **labels) for labels in inputs])
    clock.advance(1.0)
    ours.flush()
    ours.deliver()
    expected = len(our_capture.delivered)
    am_capture.wait_for(expected, timeout=15)
    time.sleep(1.5)  # anything Alertmanager would send beyond ours arrives meanwhile
    return expected
