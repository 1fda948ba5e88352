"""Reloading alerting.yml without a restart (as Alertmanager reloads): new routes and receivers
take the alerts held, nothing already sent goes out again, a bad file changes nothing."""
from __future__ import annotations

from pathlib import Path

import pytest

from alerts.notify import component as alerting
from cwkernel.errors import ConfigError
from tests.alerts.notify_support import CONFIG, Harness, alert, config

ROUTED = CONFIG.replace("""receivers:
  - name: hook""", """  routes:
    - receiver: ml
      matchers: ['team="ml"']
receivers:
  - name: ml
    hook_configs: [{name: ml-capture}]
  - name: hook""")


def test_new_routes_take_the_alerts_held_and_nothing_sent_goes_out_again() -> None:
    h = Harness()
    ml_sent: list = []
    h.pipeline.register_hook("ml-capture", ml_sent.append)
    h.pipeline.notify([alert(h.clock.now, alertname="GpuHot", instance="n1", team="ml")])
    assert h.at(30) == [("firing", ["n1"])]

    h.pipeline.reload(config(ROUTED))
    assert h.at(40) == [] and ml_sent == []  # the new group waits its group_wait, as a new group does
    h.at(70)
    assert [(n.receiver, [a.labels["instance"] for a in n.alerts]) for n in ml_sent] == [("ml", ["n1"])]
    h.pipeline.notify([alert(h.clock.now, alertname="GpuCold", instance="n2")])
    assert h.at(110) == [("firing", ["n2"])]  # the rest still reaches the default receiver


def test_the_same_routes_again_send_nothing_again() -> None:
    h = Harness()
    h.pipeline.notify([alert(h.clock.now, alertname="GpuHot", instance="n1")])
    assert h.at(30) == [("firing", ["n1"])]
    h.pipeline.reload(config(CONFIG))
    assert h.at(70) == [] and h.at(400) == []  # within repeat_interval: the notification log says sent
    h.pipeline.notify([alert(h.clock.now, alertname="GpuHot", instance="n2")])
    assert h.at(700) == [("firing", ["n1", "n2"])]


def test_a_bad_file_changes_nothing_and_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "alerting.yml"
    path.write_text(CONFIG)
    built, pipeline = alerting.from_settings({"alerting_config": str(path)})
    try:
        path.write_text(CONFIG.replace("receiver: hook", "receiver: nobody", 1))
        with pytest.raises(ConfigError, match="alerting.yml"):
            built.reload()
        assert pipeline.config.route.opts.receiver == "hook"
        assert "reload_failed" in built.health()
        path.write_text(ROUTED)
        built.reload()
        assert set(pipeline.receivers) == {"ml", "hook"} and "reload_failed" not in built.health()
    finally:
        pipeline.close()
