"""``/api/v1/rules`` and ``/api/v1/alerts`` in process: what an operator's Grafana or script sees
as rules evaluate, go pending, fire, keep firing and resolve, and the filters and refusals
(tests/alerts/test_rules_api_differential.py holds the shapes to the real Prometheus)."""
from __future__ import annotations

from dataclasses import replace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from alerts.evaluator.api import build_router
from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.rulefile import Group, Rule
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tsdb.store import Store

HOT = Rule("alert", "Hot", "temp   >  90", {"severity": "warning"}, {"summary": "{{ $labels.instance }} hot"},
           for_s=120, keep_firing_for_s=60, file="gpu.yml", group="gpu")
COOL = Rule("record", "instance:temp:max", "max  by (instance) (temp)", file="gpu.yml", group="gpu", index=1)
DOWN = Rule("alert", "Down", "up == 0", file="node.yml", group="node")


def _served(values: list[float]) -> tuple[RuleEvaluator, TestClient]:
    store = Store(retention_s=1e9)
    store.append_series((("__name__", "temp"), ("instance", "n1")), [i * 60_000 for i in range(len(values))], values)
    evaluator = RuleEvaluator([Group("gpu", "gpu.yml", [HOT, COOL], interval_s=60),
                               Group("node", "node.yml", [DOWN], interval_s=30)],
                              LocalQueryClient(Engine(store)), writer=store.append_scrape, clock=lambda: 0.0)
    app = FastAPI()
    app.include_router(build_router(evaluator))
    return evaluator, TestClient(app)


def _rule(client: TestClient, name: str, query: str = "") -> dict:
    groups = client.get(f"/api/v1/rules{query}").json()["data"]["groups"]
    return next(rule for group in groups for rule in group["rules"] if rule["name"] == name)


def test_rules_before_their_first_evaluation_are_unknown() -> None:
    _, client = _served([50])
    hot = _rule(client, "Hot")
    assert hot["health"] == "unknown" and hot["lastEvaluation"] == "0001-01-01T00:00:00Z"
    assert hot["state"] == "inactive" and hot["alerts"] == [] and "lastError" not in hot
    assert hot["query"] == "temp > 90" and hot["duration"] == 120 and hot["keepFiringFor"] == 60
    assert _rule(client, "instance:temp:max")["query"] == "max by (instance) (temp)"


def test_an_alert_is_seen_pending_firing_kept_firing_then_gone() -> None:
    evaluator, client = _served([50, 95, 95, 95, 50, 50, 50, 50])
    evaluator.evaluate(60)
    hot = _rule(client, "Hot")
    assert hot["state"] == "pending" and hot["health"] == "ok"
    assert hot["lastEvaluation"] == "1970-01-01T00:01:00Z"
    assert hot["alerts"] == [{"labels": {"alertname": "Hot", "instance": "n1", "severity": "warning"},
                              "annotations": {"summary": "n1 hot"}, "state": "pending",
                              "activeAt": "1970-01-01T00:01:00Z", "value": "9.5e+01"}]
    evaluator.evaluate(180)
    assert _rule(client, "Hot")["state"] == "firing"
    evaluator.evaluate(240)  # gone from the result, kept firing for keep_firing_for
    kept = client.get("/api/v1/alerts").json()["data"]["alerts"]
    assert [(a["state"], a["keepFiringSince"]) for a in kept] == [("firing", "1970-01-01T00:04:00Z")]
    evaluator.evaluate(300)  # resolved: kept to tell the receivers, no longer listed
    assert client.get("/api/v1/alerts").json() == {"status": "success", "data": {"alerts": []}}
    assert _rule(client, "Hot")["state"] == "inactive" and _rule(client, "Hot")["alerts"] == []


def test_a_failing_rule_shows_its_error() -> None:
    store = Store(retention_s=1e9)
    broken = Rule("record", "broken", 'vector(1) + on() (label_replace(vector(1), "b", "1", "", "") or '
                                      'label_replace(vector(2), "b", "2", "", ""))', file="f.yml", group="g")
    evaluator = RuleEvaluator([Group("g", "f.yml", [broken])], LocalQueryClient(Engine(store)))
    evaluator.evaluate(0)
    app = FastAPI()
    app.include_router(build_router(evaluator))
    rule = _rule(TestClient(app), "broken")
    assert rule["health"] == "err"
    assert rule["lastError"].startswith('found duplicate series for the match group {} on the right hand-side of '
                                        'the operation: [{b="2"}, {b="1"}]')


