"""Time to notify: alert handed to ``pipeline.notify`` -> webhook received, with the pipeline's
own loops running (group_wait 0s, so the figure is the pipeline's cost, not a configured wait).
Run with -s to see the figures (docs/performance.md, "Notification pipeline")."""
from __future__ import annotations

import statistics
import time

from alerts.notify.pipeline import Pipeline
from tests.alerts.notify_support import CaptureServer, alert, config


def test_time_to_notify(tmp_path):
    server = CaptureServer()
    pipeline = Pipeline(config(f"""
route: {{receiver: hook, group_by: [alertname], group_wait: 0s}}
receivers: [{{name: hook, webhook_configs: [{{url: "{server.url}"}}]}}]
"""), tmp_path / "alerting.db")
    pipeline.start()
    try:
        latencies = []
        for i in range(30):
            started = time.monotonic()
            pipeline.notify([alert(time.time(), alertname=f"Bench{i}", instance="n1")])
            server.wait_for(i + 1, timeout=5)
            latencies.append(time.monotonic() - started)
        assert len(server.delivered) == 30
        median, worst = statistics.median(latencies), max(latencies)
        print(f"\ntime to notify over 30 alerts: median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms")
        assert median < 0.5
    finally:
        pipeline.stop()
        pipeline.close()
        server.close()
