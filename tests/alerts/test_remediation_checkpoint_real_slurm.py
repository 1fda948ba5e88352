"""The checkpoint step against a real single-node Slurm 22.05 (tests/scheduler/slurm_cluster.py).

A batch job written as docs/operations.md "Checkpoint contract for training jobs" says traps
USR1 and writes its mark into a textfile directory. The engine drains the node, the checkpoint
step sends ``scancel --signal=USR1 --batch <job>`` through the slurm-cli backend, the mark travels
the contract's way (the node's real textfile collector, an exposition, the embedded store, the
step's PromQL), the step sees it land, and the requeue follows: Slurm shows the job requeued. A job
run as an ordinary user is believed by its own mark and not by another user's put in its place."""
from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

import pytest

from cwkernel.metrics import FamilySet, render_metric_text
from exporter.collector import CollectorContext
from exporter.collectors.node_textfile import TextfileCollector
from exporter.config import ExporterConfig
from exporter.hostfs import MemoryFS
from remediation import policy as policy_module
from remediation.engine import RemediationEngine
from remediation.steps import CHECKPOINT_CLOCK_SLACK
from remediation.store import RemediationStore
from scheduler import build_scheduler
from scheduler.checkpoint import CHECKPOINT_METRIC, textfile_name
from tests.alerts.remediation_helpers import alert
from tests.realcomponents import until
from tests.scheduler.slurm_cluster import ToolSpy, started_slurm
from tsdb.client import LocalQueryClient
from tsdb.exposition import parse_exposition
from tsdb.promql.engine import Engine
from tsdb.store import Store

pytestmark = pytest.mark.real_component

# The contract's sbatch example (docs/operations.md), with a sleep standing in for training and for
# the time a checkpoint takes to write.
JOB_SCRIPT = """#!/bin/bash
#SBATCH --requeue --signal=B:USR1@300
MARK={textfile_dir}/clusterwatch_job_checkpoint_$SLURM_JOB_ID.prom
mark() {{
  printf '# TYPE clusterwatch_job_checkpoint_timestamp_seconds gauge\\nclusterwatch_job_checkpoint_timestamp_seconds{{job_id="%s"}} %s\\n' \\
    "$SLURM_JOB_ID" "$1" > "$MARK.tmp" && mv "$MARK.tmp" "$MARK"
}}
checkpoint() {{
  local began
  began=$(date +%s)  # the mark carries the time of the state saved
  {save}  # ...save the model here...
  mark "$began"
}}
trap checkpoint USR1
mark "$(date +%s)"  # at the start: this job answers the signal
sleep 600 & train=$!
while kill -0 "$train" 2>/dev/null; do wait "$train"; done
"""

@pytest.fixture(scope="module")
def slurm():
    yield from started_slurm()


class ScrapedTextfiles:
    """The node's textfile directory as ClusterWatch sees it: each query first scrapes the real
    textfile collector, and the scheduler adapter's metrics (whose jobs are whose), into an
    embedded store (as the scraper would), then answers with PromQL."""

    def __init__(self, directory: Path, adapter) -> None:
        self.collector = TextfileCollector(CollectorContext(ExporterConfig(textfile_dir=str(directory)),
                                                            MemoryFS(), MemoryFS()))
        self.adapter = adapter
        self.store = Store()
        self.client = LocalQueryClient(Engine(self.store))

    def _scrape(self) -> None:
        node: list[str] = []
        for part in self.collector.collect():
            part.render_text(node) if isinstance(part, FamilySet) else render_metric_text(part, node)
        scheduler: list[str] = []
        for family in self.adapter.collector.collect():
            render_metric_text(family, scheduler)
        at = round(time.time() * 1000)
        for instance, job, page in (("localhost", "clusterwatch", node), ("slurm", "clusterwatch-slurm", scheduler)):
            target = {"instance": instance, "job": job}
            samples = [(tuple(sorted({**dict(labels), "__name__": name, **target}.items())), value)
                       for name, labels, value, _ in parse_exposition("".join(page)).samples]
            self.store.append_scrape(instance, at, samples)

    def instant(self, query: str, at: float | None = None):
        self._scrape()
        return self.client.instant(query, None)

    def range(self, query, start, end, step):
        return self.client.range(query, start, end, step)


