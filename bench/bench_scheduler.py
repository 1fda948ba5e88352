"""Scheduler adapter benchmark: what one poll and one scrape cost on a large cluster.

    .venv/bin/python bench/bench_scheduler.py [--jobs 2000] [--nodes 16384] [--repeat 5]

Generates squeue/sinfo JSON in the Slurm 22.05 shape (the real fixtures' fields) for a simulated
cluster of 8-GPU nodes, most of them running multi-node jobs, then measures: JSON decoding,
parsing to the model, a full poll through the command backend (two processes printing the files,
as squeue/sinfo would, so process start and pipe transfer are included, slurmctld's own work is
not), and rendering the metrics (collect + text exposition), with the exposition's size and series.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from scheduler import build_scheduler  # noqa: E402
from scheduler.hostlist import compress  # noqa: E402
from scheduler.parsers import load_document, parse_jobs, parse_nodes  # noqa: E402

META = {"plugin": {"type": "openapi/v0.0.38", "name": "Slurm OpenAPI v0.0.38"},
        "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"}}
JOB_SIZES = (1, 1, 2, 4, 8, 16, 32, 64)  # nodes per running job, cycled
T0 = 1795483144


def node_name(index: int) -> str:
    return f"gpu-{index + 1:05d}"


def generate(jobs: int, nodes: int) -> tuple[dict, dict]:
    """A squeue and a sinfo document: running jobs fill nodes in order until they run out."""
    job_records, allocated = [], {}
    next_node = 0
    for job_id in range(1, jobs + 1):
        size = JOB_SIZES[job_id % len(JOB_SIZES)]
        running = next_node + size <= nodes and job_id % 5 != 0
        names = [node_name(next_node + offset) for offset in range(size)] if running else []
        if running:
            next_node += size
            allocated.update((name, job_id) for name in names)
        job_records.append({
            "account": f"acct{job_id % 17}", "array_job_id": 0, "array_task_id": None, "job_id": job_id,
            "name": f"train-{job_id}", "user_name": f"user{job_id % 97}", "partition": "gpu",
            "job_state": "RUNNING" if running else "PENDING", "state_reason": "None" if running else "Resources",
            "nodes": compress(names), "node_count": size, "gres_detail": ["gpu:h100:8(IDX:0-7)"] * len(names),
            "tres_per_node": "gres:gpu:8", "tres_alloc_str": f"cpu={112 * size},node={size},billing={112 * size}" if running else "",
            "tres_req_str": f"cpu={112 * size},node={size},billing={112 * size}",
            "submit_time": T0 - 600, "start_time": T0 if running else 0, "end_time": T0 + 86400 if running else 0,
            "time_limit": 1440, "exit_code": 0, "flags": [], "batch_flag": True, "cluster": "bench",
        })
    node_records = []
    for index in range(nodes):
        name = node_name(index)
        busy = name in allocated
        drained = index % 211 == 0
        node_records.append({
            "name": name, "hostname": name, "address": name, "state": "allocated" if busy else "idle",
            "state_flags": ["DRAIN"] if drained else [], "reason": "cw: XID 79 on GPU 3" if drained else "",
            "reason_set_by_user": "root" if drained else None, "reason_changed_at": T0 - 60 if drained else 0,
            "gres": "gpu:h100:8", "gres_used": "gpu:h100:8" if busy else "gpu:h100:0", "gres_drained": "N/A",
            "partitions": ["gpu"], "cpus": 112, "alloc_cpus": 112 if busy else 0, "real_memory": 2000000,
            "alloc_memory": 0, "boot_time": T0 - 86400, "slurmd_version": "22.05.8", "port": 6818,
        })
    return ({"meta": META, "errors": [], "jobs": job_records}, {"meta": META, "errors": [], "nodes": node_records})


def timed(function, repeat: int) -> tuple[float, object]:
    durations, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=16384)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    squeue, sinfo = generate(args.jobs, args.nodes)
    with tempfile.TemporaryDirectory() as folder:
        squeue_path, sinfo_path = Path(folder) / "squeue.json", Path(folder) / "sinfo.json"
        squeue_path.write_text(json.dumps(squeue, indent=2))
        sinfo_path.write_text(json.dumps(sinfo, indent=2))
        squeue_text, sinfo_text = squeue_path.read_text(), sinfo_path.read_text()

        decode, (jobs_document, nodes_document) = timed(
            lambda: (load_document(squeue_text, "squeue"), load_document(sinfo_text, "sinfo")), args.repeat)
        parse, (jobs, nodes) = timed(lambda: (parse_jobs(jobs_document), parse_nodes(nodes_document)), args.repeat)
        adapter = build_scheduler("slurm-cli", squeue=["cat", str(squeue_path)], sinfo=["cat", str(sinfo_path)],
                                  squeue_args=[], sinfo_args=[], min_interval=1e-6)

        def poll():
            adapter.poller.expire()
            status = adapter.refresh()
            assert status.healthy, status.last_error
            return status

        poll_time, status = timed(poll, args.repeat)
        registry = CollectorRegistry()
        registry.register(adapter.collector)
        render, exposition = timed(lambda: generate_latest(registry), args.repeat)
        collect, _ = timed(lambda: sum(1 for _ in adapter.collector.collect()), args.repeat)

    running = sum(job.state == "RUNNING" for job in jobs)
    gpu_pairs = sum(len(indices) for job in jobs for indices in job.gpu_indices.values())
    series = sum(1 for line in exposition.splitlines() if line and not line.startswith(b"#"))
    print(f"cluster: {len(jobs)} jobs ({running} running, {gpu_pairs} job-GPU pairs), {len(nodes)} nodes x 8 GPUs")
    print(f"input: squeue --json {len(squeue_text) / 1e6:.1f} MB, sinfo --json {len(sinfo_text) / 1e6:.1f} MB")
    print(f"decode JSON (both):            {decode * 1e3:8.1f} ms")
    print(f"parse to model (both):         {parse * 1e3:8.1f} ms")
    print(f"full poll via command backend: {poll_time * 1e3:8.1f} ms  (2 processes + decode + parse)")
    print(f"metrics collect (families):    {collect * 1e3:8.1f} ms")
    print(f"metrics render (text format):  {render * 1e3:8.1f} ms  ({len(exposition) / 1e6:.1f} MB, {series} series)")
    print(f"medians of {args.repeat} runs; python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
