"""Rule-test data as stores, and the shipped alerting configurations routed to one capturing hook
(shared by the rule pack's tests and the fabric inhibition tests)."""
from __future__ import annotations

from pathlib import Path

import yaml

from alerts.evaluator.notation import expand_values, parse_series
from alerts.evaluator.vector import as_labels
from tsdb.store import Store

ROOT = Path(__file__).resolve().parents[2]


def group_store(test: dict, interval_s: float) -> tuple[Store, float]:
    """A store holding one test group's input series, and the time of its last sample."""
    store = Store(retention_s=10 * 365 * 86400.0)
    last = 0.0
    for item in test.get("input_series") or []:
        points = [(i * interval_s, v) for i, v in enumerate(expand_values(str(item["values"]))) if v is not None]
        store.append_series(as_labels(parse_series(str(item["series"]))),
                            [round(t * 1000) for t, _ in points], [v for _, v in points])
        last = max([last] + [t for t, _ in points])
    return store, last


SHIPPED = {"embedded": (ROOT / "alerts" / "notify" / "default.yml").read_text(),
           "alertmanager": (ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text()}


def with_capture(shipped: str) -> str:
    """The shipped inhibit rules and grouping, every alert routed to the capturing hook."""
    shipped_config = yaml.safe_load(shipped)
    return yaml.safe_dump({
        "global": {"resolve_timeout": "1d"},
        "route": {"receiver": "hook", "group_by": shipped_config["route"]["group_by"], "group_wait": "30s",
                  "group_interval": "1m", "repeat_interval": "4h"},
        "receivers": [{"name": "hook", "hook_configs": [{"name": "capture"}]}],
        "inhibit_rules": shipped_config["inhibit_rules"]})
