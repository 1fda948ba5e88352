"""``/-/live``: the liveness probe a Kubernetes deployment of the server points its kubelet at
(deploy/kubernetes/server.yaml). 503 while a loop of the server is stalled, so that the kubelet
restarts a wedged server, as systemd's watchdog does (cwkernel/sdnotify.py); 200 otherwise, a
degraded but moving server included (``/-/ready`` says what is degraded and stays 200). Before:
``/-/healthy`` answered OK from a server whose every loop had stopped, and nothing else could."""
from __future__ import annotations

from fastapi.testclient import TestClient

from cwkernel.server import Component, build_app


def test_live_is_503_while_a_loop_is_stalled_and_200_otherwise() -> None:
    wedged: dict[str, str] = {}
    degraded = {"wal_failed": "the log cannot be written"}
    app = build_app([Component("rules", stalled=lambda: wedged), Component("tsdb", health=lambda: degraded)])
    with TestClient(app) as client:
        assert client.get("/-/live").status_code == 200, "degraded but moving is alive"
        wedged["hardware"] = "the rule group hardware loop has not come round for 900 s"
        answer = client.get("/-/live")
        assert answer.status_code == 503
        assert "rule group hardware loop has not come round" in answer.text
        assert client.get("/-/healthy").status_code == 200 and client.get("/-/ready").status_code == 200
        wedged.clear()
        assert client.get("/-/live").text == "OK\n"