def _engine(adapter, query) -> RemediationEngine:
    raw = policy_module.yaml.safe_load(policy_module.DEFAULT_POLICY.read_text())
    raw["ladders"]["checkpointed_requeue"] = ["drain", "checkpoint", "requeue"]
    raw["classes"][0].update(ladder="checkpointed_requeue", mode="auto", checkpoint_timeout="2m")
    raw["guards"]["max_drained_percent"] = 100  # one node: any drain is 100% of the partition
    return RemediationEngine(policy_module.parse(raw, "test"), adapter, RemediationStore(), query, mode="auto")


def _past_the_start_mark(mark: Path) -> None:
    """Waits for the job's start mark, then until it is older than the step's clock slack: a mark
    within the slack of the request would answer it, and the test would not see the checkpoint's."""
    until(mark.exists, 60, "the job's start mark")
    written = float(mark.read_text().split()[-1])
    until(lambda: time.time() > written + CHECKPOINT_CLOCK_SLACK + 1, 30, "the start mark to be older than the slack")


def _job(adapter, job_id: str):
    adapter.poller.expire()
    adapter.refresh(wait=True)
    return next((job for job in adapter.snapshot().jobs if job.job_id == job_id), None)


def test_the_job_checkpoints_on_the_signal_and_the_requeue_follows(slurm, tmp_path):
    textfiles = slurm.root / "jobs" / "textfile"
    textfiles.mkdir(mode=0o777, exist_ok=True)
    script = slurm.root / "jobs" / "train.sbatch"
    script.write_text(JOB_SCRIPT.format(textfile_dir=textfiles, save="sleep 2"))
    adapter = build_scheduler("slurm-cli", command_prefix=slurm.prefix, env={"SLURM_CONF": slurm.env["SLURM_CONF"]},
                              min_interval=0.2, timeout=30)
    adapter.backend.runner = spy = ToolSpy(adapter.backend.runner, "scancel")
    slurm.run("scontrol", "update", "NodeName=localhost", "State=RESUME", check=False)
    job_id = slurm.run("sbatch", "--parsable", "--gres=gpu:1", str(script)).stdout.strip().split(";")[0]
    try:
        running = until(lambda: (job := _job(adapter, job_id)) is not None and job.state == "RUNNING" and job,
                        60, "the job running")
        [gpu] = running.gpu_indices["localhost"]
        _past_the_start_mark(textfiles / textfile_name(job_id))
        engine = _engine(adapter, ScrapedTextfiles(textfiles, adapter))
        engine.receive([alert(node="localhost", gpu=str(gpu))])
        assert spy.calls == [["--signal=USR1", "--batch", job_id]]
        assert engine.store.case(1).current_step == "checkpoint", "waits for the mark, no requeue yet"

        # Each poll is one engine evaluation, as the engine's loop makes them.
        until(lambda: engine.evaluate() or engine.store.case(1).current_step != "checkpoint", 60,
              "the checkpoint to land")
        mark = (textfiles / textfile_name(job_id)).read_text()
        assert f'clusterwatch_job_checkpoint_timestamp_seconds{{job_id="{job_id}"}}' in mark
        results = [(e.action, e.job_id, e.result) for e in reversed(engine.store.audit_entries(case_id=1))
                   if e.action in ("signal", "checkpoint", "requeue")]
        assert results[0] == ("signal", job_id, "done")
        assert results[-2][:2] == ("checkpoint", job_id) and results[-2][2].startswith("landed at ")
        assert results[-1] == ("requeue", job_id, "done")

        requeued = until(lambda: (job := _job(adapter, job_id)) is not None and job.state == "PENDING" and job,
                         60, "the job back in the queue")
        assert requeued.nodes == ()
        shown = slurm.run("scontrol", "show", "job", job_id).stdout
        assert "Restarts=1" in shown and "JobState=PENDING" in shown
    finally:
        slurm.run("scancel", job_id, check=False)
        slurm.run("scontrol", "update", "NodeName=localhost", "State=RESUME", check=False)


