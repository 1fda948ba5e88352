"""Issue 14, finding 6 at the issue's scale: `serve` (descriptor limit 1024, soft and hard, via
prlimit) scraping the 140-node simulator every 5 s while 1,100 half-sent requests are held open
(reopened as the server closes them) for 60 s. Prints /-/healthy p50/p99 and failures, targets
recorded `up == 0`, `up` samples written during the flood (140 x 13 when none were missed) and
the size of serve's log. Loopback only; bounded to about two minutes.

    .venv/bin/python bench/bench_idle_connections.py [TREE]   # TREE: checkout to run serve from
"""
import os, subprocess, sys, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import httpx  # noqa: E402
from bench.common import free_port  # noqa: E402
from bench.flood import HalfOpenFlood  # noqa: E402

root = sys.argv[1] if len(sys.argv) > 1 else str(REPO)
state = tempfile.mkdtemp(prefix="bench-idle-")
sim_port, port = free_port(), free_port()
py = sys.executable
sim = subprocess.Popen([py, "-m", "clusterwatch", "simulate", "--nodes", "140", "--listen", f"127.0.0.1:{sim_port}",
                        "--file-sd", f"{state}/fleet.json"], cwd=str(REPO), stdout=open(f"{state}/sim.log", "wb"), stderr=subprocess.STDOUT)
try:
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{sim_port}/-/healthy", timeout=2); break
        except Exception: time.sleep(0.3)
    log = open(f"{state}/serve.log", "wb")
    srv = subprocess.Popen(["prlimit", "--nofile=1024:1024", py, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                            "--file-sd", f"{state}/fleet.json", "--scrape-interval", "5s"], cwd=root, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            r = httpx.get(f"{base}/api/v1/query", params={"query": "count(up == 1)"}, timeout=5).json()["data"]["result"]
            if r and float(r[0]["value"][1]) == 140: break
        except Exception: pass
        time.sleep(0.5)
    print("targets up before:", r and r[0]["value"][1])
    started = time.time(); lat = []; fails = 0
    with HalfOpenFlood(port, 1100, max_seconds=90) as flood:
        while time.time() - started < 60:
            t = time.monotonic()
            try:
                ok = httpx.get(f"{base}/-/healthy", timeout=10).status_code == 200
            except Exception:
                ok = False
            lat.append(time.monotonic() - t); fails += not ok
            time.sleep(0.5)
        opened = flood.opened
    window = f"{int(time.time() - started) + 5}s"
    time.sleep(1)
    def q(e):
        try: return httpx.get(f"{base}/api/v1/query", params={"query": e}, timeout=30).json()["data"]["result"]
        except Exception as exc: return repr(exc)
    down = q(f"count(min_over_time(up[{window}]) == 0)")
    samples = q(f"sum(count_over_time(up[{window}]))")
    lat.sort()
    print(f"flood connections opened: {opened}; health checks: {len(lat)}, failed {fails}, p50 {lat[len(lat)//2]*1000:.0f} ms, p99 {lat[int(len(lat)*0.99)]*1000:.0f} ms")
    print("targets with up==0 during the flood:", down, "; up samples during the flood:", samples)
    srv.terminate(); srv.wait(30)
    print("serve log bytes:", os.path.getsize(f"{state}/serve.log"))
finally:
    sim.terminate(); sim.wait(30)
