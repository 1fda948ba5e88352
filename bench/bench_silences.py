"""Silences at cluster scale: a maintenance script's one silence per node, during an alert storm.

    .venv/bin/python -m bench.bench_silences [--silences 16384] [--alerts 50000] [--sample 500]

``--silences`` silences of the usual shape (``alertname="GpuXid", instance="gpu-NNNNN"``, one per
node) plus 20 regex-only ones (``instance=~"rack07-.*"``) go into a ``SilenceStore``; then
``muted_by`` judges ``--alerts`` storm alerts spread over the nodes, as the notification
pipeline's mute stage and the alerts page do on each pass. Beside it, the same judgement the way
it was made before the index (every alert tried against every silence), timed on ``--sample``
alerts and scaled to all of them. Printed: seconds to create the silences, seconds per pass,
and the alerts muted (both ways must agree on the sample).
"""
from __future__ import annotations

import argparse
import time

from alerts.model import Alert
from alerts.notify.matchers import parse_matchers
from alerts.notify.sqlite import Database
from alerts.silences import ACTIVE, Silence, SilenceStore

REGEX_ONLY = 20


def build(silences: int, now: float) -> SilenceStore:
    store = SilenceStore(Database(), lambda: now, max_silences=0)
    for node in range(silences):
        store.create(parse_matchers(f'alertname="GpuXid", instance="gpu-{node:05d}"'), now + 3600, "ops", "rma")
    for rack in range(REGEX_ONLY):
        store.create(parse_matchers(f'instance=~"rack{rack:02d}-.*"'), now + 3600, "ops", "rack work")
    return store


def storm(alerts: int, nodes: int, now: float) -> list[Alert]:
    names = ("GpuXid", "GpuHot", "NodeDown", "IbLinkDown")
    return [Alert({"alertname": names[i % len(names)], "instance": f"gpu-{(i * 7919) % (2 * nodes):05d}",
                   "gpu": str(i % 8), "severity": "critical"}, starts_at=now) for i in range(alerts)]


def every_silence(silences: list[Silence], alert: Alert, now: float) -> list[str]:
    """``SilenceStore.muted_by`` as it was before its index."""
    return sorted(s.id for s in silences if s.state(now) == ACTIVE and s.matches(alert))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silences", type=int, default=16_384)
    parser.add_argument("--alerts", type=int, default=50_000)
    parser.add_argument("--sample", type=int, default=500)
    args = parser.parse_args()
    now = time.time()
    started = time.perf_counter()
    store = build(args.silences, now)
    created = time.perf_counter() - started
    alerts = storm(args.alerts, args.silences, now)
    started = time.perf_counter()
    muted = [store.muted_by(alert, now) for alert in alerts]
    indexed = time.perf_counter() - started
    sample = alerts[:args.sample]
    started = time.perf_counter()
    everything = store.list()
    brute = [every_silence(everything, alert, now) for alert in sample]
    scanned = (time.perf_counter() - started) * len(alerts) / len(sample)
    assert brute == muted[:len(sample)], "the index and the full scan disagree"
    print(f"{args.silences + REGEX_ONLY:,} silences created in {created:.2f} s")
    print(f"one pass over {len(alerts):,} alerts: {indexed:.3f} s with the index; every alert against every "
          f"silence (before): {scanned:.1f} s (timed on {len(sample)} alerts, scaled)")
    print(f"alerts muted: {sum(1 for m in muted if m):,}")


if __name__ == "__main__":
    main()