def test_a_users_job_is_believed_by_its_own_mark_and_not_by_another_users(slurm, tmp_path):
    """The job runs as an ordinary user (``sbatch --uid``), so its mark file is that user's and the
    exporter stamps it ``writer``; Slurm says whose job it is. Another user's file put in its place,
    claiming the job checkpointed just now, does not end the wait; the job's own mark, once its
    save finishes (a gate the test opens), does, and the requeue follows."""
    owner, forger = pwd.getpwnam("nobody"), pwd.getpwnam("daemon")
    textfiles = slurm.root / "jobs" / "textfile-users"
    textfiles.mkdir(mode=0o777, exist_ok=True)
    textfiles.chmod(0o777)
    gate = slurm.root / "jobs" / "save-may-finish"
    script = slurm.root / "jobs" / "train-as-user.sbatch"
    script.write_text(JOB_SCRIPT.format(textfile_dir=textfiles, save=f"until [ -e {gate} ]; do sleep 0.2; done"))
    script.chmod(0o755)
    adapter = build_scheduler("slurm-cli", command_prefix=slurm.prefix, env={"SLURM_CONF": slurm.env["SLURM_CONF"]},
                              min_interval=0.2, timeout=30)
    slurm.run("scontrol", "update", "NodeName=localhost", "State=RESUME", check=False)
    job_id = slurm.run("sbatch", "--parsable", f"--uid={owner.pw_name}", f"--chdir={slurm.root / 'jobs'}",
                       "--gres=gpu:1", str(script)).stdout.strip().split(";")[0]
    try:
        running = until(lambda: (job := _job(adapter, job_id)) is not None and job.state == "RUNNING" and job,
                        60, "the job running")
        assert running.user == owner.pw_name
        own_mark = textfiles / textfile_name(job_id)
        _past_the_start_mark(own_mark)
        assert own_mark.stat().st_uid == owner.pw_uid
        [gpu] = running.gpu_indices["localhost"]
        scraped = ScrapedTextfiles(textfiles, adapter)
        # As on a node whose exporter has run since the job began: the owner's name is looked up
        # beside the collection, and the mark reads as the uid's until then.
        until(lambda: scraped.instant(f'{CHECKPOINT_METRIC}{{writer="{owner.pw_name}"}}').series, 30,
              "the exporter to name the mark's writer")
        engine = _engine(adapter, scraped)
        engine.receive([alert(node="localhost", gpu=str(gpu))])
        assert engine.store.case(1).current_step == "checkpoint"

        # The directory is everyone's: the forger renames its own file over the job's.
        forged = textfiles / "forged.tmp"
        forged.write_text(f"# TYPE clusterwatch_job_checkpoint_timestamp_seconds gauge\n"
                          f'clusterwatch_job_checkpoint_timestamp_seconds{{job_id="{job_id}"}} {time.time():.3f}\n')
        os.chown(forged, forger.pw_uid, forger.pw_gid)
        forged.replace(own_mark)
        for _ in range(3):
            engine.evaluate()
        assert engine.store.case(1).current_step == "checkpoint", "another user's mark ended the wait"

        gate.touch()
        until(lambda: engine.evaluate() or engine.store.case(1).current_step != "checkpoint", 60,
              "the job's own checkpoint to land")
        results = [(e.action, e.job_id, e.result) for e in reversed(engine.store.audit_entries(case_id=1))
                   if e.action in ("checkpoint", "requeue")]
        assert results[-2][:2] == ("checkpoint", job_id) and results[-2][2].startswith("landed at ")
        assert results[-1] == ("requeue", job_id, "done")
    finally:
        slurm.run("scancel", job_id, check=False)
        slurm.run("scontrol", "update", "NodeName=localhost", "State=RESUME", check=False)
