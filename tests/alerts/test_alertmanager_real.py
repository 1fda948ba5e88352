"""Against a real Alertmanager 0.25 (Debian's prometheus-alertmanager):
(a) it delivers to our inbound receiver (bearer token through http_config.authorization) and the
    alerts appear in GET /api/alerts;
(b) fed the same alerts with the same route and inhibit rules (the same YAML text, only the
    webhook URL differs), it and our pipeline produce the same notifications: receiver, group
    key, group labels and alert set.
"""
from __future__ import annotations

import time

import httpx
import pytest

from alerts.notify import config as alerting_config
from alerts.notify.component import component
from alerts.notify.pipeline import Pipeline
from cwkernel.server import build_app
from tests.alerts.alertmanager_support import inject, notify_both, start_alertmanager, summary
from tests.alerts.notify_support import CaptureServer, ServedApp

pytestmark = pytest.mark.real_component


def test_alertmanager_delivers_to_our_receiver(process_factory, tmp_path):
    pipeline = Pipeline(alerting_config.load())
    served = ServedApp(build_app([component(pipeline, webhook_token="amtoken")]))
    try:
        am = start_alertmanager(process_factory, tmp_path, f"""
route: {{receiver: cw, group_by: [alertname], group_wait: 1s, group_interval: 1m}}
receivers:
  - name: cw
    webhook_configs:
      - url: http://127.0.0.1:{served.port}/api/v1/alertmanager/webhook
        http_config: {{authorization: {{type: Bearer, credentials: amtoken}}}}
""")
        inject(am, [{"labels": {"alertname": "Xid79", "instance": "node07", "gpu": "3", "severity": "critical"},
                     "annotations": {"summary": "GPU fell off the bus"}}])
        deadline = time.monotonic() + 15
        found = []
        while time.monotonic() < deadline and not found:
            found = httpx.get(f"http://127.0.0.1:{served.port}/api/alerts").json()
            time.sleep(0.1)
        assert [a["labels"]["instance"] for a in found] == ["node07"]
        assert found[0]["source"] == "alertmanager:cw" and found[0]["state"] == "firing"
        assert found[0]["annotations"] == {"summary": "GPU fell off the bus"}
    finally:
        served.stop()


SAME_CONFIG = """
global: {{resolve_timeout: 1h}}
route:
  receiver: team
  group_by: [instance]
  group_wait: 1s
  group_interval: 1m
  routes:
    - receiver: pager
      matchers: ['severity="critical"']
      group_by: [alertname, instance]
      continue: true
    - receiver: fabric
      match_re: {{alertname: "Ib.*"}}
receivers:
  - {{name: team, webhook_configs: [{{url: "{url}"}}]}}
  - {{name: pager, webhook_configs: [{{url: "{url}"}}]}}
  - {{name: fabric, webhook_configs: [{{url: "{url}"}}]}}
inhibit_rules:
  - source_matchers: [alertname="NodeDown"]
    target_matchers: ['alertname!="NodeDown"']
    equal: [instance]
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [instance]
"""
INPUT = [
    {"alertname": "NodeDown", "instance": "n1", "severity": "critical"},
    {"alertname": "GpuLost", "instance": "n1", "gpu": "2", "severity": "critical"},
    {"alertname": "Xid79", "instance": "n2", "gpu": "0", "severity": "critical"},
    {"alertname": "GpuHot", "instance": "n2", "gpu": "1", "severity": "warning"},
    {"alertname": "GpuHot", "instance": "n3", "gpu": "1", "severity": "warning"},
    {"alertname": "IbPortDown", "instance": "n3", "port": "1", "severity": "warning"},
    {"alertname": "IbPortDown", "instance": "n4", "port": "2", "severity": "critical"},
]


def test_grouping_and_inhibition_match_alertmanager(process_factory, tmp_path):
    am_capture, our_capture = CaptureServer(), CaptureServer()
    try:
        expected = notify_both(process_factory, tmp_path, lambda url: SAME_CONFIG.format(url=url), INPUT,
                               am_capture, our_capture)
        assert expected >= 5
        assert summary(am_capture.delivered) == summary(our_capture.delivered)
        # Inhibited by NodeDown on n1 and by the critical alert on n2: absent from both.
        sent = {a["labels"]["alertname"] + "@" + a["labels"]["instance"]
                for b in our_capture.delivered for a in b["alerts"]}
        assert "GpuLost@n1" not in sent and "GpuHot@n2" not in sent and "GpuHot@n3" in sent
    finally:
        am_capture.close()
        our_capture.close()


TWO_PLACES = """
route:
  receiver: chat
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1m
  routes:
    - {{receiver: chat, continue: true}}
    - {{receiver: pager}}
receivers:
  - {{name: chat, webhook_configs: [{{url: "{url}"}}]}}
  - {{name: pager, webhook_configs: [{{url: "{url}"}}]}}
"""


def test_sibling_routes_with_equal_keys_notify_both_receivers_as_alertmanager(process_factory, tmp_path):
    am_capture, our_capture = CaptureServer(), CaptureServer()
    try:
        expected = notify_both(process_factory, tmp_path, lambda url: TWO_PLACES.format(url=url), INPUT[:3],
                               am_capture, our_capture)
        assert summary(am_capture.delivered) == summary(our_capture.delivered)
        assert expected == 6 and {b["receiver"] for b in our_capture.delivered} == {"chat", "pager"}
    finally:
        am_capture.close()
        our_capture.close()
