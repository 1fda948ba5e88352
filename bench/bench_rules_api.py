"""``/api/v1/rules`` and ``/api/v1/alerts`` in an alert storm: the shipped pack with ALERTS active
alerts spread over its alerting rules (labels and annotations shaped like the pack's), answered
through the real router (FastAPI, JSON) REPEATS times each, with no evaluation in between.
Prints per endpoint the wall time of the first answer (built) and the median of the others
(given again until the next evaluation), and the answer's size; ``?exclude_alerts=true`` too.

    .venv/bin/python bench/bench_rules_api.py [--alerts 50000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from alerts.evaluator.alerting import FIRING, ActiveAlert  # noqa: E402
from alerts.evaluator.api import build_router  # noqa: E402
from alerts.evaluator.component import build_evaluator  # noqa: E402
from tsdb.client import LocalQueryClient  # noqa: E402
from tsdb.promql.engine import Engine  # noqa: E402
from tsdb.store import Store  # noqa: E402


def storm(evaluator, count: int) -> None:
    rules = evaluator.alerting_rules()
    for i in range(count):
        rule = rules[i % len(rules)]
        labels = {"alertname": rule.rule.name, "instance": f"gpu-{i // 8:05d}", "gpu": str(i % 8),
                  "severity": "critical", "job_id": str(100_000 + i // 64)}
        annotations = {"summary": f"GPU {i % 8} on gpu-{i // 8:05d}: {rule.rule.name}",
                       "description": "What happened, why it matters and what to do, as the pack writes it. " * 2,
                       "runbook": f"docs/alerts.md#{rule.rule.name.lower()}"}
        rule.active = {**rule.active, str(i): ActiveAlert(labels, annotations, 95.0 + i, FIRING, 1.7e9 + i % 600)}


def timed(client: TestClient, path: str, repeats: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text[:200]
        size = len(answer.content)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    evaluator = build_evaluator(None, LocalQueryClient(Engine(Store())), None, None)
    storm(evaluator, args.alerts)
    app = FastAPI()
    app.include_router(build_router(evaluator))
    client = TestClient(app)
    rules = len(evaluator.alerting_rules())
    print(f"shipped pack: {sum(len(g.rules) for g in evaluator.groups)} rules ({rules} alerting) in "
          f"{len(evaluator.groups)} groups; {args.alerts:,} active alerts")
    for path in ("/api/v1/alerts", "/api/v1/rules", "/api/v1/rules?exclude_alerts=true"):
        times, size = timed(client, path, args.repeats)
        again = statistics.median(times[1:]) * 1000 if len(times) > 1 else float("nan")
        print(f"{path:40s} built {times[0] * 1000:8.1f} ms  again p50 {again:6.1f} ms  {size / 2**20:7.2f} MiB")


if __name__ == "__main__":
    main()
