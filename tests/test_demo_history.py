"""The demo's past (clusterwatch/demo_history.py) on a small fleet, in process: what it leaves for
``serve`` to restore tells only what happened."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from clusterwatch.demo_history import ALERT_STATE_FILE, run_history
from simulator.fleet import Fleet
from simulator.server import SimulatorHTTPServer


def test_the_past_raises_no_alert_for_the_nodes_it_does_not_scrape(tmp_path: Path) -> None:
    """The past scrapes only the nodes the faults hit and two more; GpuMetricsMissing read every
    other node the scheduler lists as having lost its GPU metrics, and the demo opened with it
    firing on most of the fleet (123 of 140 nodes)."""
    fleet = Fleet(nodes=16, seed=1, speed=0, start=time.time() - 3600, textfile_root=str(tmp_path / "textfiles"))
    server = SimulatorHTTPServer(("127.0.0.1", 0), fleet)
    server.start_in_thread()
    try:
        past = run_history(fleet, f"{server.base_url}/slurm", tmp_path, 1.0)
    finally:
        server.shutdown()
        fleet.stop()
    assert len(set(past.scraped_nodes)) < 16, "every node was scraped: nothing to show"
    assert past.alerts_fired and "GpuMetricsMissing" not in past.alerts_fired
    with sqlite3.connect(tmp_path / ALERT_STATE_FILE) as db:
        restored = [row[0] for row in db.execute("SELECT alert FROM alert_state")]
    assert restored and not [alert for alert in restored if "GpuMetricsMissing" in alert]
