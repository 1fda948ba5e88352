"""The Slurm prolog/epilog in deploy/ write and remove exactly the GPU-to-job files the exporter reads."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from exporter.collectors.jobs import parse_mapping_file

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "slurm"


def run(script: str, mapping: Path, **env: str) -> None:
    subprocess.run(["bash", str(DEPLOY / script)], check=True, timeout=30,
                   env={"PATH": os.environ["PATH"], "CLUSTERWATCH_GPU_JOBS_DIR": str(mapping), **env})


def test_prolog_writes_one_file_per_gpu_and_epilog_removes_only_its_own(tmp_path):
    mapping = tmp_path / "gpu-jobs"
    run("prolog.sh", mapping, SLURM_JOB_ID="4242", SLURM_JOB_GPUS="0,3")
    run("prolog.sh", mapping, SLURM_JOB_ID="4300", SLURM_JOB_GPUS="5")
    assert sorted(p.name for p in mapping.iterdir()) == ["0", "3", "5"]
    assert parse_mapping_file((mapping / "3").read_text()) == ["4242"]
    run("epilog.sh", mapping, SLURM_JOB_ID="4242")
    assert sorted(p.name for p in mapping.iterdir()) == ["5"]


def test_scripts_ignore_hostile_values(tmp_path):
    mapping = tmp_path / "gpu-jobs"
    run("prolog.sh", mapping, SLURM_JOB_ID="1;rm -rf /", SLURM_JOB_GPUS="0")
    run("prolog.sh", mapping, SLURM_JOB_ID="77", SLURM_JOB_GPUS="../../etc/passwd,1")
    assert sorted(p.name for p in mapping.iterdir()) == ["1"]


def test_exporter_attributes_gpus_from_what_the_prolog_wrote(tmp_path):
    from exporter.build import create_exporter
    from exporter.config import ExporterConfig
    from tests.exporter.helpers import parse_exposition, sample

    mapping = tmp_path / "gpu-jobs"
    run("prolog.sh", mapping, SLURM_JOB_ID="4242", SLURM_JOB_GPUS="2")
    exporter = create_exporter(ExporterConfig(backend="fake", collectors=["jobs"], job_mapping_dir=str(mapping)))
    try:
        samples = parse_exposition(exporter.collect_once().text)
    finally:
        exporter.close()
    uuid = exporter.ctx.nvml.devices[2].uuid
    assert sample(samples, "gpu_job_info", gpu=2, uuid=uuid, job_id="4242", pod="", namespace="", container="",
                  source="mapping") == 1
    assert sample(samples, "gpu_processes", gpu=2, uuid=uuid) == 0  # held but unused
