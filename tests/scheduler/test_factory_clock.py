"""``build_scheduler(..., wall_clock=)``: the clock stamps the backend's snapshots too, so that the
interruptions seen between two polls carry that clock's time. A simulated cluster on an explicit
clock (the benches, the demo's past) otherwise had its interruptions stamped with the real time:
outside every range the reliability page accounts, and all of the demo's past in its last minute."""
from __future__ import annotations

from scheduler import build_scheduler
from simulator.fleet import Fleet
from simulator.server import SimulatorHTTPServer

T0 = 1_700_000_000.0


def test_the_snapshots_of_a_simulated_cluster_carry_the_given_clock():
    fleet = Fleet(nodes=1, seed=1, speed=0, start=T0)
    server = SimulatorHTTPServer(("127.0.0.1", 0), fleet)
    server.start_in_thread()
    try:
        adapter = build_scheduler("simulator", f"{server.base_url}/slurm", min_interval=15,
                                  wall_clock=fleet.clock.now, monotonic=fleet.clock.now)
        adapter.refresh()
        assert adapter.snapshot().taken_at == T0
        fleet.advance(600)
        adapter.refresh()
        assert adapter.snapshot().taken_at == T0 + 600
    finally:
        server.shutdown()
        fleet.stop()