def test_filters_by_type_name_group_and_file() -> None:
    evaluator, client = _served([95, 95])
    evaluator.evaluate(60)

    def names(query: str) -> list[tuple[str, list[str]]]:
        groups = client.get(f"/api/v1/rules{query}").json()["data"]["groups"]
        return [(g["name"], [r["name"] for r in g["rules"]]) for g in groups]

    assert names("") == [("gpu", ["Hot", "instance:temp:max"]), ("node", ["Down"])]
    assert names("?type=record") == [("gpu", ["instance:temp:max"]), ("node", [])]  # as Prometheus 2.42
    assert names("?rule_name[]=Down&rule_name[]=Hot") == [("gpu", ["Hot"]), ("node", ["Down"])]
    assert names("?rule_group[]=node") == [("node", ["Down"])]
    assert names("?file[]=gpu.yml&type=alert") == [("gpu", ["Hot"])]
    assert names("?rule_name[]=nothing") == []
    assert _rule(client, "Hot", "?exclude_alerts=true")["alerts"] is None
    assert _rule(client, "Hot", "?exclude_alerts=0")["alerts"][0]["state"] == "pending"


def test_bad_parameters_are_refused_in_prometheus_error_shape() -> None:
    _, client = _served([50])
    answer = client.get("/api/v1/rules?type=bogus")
    assert answer.status_code == 400
    assert answer.json() == {"status": "error", "errorType": "bad_data",
                             "error": 'invalid parameter "type": not supported value "bogus"'}
    answer = client.get("/api/v1/rules?exclude_alerts=maybe")
    assert answer.status_code == 400 and answer.json()["error"].startswith('invalid parameter "exclude_alerts"')
    assert client.post("/api/v1/rules").status_code == 405


def test_a_group_in_the_middle_of_its_evaluation_does_not_hold_the_answer() -> None:
    """A rule whose query takes its whole timeout must not stall the API: it answers from what
    each group's last evaluation published."""
    evaluator, client = _served([95, 95])
    evaluator.evaluate(60)
    with evaluator.groups[0].lock:  # as while the group evaluates
        assert _rule(client, "Hot")["state"] == "pending"
        assert len(client.get("/api/v1/alerts").json()["data"]["alerts"]) == 1


def test_an_answer_is_built_once_per_evaluation(monkeypatch) -> None:
    """In a storm a list of 50,000 alerts takes about a second to build: clients polling between
    two evaluations get the same answer again, not another second of a core."""
    from alerts.evaluator import api

    built = []
    real = api.alerts_data
    monkeypatch.setattr(api, "alerts_data", lambda evaluator: built.append(1) or real(evaluator))
    evaluator, client = _served([95, 95, 95, 95])
    evaluator.evaluate(60)
    for _ in range(3):
        assert client.get("/api/v1/alerts").json()["data"]["alerts"][0]["state"] == "pending"
    assert len(built) == 1
    evaluator.evaluate(180)
    assert client.get("/api/v1/alerts").json()["data"]["alerts"][0]["state"] == "firing"
    assert len(built) == 2


def test_answers_are_gzipped_for_a_client_that_accepts_it() -> None:
    evaluator, client = _served([95, 95])
    evaluator.evaluate(60)
    rule = evaluator.alerting_rules()[0]
    rule.active = {**rule.active, **{str(i): replace(next(iter(rule.active.values())), labels={"alertname": "Hot",
                                                                                                "instance": f"n{i}"})
                                     for i in range(100)}}
    evaluator.generation += 1
    for path in ("/api/v1/alerts", "/api/v1/rules"):
        plain = client.get(path, headers={"Accept-Encoding": "identity"})
        for _ in range(2):  # built, then kept
            packed = client.get(path, headers={"Accept-Encoding": "gzip"})
            assert packed.headers["content-encoding"] == "gzip" and packed.json() == plain.json()
            assert packed.num_bytes_downloaded < len(plain.content) / 3
        assert "content-encoding" not in plain.headers
