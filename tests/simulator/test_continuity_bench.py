"""The simulated month's logic (bench/bench_continuity.py) on a small fleet for minutes: the fault
stream comes from the seed at the published rate and mix, every arm gets the same faults, and the
same seed gives the same table."""
from __future__ import annotations

import collections

from bench.bench_continuity import T0, run_month, table
from bench.continuity_faults import CAUSES, PUBLISHED_PER_GPU_DAY, PlannedFault, draw_faults

NODES = [f"gpu-{i:03d}" for i in range(1, 141)]


def test_the_fault_stream_is_the_seeds_at_the_published_rate_and_mix():
    assert round(PUBLISHED_PER_GPU_DAY * 1120 * 30, 1) == 15.9  # Llama 3: 419 / (54 days x 16,384 GPUs)
    month = draw_faults(1, NODES, 8, 4, T0, 30 * 86400)
    assert month == draw_faults(1, NODES, 8, 4, T0, 30 * 86400)
    assert month != draw_faults(2, NODES, 8, 4, T0, 30 * 86400)
    # Over many months the count and the cause shares are the published ones (Table 5's rows,
    # renormalised over the 95.1 % they list).
    years = draw_faults(1, NODES, 8, 4, T0, 3000 * 86400)
    assert abs(len(years) - PUBLISHED_PER_GPU_DAY * 1120 * 3000) < 4 * (PUBLISHED_PER_GPU_DAY * 1120 * 3000) ** 0.5
    shares = collections.Counter(f.cause for f in years)
    total = sum(c.percent for c in CAUSES)
    for cause in ("faulty GPU", "GPU HBM3 memory", "software bug"):
        expected = next(c.percent for c in CAUSES if c.name == cause) / total
        assert abs(shares[cause] / len(years) - expected) < 0.03
    stress = draw_faults(1, NODES, 8, 4, T0, 3000 * 86400, "stress")
    assert 2.7 < len(stress) / len(years) < 3.3


def test_every_arm_gets_the_same_faults_and_a_rerun_the_same_table():
    faults = [PlannedFault(T0 + 120, "faulty GPU", {"kind": "xid", "xid": 79, "node": "gpu-002", "gpu": 3})]
    options = dict(nodes=2, seed=3, days=15 / 1440, faults=faults)
    first = run_month(["off", "auto"], **options)
    off, auto = first["off"], first["auto"]
    assert off.faults_injected == auto.faults_injected == [(T0 + 120, "gpu-002", "xid")]
    # Auto drains the node within minutes; the operator of the off arm acts 30 min to 4 h later.
    assert auto.faulty_drained == (1, 1) and auto.fault_to_drain_s[0] < 300 and not auto.healthy_drained
    assert off.faulty_drained == (0, 1)
    assert auto.ettr_truth > off.ettr_truth
    assert table(run_month(["auto"], **options)) == table({"auto": auto})
