"""What writing a snapshot (``serve --snapshot``, every 5 minutes) costs the server: its time, the
longest a scrape or rule waits for the store's lock meanwhile, and the peak memory.

    .venv/bin/python -m bench.bench_snapshot [--targets 140] [--series 200] [--samples 1440]

A synthetic store (TARGETS columns of SERIES series with SAMPLES samples each; the default is the
demo's 140 nodes at a fifth of their series, two hours at 5 s) is built in this process, then
written to a temporary directory while a thread takes the store's lock every millisecond and
times each wait, then loaded back into an empty store (a restart). Peak memory is the process's
high-water mark (VmHWM, reset between the two), so run it on its own.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import rss_bytes  # noqa: E402
from tsdb.snapshot import load_snapshot, save_snapshot  # noqa: E402
from tsdb.store import Store, TimeColumn  # noqa: E402


def build(targets: int, series: int, samples: int) -> Store:
    store = Store(retention_s=10**9)
    timestamps = np.arange(samples, dtype=np.int64) * 5000
    values = np.random.default_rng(1).random(samples)
    for target in range(targets):
        column = TimeColumn()
        column.ts.extend(timestamps)
        for number in range(series):
            labels = (("__name__", f"m{number % 50}"), ("instance", f"n{target}"), ("s", str(number)))
            store.append_series(labels, timestamps, values, column=column)
    return store


def peak_rss_mb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) >> 10 for line in status if line.startswith("VmHWM:"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=140)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--samples", type=int, default=1440)
    args = parser.parse_args()
    store = build(args.targets, args.series, args.samples)
    before = rss_bytes(os.getpid()) >> 20
    print(f"store: {args.targets * args.series:,} series x {args.samples:,} samples "
          f"({args.targets * args.series * args.samples / 1e6:.0f} M samples), RSS {before} MB")
    waits: list[float] = []
    done = threading.Event()

    def take_the_lock_every_millisecond() -> None:  # as a scrape or a rule group would
        while not done.is_set():
            started = time.perf_counter()
            with store._lock:
                pass
            waits.append(time.perf_counter() - started)
            time.sleep(0.001)

    prober = threading.Thread(target=take_the_lock_every_millisecond)
    prober.start()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "store.npz")
        written = save_snapshot(store, path)
        took = time.perf_counter() - started
        size = os.path.getsize(path) >> 20
        done.set()
        prober.join()
        print(f"snapshot of {written:,} series: {took:.2f} s, {size} MB; longest wait for the store's lock "
              f"{max(waits) * 1000:.0f} ms; peak RSS {peak_rss_mb()} MB (store alone {before} MB)")
        del store
        gc.collect()
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM: the peak below is the load's
        empty = rss_bytes(os.getpid()) >> 20
        started = time.perf_counter()
        restarted = Store(retention_s=10**9)
        loaded = load_snapshot(restarted, path)
        print(f"loaded {loaded.series:,} series in {time.perf_counter() - started:.2f} s: RSS {empty} MB before "
              f"(freed memory the process kept), {rss_bytes(os.getpid()) >> 20} MB after, peak {peak_rss_mb()} MB")


if __name__ == "__main__":
    main()
