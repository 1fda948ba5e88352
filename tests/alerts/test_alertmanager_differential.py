"""Our pipeline against a real Alertmanager on random routing trees: for each seed, a random tree
(matchers of all four kinds, legacy match/match_re, continue, inherited and overridden group_by
with '...' and the empty list), random inhibit rules and random alerts (label values with quotes,
backslashes and non-ASCII text) go to both, with the same YAML; both must send the same
notifications (receiver, group key, group labels, alerts). The hand-written cases are in
test_alertmanager_real.py; these seeds found what they missed: sibling routes with equal keys
(docs/reliability.md row 46) and ``group_by: []`` inheriting (seed 156)."""
from __future__ import annotations

import json
import random

import pytest

from tests.alerts.alertmanager_support import notify_both, summary
from tests.alerts.notify_support import CaptureServer

pytestmark = pytest.mark.real_component

SEEDS = [156, 100, 101]  # 156: a child route with `group_by: []`; 220 seeds of an earlier draw agreed (2026-12-06)
RECEIVERS = 6
VALUES = {"alertname": ["A", "B", "C"], "severity": ["critical", "warning", "info"],
          "instance": ["n1", "n2", "n3", "n4"], "team": ["ops", "ml", "", 'a"b', "x\\y", "été"], "gpu": ["0", "1"]}
REGEXES = ["n[12]", "crit.*", "", ".*", "A|B", "n.", "ops|", "(warning|info)"]
GROUPINGS = [["alertname"], ["instance"], ["alertname", "instance"], ["..."], [], ["team"], ["gpu", "severity"]]


class Draw:
    """One seed's configuration and alerts."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.root = {"receiver": "r0", "group_by": rng.choice(GROUPINGS), "group_wait": "1s", "group_interval": "1m",
                     "routes": [self.route(1) for _ in range(rng.randrange(0, 4))]}
        self.inhibit = [{"source_matchers": [self.matcher()], "target_matchers": [self.matcher()],
                         "equal": rng.sample(["instance", "gpu", "team", "alertname"], rng.randrange(0, 3))}
                        for _ in range(rng.randrange(0, 4))]
        self.alerts = [self.labels() for _ in range(rng.randrange(3, 9))]

    def matcher(self) -> str:
        name = self.rng.choice(list(VALUES))
        op = self.rng.choice(["=", "!=", "=~", "!~"])
        value = self.rng.choice(REGEXES) if "~" in op else self.rng.choice(VALUES[name] + [""])
        return f"{name}{op}{json.dumps(value, ensure_ascii=False)}"

    def route(self, depth: int) -> dict:
        rng = self.rng
        route: dict = {"receiver": f"r{rng.randrange(RECEIVERS)}"}
        if rng.random() < 0.8:
            route["matchers"] = [self.matcher() for _ in range(rng.randrange(0, 3))]
        for legacy, values in (("match", lambda name: VALUES[name]), ("match_re", lambda name: REGEXES)):
            if rng.random() < 0.3:
                name = rng.choice(list(VALUES))
                route[legacy] = {name: rng.choice(values(name))}
        if rng.random() < 0.4:
            route["continue"] = True
        if rng.random() < 0.3:
            route["group_by"] = rng.choice(GROUPINGS)
        if depth < 2 and rng.random() < 0.4:
            route["routes"] = [self.route(depth + 1) for _ in range(rng.randrange(1, 4))]
        return route

    def labels(self) -> dict[str, str]:
        labels = {"alertname": self.rng.choice(VALUES["alertname"])}
        for name in ("severity", "instance", "team", "gpu"):
            value = self.rng.choice(VALUES[name]) if self.rng.random() < 0.7 else ""
            if value:
                labels[name] = value
        return labels

    def config_for(self, url: str) -> str:
        return json.dumps({"route": self.root, "inhibit_rules": self.inhibit,
                           "receivers": [{"name": f"r{i}", "webhook_configs": [{"url": url}]}
                                         for i in range(RECEIVERS)]})


@pytest.mark.parametrize("seed", SEEDS)
def test_random_tree_notifies_as_alertmanager(seed, process_factory, tmp_path):
    draw = Draw(seed)
    am_capture, our_capture = CaptureServer(), CaptureServer()
    try:
        notify_both(process_factory, tmp_path, draw.config_for, draw.alerts, am_capture, our_capture)
        theirs, ours = summary(am_capture.delivered), summary(our_capture.delivered)
        assert theirs == ours, (draw.config_for("URL"), draw.alerts, sorted(theirs - ours), sorted(ours - theirs))
    finally:
        am_capture.close()
        our_capture.close()
