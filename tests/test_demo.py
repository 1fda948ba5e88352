"""`clusterwatch demo` (what `make demo` runs): a simulated cluster scraped and polled by the server,
with the last hours already behind it, so that a new user's first look finds something true on
every page."""
from __future__ import annotations

import sys
import time

import httpx
import pytest

from remediation import policy
from tests.realcomponents import ManagedProcess, free_port, wait_http

pytestmark = pytest.mark.real_component


def query(base: str, promql: str) -> list[dict]:
    body = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One demo for the module (its past takes a while to make): (server URL, simulator URL, log)."""
    tmp = tmp_path_factory.mktemp("demo")
    port, sim_port = free_port(), free_port()
    proc = ManagedProcess([sys.executable, "-m", "clusterwatch", "demo", "--nodes", "6", "--listen",
                           f"127.0.0.1:{port}", "--simulator-listen", f"127.0.0.1:{sim_port}", "--state-dir",
                           str(tmp / "state"), "--scrape-interval", "1s"], tmp / "demo.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/-/ready", timeout=180, proc=proc)
        yield base, f"http://127.0.0.1:{sim_port}", proc
    finally:
        proc.stop()


def test_demo_serves_the_simulated_cluster_with_jobs_joined(demo):
    base, simulator, _ = demo
    deadline = time.monotonic() + 60
    joined: list = []
    while time.monotonic() < deadline:
        joined = query(base, "sum by (job_id) (gpu_utilization_ratio * on (instance, gpu) group_left (job_id)"
                             " slurm_job_gpu_info)")
        if joined and query(base, "count(gpu_up)") and query(base, 'up{job="clusterwatch-fabric"} == 1'):
            break
        time.sleep(1)
    # The simulated fabric's collector is scraped too (issue 19).
    assert query(base, 'up{job="clusterwatch-fabric"} == 1')
    # One series per GPU: the past's series and the live scrape's are the same ones (same labels).
    assert float(query(base, "count(gpu_up)")[0]["value"][1]) == 48
    truth = httpx.get(f"{simulator}/api/fleet").json()
    running = {str(j["job_id"]) for j in truth["jobs"] if j["state"] == "RUNNING"}
    assert joined, "no GPU joined to a Slurm job"
    assert {r["metric"]["job_id"] for r in joined} <= running
    # The node exporter's view and the scheduler's agree on which job holds which GPU.
    from_exporter = query(base, "count by (job_id) (gpu_job_info)")
    assert {r["metric"]["job_id"] for r in from_exporter if r["metric"].get("job_id")} & running


def test_on_first_load_the_pages_show_the_simulated_past(demo):
    base, simulator, proc = demo
    # Alerts: some still firing, some fired and resolved during the past hours.
    history = httpx.get(f"{base}/api/alerts/history", params={"limit": 1000}, timeout=10).json()
    states = {(h["alertname"], h["status"]) for h in history}
    assert {"firing", "resolved"} <= {status for _, status in states}, states
    assert any(a["status"] == "firing" for a in httpx.get(f"{base}/api/alerts", timeout=10).json())
    # Automation: dry-run cases about the nodes the faults hit, none of which was really drained.
    cases = httpx.get(f"{base}/api/automation/cases", timeout=10).json()
    assert cases["mode"] == "dry-run" and cases["cases"], cases
    truth = httpx.get(f"{simulator}/api/fleet").json()
    faulted = {f["node"] for f in truth["faults"]}
    assert {c["node"] for c in cases["cases"] if c["node"]} <= faulted  # job cases name no node
    prefix = policy.load(None).reason_prefix  # what the engine's drains say
    assert not [n["name"] for n in truth["nodes"] if n["reason"].startswith(prefix)]
    # Jobs: one interrupted by a node going down was requeued by Slurm.
    assert any(j["restart_count"] > 0 for j in truth["jobs"]), "no job was interrupted and requeued"
    # Reliability: the past's interruptions are counted, at their simulated times.
    reliability = httpx.get(f"{base}/api/reliability", timeout=30).json()
    assert reliability["interruptions_total"] > 0 and reliability["ettr"] is not None
    assert min(i["time"] for i in reliability["interruptions"]) < time.time() - 1800, "the past squeezed into now"
    assert any(i["cause"] != "unknown" for i in reliability["interruptions"])  # explained by the past's alerts
    # Graphs: the past is in the store (samples from more than an hour ago).
    now = time.time()
    past = httpx.get(f"{base}/api/v1/query_range", params={"query": "count(gpu_up)", "start": now - 6000,
                                                             "end": now - 3600, "step": 600}, timeout=10).json()
    assert past["data"]["result"], past
    # The banner: a simulation, and how to let automation act.
    banner = httpx.get(f"{base}/api/banner", timeout=10).json()["banner"]
    assert "simulated" in banner and "--automation auto" in banner
    assert "--automation auto" in proc.log_tail(20_000)


def test_the_demos_jobs_write_checkpoint_marks_and_the_past_shows_the_checkpoint_step(demo):
    """Without the jobs' marks every job read as one ignoring the contract: redone work unknown for
    every interruption, and the checkpoint step never asked one (``job ... never wrote a checkpoint
    mark``)."""
    base, _, _ = demo
    assert query(base, "count(clusterwatch_job_checkpoint_timestamp_seconds)"), "no job's checkpoint mark is scraped"
    reliability = httpx.get(f"{base}/api/reliability", timeout=30).json()
    assert any(i["redone_seconds"] is not None for i in reliability["interruptions"]), reliability["interruptions"]
    audit = httpx.get(f"{base}/api/automation/audit", params={"since": 0}, timeout=10).json()
    steps = [(e["action"], e["result"], e["detail"]) for e in audit if e["action"] in ("signal", "checkpoint")]
    assert any(action == "signal" and "scancel --signal=USR1 --batch" in detail for action, _, detail in steps), steps
    assert not any("never wrote a checkpoint mark" in detail for _, _, detail in steps), steps


def test_a_new_demo_clears_only_its_own_checkpoint_marks(tmp_path):
    """--state-dir is the user's directory: the demo removes its earlier jobs' marks, nothing else."""
    from clusterwatch.commands.demo import TEXTFILES_DIR, _fresh_state

    node = tmp_path / TEXTFILES_DIR / "gpu-001"
    node.mkdir(parents=True)
    (node / "clusterwatch_job_checkpoint_1001.prom").write_text("old mark\n")
    (node / "notes.txt").write_text("the user's\n")
    wal = tmp_path / "history.snapshot.wal"  # the last run's store log: replayed over the new history
    wal.mkdir()
    (wal / "000001-00000001").write_bytes(b"records")
    _fresh_state(tmp_path)
    assert sorted(p.name for p in node.iterdir()) == ["notes.txt"]
    assert not wal.exists()
