"""Memory of the queries that used to exhaust the server, through the Prometheus API.

Loads the reference fleet's series (140 nodes x 8 GPUs, every series the simulator's exporters
expose) with HISTORY of samples at 5 s into an embedded store, then asks, through the /api/v1
routes of a server process on 127.0.0.1: the issue's ``query_range {__name__=~"gpu_.+"}`` over 6 h at 2 s (refused
before it loads: 76,160 series x 10,801 steps), ``count_over_time(vector(1)[30d:1ms])`` (refused
before its 2.6 billion steps exist), and a large answer under the limit (every GPU series over
1 h at 15 s: 18 M points). Prints, per query, the status, the time, and the server's RSS before,
at peak (sampled every 20 ms) and a second after the answer.

With ``--concurrent N``, then N of the large answers at once, and with ``--memory-limit SIZE`` the
server's engine gives way to that memory bound (cwkernel/memguard.py, as ``serve --memory-limit``):
past 85 % of it queries are refused at the gate or stopped at their next check. Printed: the
answers' statuses and the server's peak RSS.

    .venv/bin/python bench/bench_query_limits.py [--history 1800] [--concurrent 4] [--memory-limit 2GiB]
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from bench.bench_rules import T0, node_series  # noqa: E402
from bench.common import free_port, rss_bytes  # noqa: E402
from cwkernel.memguard import MemoryGuard  # noqa: E402
from cwkernel.settings import byte_size  # noqa: E402
from simulator.fleet import Fleet  # noqa: E402
from tsdb.api import build_router  # noqa: E402
from tsdb.importer import bulk_load  # noqa: E402
from tsdb.promql.engine import Engine  # noqa: E402
from tsdb.store import Store  # noqa: E402

SCRAPE_S = 5


def loaded_store(history_s: float) -> tuple[Store, float]:
    fleet = Fleet(nodes=140, seed=1, speed=0, start=T0)
    try:
        base = node_series(fleet)
    finally:
        fleet.stop()
    steps = int(history_s // SCRAPE_S)
    store = Store(retention_s=1e9)
    for phase, samples in enumerate(base.values()):
        # Each node scraped at its own phase, as the scraper does: a time column per target.
        times = [int((T0 + i * SCRAPE_S) * 1000) + phase for i in range(steps)]
        bulk_load(store, ((labels, times, [value] * steps) for labels, value in samples))
    return store, T0 + (steps - 1) * SCRAPE_S


class PeakRSS:
    """The highest RSS of process ``pid`` while in the block, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> "PeakRSS":
        self.peak = rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def serve(history_s: float, port: int, ready, memory_limit: int = 0) -> None:
    """The server process: the loaded store behind the /api/v1 routes, as ``serve`` mounts them."""
    store, end = loaded_store(history_s)
    guard = MemoryGuard(memory_limit, "--memory-limit") if memory_limit else None
    app = FastAPI()
    app.include_router(build_router(Engine(store, memory=guard), store))
    ready.put((end, store.stats()))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def concurrently(base: str, pid: int, form: dict, count: int, memory_limit: int) -> None:
    """``count`` copies of ``form``'s range query at once; their statuses and the peak RSS."""
    statuses: list[int] = []

    def ask() -> None:
        with httpx.Client(timeout=600) as http:
            with http.stream("POST", f"{base}/api/v1/query_range", data={k: str(v) for k, v in form.items()}) as r:
                for _ in r.iter_bytes():
                    pass
                statuses.append(r.status_code)

    before = rss_bytes(pid)
    with PeakRSS(pid) as peak:
        threads = [threading.Thread(target=ask) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    limit = f"memory limit {memory_limit / 1e6:,.0f} MB (line at 85 %: {memory_limit * 0.85 / 1e6:,.0f} MB)" \
        if memory_limit else "no memory limit"
    print(f"{count} at once, {limit}: answers {sorted(statuses)}; server RSS {before / 1e6:.0f} -> peak "
          f"{peak.peak / 1e6:.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", type=float, default=1800.0, help="seconds of samples at 5 s in the store")
    parser.add_argument("--concurrent", type=int, default=0, help="then this many large answers at once")
    parser.add_argument("--memory-limit", type=byte_size, default=0, help="the engine's memory bound (0: none)")
    args = parser.parse_args()
    port = free_port()
    ready: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(args.history, port, ready, args.memory_limit), daemon=True)
    server.start()
    try:
        end, stats = ready.get(timeout=300)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=600) as http:
            while True:
                try:
                    http.get(base + "/api/v1/status/buildinfo")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            print(f"store: {stats}; server RSS loaded {rss_bytes(server.pid) / 1e6:.0f} MB")
            queries = [
                ("query_range", {"query": '{__name__=~"gpu_.+"}', "start": end - 6 * 3600, "end": end, "step": 2}),
                ("query", {"query": "count_over_time(vector(1)[30d:1ms])", "time": end}),
                ("query_range", {"query": '{__name__=~"gpu_.+"}', "start": end - 3600, "end": end, "step": 15}),
            ]
            for path, form in queries:
                before = rss_bytes(server.pid)
                began = time.perf_counter()
                with PeakRSS(server.pid) as peak:
                    size, status, error = 0, 0, ""
                    with http.stream("POST", f"{base}/api/v1/{path}", data={k: str(v) for k, v in form.items()}) as r:
                        status = r.status_code
                        for chunk in r.iter_bytes():
                            size += len(chunk)
                            if status != 200:
                                error += chunk.decode()
                took = time.perf_counter() - began
                time.sleep(1.0)  # let the server finish its after-response work
                after = rss_bytes(server.pid)
                detail = f"200, {size / 1e6:.0f} MB of JSON" if status == 200 else f"{status} {error}"
                print(f"{path} {form['query']} ({', '.join(f'{k}={v}' for k, v in form.items() if k != 'query')}): "
                      f"{detail} in {took:.1f} s; server RSS {before / 1e6:.0f} -> peak {peak.peak / 1e6:.0f} -> "
                      f"after {after / 1e6:.0f} MB")
            if args.concurrent:
                # Half an hour: under the sample limit, an answer of about 10 M points.
                form = {**queries[-1][1], "start": end - 1800}
                concurrently(base, server.pid, form, args.concurrent, args.memory_limit)
    finally:
        server.terminate()
        server.join(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
