"""The alerts view model in-process: the notification pipeline's alerts with their states, pending
alerts from the evaluator's ALERTS series, filters, silences and history; and the page's routes."""
from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from alerts.model import Alert
from alerts.notify import config as alerting_config
from alerts.notify.component import component as alerting_component
from alerts.notify.pipeline import Pipeline
from alerts.reader import AlertingReader
from cwkernel.auth import OperatorAuth, install
from cwkernel.server import build_app
from dashboard.component import dashboard_component
from dashboard.context import DashboardContext
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tsdb.store import Store

TOKEN = "view-test-secret"


def labels(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


@pytest.fixture
def stack():
    now = time.time()
    store = Store()
    # What the rule evaluator writes: one pending alert (with its active-since) and one firing.
    pending = dict(alertname="GpuHot", severity="warning", instance="node-b", gpu="3")
    store.append_scrape("rules", int(now * 1000) - 1000, [
        (labels(__name__="ALERTS", alertstate="pending", **pending), 1.0),
        (labels(__name__="ALERTS_FOR_STATE", **pending), now - 40),
        (labels(__name__="ALERTS", alertstate="firing", alertname="GpuXidRebootRequired", severity="critical",
                instance="node-a", gpu="5"), 1.0),
    ])
    pipeline = Pipeline(alerting_config.load(None), ":memory:")
    pipeline.notify([Alert({"alertname": "GpuXidRebootRequired", "severity": "critical", "instance": "node-a", "gpu": "5"},
                           {"summary": "XID 79 on node-a GPU 5"}, starts_at=now - 60),
                     Alert({"alertname": "NodeDown", "severity": "critical", "instance": "node-c"}, {}, starts_at=now - 30),
                     Alert({"alertname": "IbPortDown", "severity": "warning", "instance": "node-a"}, {}, starts_at=now - 10)])
    ctx = DashboardContext(LocalQueryClient(Engine(store)), alerting=AlertingReader(pipeline))
    app = build_app([alerting_component(pipeline), dashboard_component(ctx)])
    install(app, OperatorAuth({"alice": TOKEN}))
    with TestClient(app) as client:
        yield client, pipeline
    pipeline.close()


def test_current_pending_counts_and_choices(stack):
    client, _ = stack
    view = client.get("/api/alerts-view", params={"range": "15m"}).json()
    assert view["connected"]
    assert {a["labels"]["alertname"] for a in view["alerts"]} == {"GpuXidRebootRequired", "NodeDown", "IbPortDown"}
    assert view["firing_by_severity"] == {"critical": 2, "warning": 1}
    assert view["alerts"][0]["labels"]["severity"] == "critical"  # criticals first
    [pending] = view["pending"]
    assert pending["labels"] == {"alertname": "GpuHot", "severity": "warning", "instance": "node-b", "gpu": "3"}
    assert pending["active_since"] == pytest.approx(time.time() - 40, abs=5)
    assert view["choices"]["instance"] == ["node-a", "node-b", "node-c"]
    assert {h["alertname"] for h in view["history"]} == {"GpuXidRebootRequired", "NodeDown", "IbPortDown"}
    # The page is the same model, embedded for the script.
    page = client.get("/alerts", params={"range": "15m"})
    assert page.status_code == 200 and 'data-api="/api/alerts-view"' in page.text and "XID 79 on node-a GPU 5" in page.text
    assert '<a href="/alerts">Alerts</a>' in page.text


@pytest.mark.parametrize("params,names,pending", [
    ({"severity": "warning"}, {"IbPortDown"}, 1),
    ({"alertname": "NodeDown"}, {"NodeDown"}, 0),
    ({"instance": "node-a"}, {"GpuXidRebootRequired", "IbPortDown"}, 0),
    ({"instance": "node-[bc]"}, {"NodeDown"}, 1),
])
def test_filters(stack, params, names, pending):
    client, _ = stack
    view = client.get("/api/alerts-view", params=params).json()
    assert {a["labels"]["alertname"] for a in view["alerts"]} == names
    assert len(view["pending"]) == pending and view["counts"]["pending"] == pending
    assert all(h["alertname"] in names for h in view["history"])


def test_bad_filter_is_a_clear_400(stack):
    client, _ = stack
    response = client.get("/api/alerts-view", params={"instance": "node-[a"})
    assert response.status_code == 400 and "instance" in response.text


def test_silence_and_ack_show_as_states(stack):
    client, pipeline = stack
    auth = {"Authorization": f"Bearer {TOKEN}"}
    created = client.post("/api/silences", headers=auth, json={
        "matchers": [{"name": "alertname", "value": "NodeDown"}, {"name": "instance", "value": "node-c"}],
        "duration": "1h", "createdBy": "alice", "comment": "rebooting"})
    assert created.status_code == 201, created.text
    xid = next(a for a in pipeline.store.current() if a.name == "GpuXidRebootRequired")
    assert client.post(f"/api/alerts/{xid.fingerprint}/ack", headers=auth, json={"comment": "on it"}).status_code == 200
    view = client.get("/api/alerts-view").json()
    states = {a["labels"]["alertname"]: a["state"] for a in view["alerts"]}
    assert states == {"NodeDown": "silenced", "GpuXidRebootRequired": "acknowledged", "IbPortDown": "firing"}
    assert view["firing_by_severity"] == {"warning": 1}
    assert view["counts"] == {"pending": 1, "silenced": 1, "acknowledged": 1, "firing": 1}
    [silence] = view["silences"]
    assert silence["state"] == "active" and silence["comment"] == "rebooting"
    client.delete(f"/api/silences/{silence['id']}", headers=auth).raise_for_status()
    view = client.get("/api/alerts-view").json()
    assert view["silences"][0]["state"] == "expired"
    assert {a["labels"]["alertname"]: a["state"] for a in view["alerts"]}["NodeDown"] == "firing"


def test_without_the_pipeline_only_pending_is_known():
    store = Store()
    store.append_scrape("rules", int(time.time() * 1000), [
        (labels(__name__="ALERTS", alertstate="pending", alertname="X", severity="info"), 1.0)])
    app = build_app([dashboard_component(DashboardContext(LocalQueryClient(Engine(store))))])
    with TestClient(app) as client:
        view = client.get("/api/alerts-view").json()
    assert not view["connected"] and view["alerts"] == [] and len(view["pending"]) == 1
    assert view["automation"] is False  # no remediation engine: the page does not ask its API


def test_the_page_knows_when_serve_hands_it_the_remediation_engine():
    from cwkernel.server import Deps
    from dashboard import component as dashboard

    query = LocalQueryClient(Engine(Store()))
    for engine, expected in ((None, False), (object(), True)):
        app = build_app([dashboard.build({}, Deps(request_query=query, remediation=engine))])
        with TestClient(app) as client:
            assert client.get("/api/alerts-view").json()["automation"] is expected


def test_a_storm_is_counted_whole_and_shown_in_part():
    """Thousands of current alerts: every one counted, the first ALERTS_SHOWN sent (criticals
    first, then oldest), the filter menus bounded."""
    from dashboard.views.alerts import ALERTS_SHOWN, CHOICES_SHOWN

    now = time.time()
    pipeline = Pipeline(alerting_config.load(None), ":memory:")
    count = ALERTS_SHOWN + CHOICES_SHOWN + 10
    pipeline.receive([Alert({"alertname": "GpuHot", "severity": "critical" if i % 10 == 0 else "warning",
                             "instance": f"node-{i:05d}"}, {}, starts_at=now - i) for i in range(count)])
    ctx = DashboardContext(LocalQueryClient(Engine(Store())), alerting=AlertingReader(pipeline))
    with TestClient(build_app([alerting_component(pipeline), dashboard_component(ctx)])) as client:
        view = client.get("/api/alerts-view").json()
        page = client.get("/alerts")
    assert view["alerts_total"] == count and len(view["alerts"]) == ALERTS_SHOWN
    assert sum(view["counts"].values()) == count  # pending 0, the rest by state
    criticals = len(range(0, count, 10))
    assert [a["labels"]["severity"] for a in view["alerts"][:criticals]] == ["critical"] * criticals
    assert view["alerts"][0]["labels"]["instance"] == f"node-{(count - 1) // 10 * 10:05d}"  # the oldest critical
    assert len(view["choices"]["instance"]) == CHOICES_SHOWN
    assert page.status_code == 200
    pipeline.close()


def test_notification_queues_show_pending_and_dropped():
    from tests.alerts.notify_support import config
    from tests.realcomponents import free_port

    pipeline = Pipeline(config(f"""
route: {{receiver: dead, group_by: [instance], group_wait: 0s}}
receivers:
  - {{name: dead, webhook_configs: [{{url: "http://127.0.0.1:{free_port()}/hook"}}]}}
  - {{name: chat, log_configs: [{{}}]}}
"""), max_pending_per_receiver=2)
    pipeline.notify([Alert({"alertname": "NodeDown", "instance": f"n{i}"}, {}, starts_at=time.time() - 60)
                     for i in range(3)])
    pipeline.flush()
    ctx = DashboardContext(LocalQueryClient(Engine(Store())), alerting=AlertingReader(pipeline))
    with TestClient(build_app([dashboard_component(ctx)])) as client:
        view = client.get("/api/alerts-view").json()
    assert view["receivers"] == [
        {"receiver": "chat", "integration": "log/0", "pending": 0, "dropped": 0},
        {"receiver": "dead", "integration": "webhook/0", "pending": 2, "dropped": 1},
    ]
    pipeline.close()
