"""The alert model speaks Alertmanager's language: same fingerprints, same webhook alert shape."""
import json
from pathlib import Path

import pytest

from alerts.model import Alert, fingerprint, rfc3339

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "alertmanager-0.25").glob("*.json"))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fingerprints_match_alertmanager(path):
    for alert in json.loads(path.read_text())["alerts"]:
        assert fingerprint(alert["labels"]) == alert["fingerprint"]


def test_webhook_alert_shape():
    alert = Alert({"alertname": "GpuFellOffTheBus", "instance": "gpu-007"}, {"summary": "x"}, starts_at=0.0)
    body = alert.to_json()
    assert body["status"] == "firing" and body["endsAt"] == "0001-01-01T00:00:00Z"
    assert body["startsAt"] == "1970-01-01T00:00:00Z"
    alert.ends_at = 90.5
    assert alert.to_json()["status"] == "resolved" and rfc3339(90.5) == "1970-01-01T00:01:30.5Z"
