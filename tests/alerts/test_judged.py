"""Every reader of the alerts (the API, the alerts page) shares one judgement of their states
until an alert, an acknowledgement or a silence changes, or a silence starts or ends: fifty
dashboard users during a 50,000-alert storm cost one judgement, not fifty (issue 14)."""
from __future__ import annotations

from alerts.notify.matchers import parse_matchers
from alerts.notify.pipeline import Pipeline
from tests.alerts.notify_support import Clock, alert, config

CONFIG = """
route: {receiver: log, group_by: [instance], group_wait: 0s}
receivers: [{name: log, log_configs: [{}]}]
inhibit_rules:
  - {source_matchers: [alertname="NodeDown"], target_matchers: ['alertname!="NodeDown"'], equal: [instance]}
"""


def states(pipeline: Pipeline) -> dict[str, str]:
    return {j.alert.labels["instance"]: j.state for j in pipeline.judged.current()}


def test_readers_share_one_judgement_until_something_changes():
    clock = Clock()
    pipeline = Pipeline(config(CONFIG), clock=clock)
    pipeline.notify([alert(clock.now, alertname="GpuHot", instance=f"n{i}") for i in range(100)])
    first = pipeline.judged.current()
    for _ in range(50):
        assert pipeline.judged.current() is first
    assert pipeline.judged.judgements == 1

    pipeline.notify([alert(clock.now, alertname="NodeDown", instance="n1")])  # new alerts: judged again
    assert states(pipeline)["n1"] in ("firing", "inhibited") and len(pipeline.judged.current()) == 101
    assert pipeline.judged.judgements == 2

    fingerprint = next(j.alert.fingerprint for j in pipeline.judged.current() if j.alert.labels["instance"] == "n7")
    pipeline.store.ack(fingerprint, "op", "looking", clock.now)  # an acknowledgement shows at once
    assert states(pipeline)["n7"] == "acknowledged"


def test_a_silence_is_seen_when_created_when_it_starts_and_when_it_ends():
    clock = Clock()
    pipeline = Pipeline(config(CONFIG), clock=clock)
    pipeline.notify([alert(clock.now, alertname="GpuHot", instance="n2")])
    assert states(pipeline) == {"n2": "firing"}
    pipeline.silences.create(parse_matchers('instance="n2"'), clock.now + 120, "op", "later",
                             starts_at=clock.now + 60)
    assert states(pipeline) == {"n2": "firing"}  # pending: created, not started
    judgements = pipeline.judged.judgements
    clock.advance(59)
    assert states(pipeline) == {"n2": "firing"} and pipeline.judged.judgements == judgements  # nothing moved
    clock.advance(1)
    assert states(pipeline) == {"n2": "silenced"}  # it started: nothing else changed, judged again
    clock.advance(60)
    assert states(pipeline) == {"n2": "firing"}  # it ended
