"""End to end with real servers: simulator -> Prometheus 2.42 (file_sd, exported rule pack) ->
Alertmanager 0.25 -> clusterwatch serve (inbound receiver, remediation, dashboard in
--prometheus-url mode). docs/operations.md, "End-to-end production path"."""
from __future__ import annotations

import pytest

from tests.e2e.checks import run_auto, run_dry_run
from tests.e2e.stack import engine_stack

pytestmark = pytest.mark.real_component


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from engine_stack("prometheus", 7, tmp_path_factory)


def test_xid79_dry_run_decides_without_draining(stack, tmp_path):
    run_dry_run(stack, tmp_path, node="gpu-002", gpu=3)


def test_xid79_auto_drains_in_the_simulated_slurm(stack, tmp_path):
    run_auto(stack, tmp_path, node="gpu-004", gpu=5)
