"""Time to first meaningful paint of the overview in headless Chromium (Debian's, driven by
playwright) against `clusterwatch serve` scraping a 140-node simulator (1,120 GPUs).

    .venv/bin/python bench/bench_dashboard_browser.py [--nodes 140] [--repeats 10]

"Meaningful paint" is measured from navigation start (``performance.timeOrigin``): the first
animation frame at which the heatmap's plotly graph is drawn (``.main-svg`` present and its trace
holding every GPU's cell: nodes x 8) and every KPI tile holds a value. The condition is polled on
each animation frame in the page (``wait_for_function(..., polling="raf")``) and the page's own
``performance.now()`` at that frame is the figure. First contentful paint comes from the Paint
Timing API; the HTML response's end, DOMContentLoaded and the plotly.js fetch from Navigation and
Resource Timing. Cold: a fresh browser context each time (empty cache, as a first visit); warm: a
second visit in the same context (static files from the HTTP cache); hot: a third (Chromium then
also reuses the compiled plotly.js from V8's code cache, as on every later visit).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, percentile, wait_http  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

# Returns the page's clock (ms since navigation start) at the first frame where the overview is
# meaningful, or false (keep polling).
MEANINGFUL = """(cells) => {
  const heat = document.getElementById('heatmap');
  if (!heat || !heat.querySelector('.main-svg') || !heat.data || !heat.data.length) return false;
  const z = heat.data[0].z;
  if (!z || z.length * (z[0] ? z[0].length : 0) !== cells) return false;
  if (!heat.querySelector('.heatmaplayer image, .heatmaplayer .hm')) return false;
  const tiles = document.querySelectorAll('#kpis .kpi .value');
  if (tiles.length < 12 || [...tiles].some(t => !t.textContent.trim())) return false;
  return performance.now();
}"""

TIMINGS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const plotly = performance.getEntriesByType('resource').find(r => r.name.includes('plotly'));
  return { fcp: fcp ? fcp.startTime : null, html: nav.responseEnd, dcl: nav.domContentLoadedEventEnd,
           plotly_fetched: plotly ? plotly.responseEnd : null, plotly_bytes: plotly ? plotly.encodedBodySize : null,
           plotly_cached: plotly ? plotly.transferSize === 0 : null, html_bytes: nav.encodedBodySize };
}"""


def start_fleet(nodes: int, work: Path):
    sim_port, port = free_port(), free_port()
    file_sd = work / "fleet.json"
    sim = subprocess.Popen([sys.executable, "-m", "clusterwatch", "simulate", "--nodes", str(nodes), "--listen",
                            f"127.0.0.1:{sim_port}", "--file-sd", str(file_sd)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{sim_port}/-/healthy", timeout=120)
    serve = subprocess.Popen([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                              "--file-sd", str(file_sd), "--scrape-interval", "5s", "--scheduler", "simulator",
                              "--scheduler-url", f"http://127.0.0.1:{sim_port}/slurm"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=120)
    deadline = time.monotonic() + 180
    while True:  # every GPU scraped and jobs placed
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", "/api/overview")
        body = json.loads(connection.getresponse().read())
        connection.close()
        scraped = sum(v is not None for row in body["heatmap"]["z"] for v in row)
        if scraped == nodes * 8 and body["kpis"]["jobs_running"]:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"overview shows {scraped} scraped GPUs after 180 s")
        time.sleep(1)
    return sim, serve, port


# When plotly.js has been fetched, compiled and run: its UMD wrapper assigns window.Plotly.
PLOTLY_TRAP = """(() => { let value;
  Object.defineProperty(window, 'Plotly', { configurable: true, get: () => value,
    set: v => { value = v; window.__plotlyRan = performance.now(); } }); })();"""


def _busy(cdp) -> float:
    """How long the renderer's main thread has been running tasks since the navigation (ms):
    script compile and run, style, layout, paint. Wall time of the tasks, so a loaded machine
    still inflates it, but it excludes the time the main thread waited on the network."""
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return metrics["TaskDuration"] * 1000


def measure(page, cdp, url: str, cells: int) -> dict:
    page.goto(url, wait_until="commit")
    handle = page.wait_for_function(MEANINGFUL, arg=cells, polling="raf", timeout=60_000)
    meaningful = handle.json_value()
    busy = _busy(cdp)  # the metrics restart with each navigation
    page.wait_for_load_state("load")
    return {"meaningful": meaningful, "main_thread": busy,
            "plotly_ran": page.evaluate("() => window.__plotlyRan ?? null"), **page.evaluate(TIMINGS)}


def report(label: str, runs: list[dict]) -> None:
    def stat(key: str) -> str:
        values = [r[key] for r in runs if r.get(key) is not None]
        if not values:
            return "–"
        return f"p50 {percentile(values, 50):.0f} ms, p90 {percentile(values, 90):.0f} ms"
    print(f"{label} (n={len(runs)}): meaningful paint {stat('meaningful')} (renderer main thread busy "
          f"{stat('main_thread')} of it); first contentful paint {stat('fcp')}; "
          f"HTML received {stat('html')}; DOMContentLoaded {stat('dcl')}; plotly.js fetched {stat('plotly_fetched')} "
          f"({runs[-1]['plotly_bytes']:,} B on the wire{', from cache' if runs[-1]['plotly_cached'] else ''}), "
          f"run {stat('plotly_ran')}; "
          f"HTML {runs[-1]['html_bytes']:,} B on the wire")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=140)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--url", help="an already running serve (http://HOST:PORT) instead of starting one")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    executable = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if os.path.exists(p)), None)
    procs = []
    with tempfile.TemporaryDirectory() as work:
        try:
            if args.url:
                base = args.url.rstrip("/")
            else:
                sim, serve, port = start_fleet(args.nodes, Path(work))
                procs = [serve, sim]
                base = f"http://127.0.0.1:{port}"
            url = base + "/?refresh=0"
            cells = args.nodes * 8
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
                cold, warm, hot = [], [], []
                for _ in range(args.repeats):
                    context = browser.new_context(viewport={"width": 1440, "height": 900})
                    page = context.new_page()
                    page.add_init_script(PLOTLY_TRAP)
                    cdp = context.new_cdp_session(page)
                    cdp.send("Performance.enable")
                    errors = []
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    cold.append(measure(page, cdp, url, cells))
                    warm.append(measure(page, cdp, url, cells))
                    hot.append(measure(page, cdp, url, cells))
                    context.close()
                    if errors:
                        raise RuntimeError(f"page errors: {errors}")
                browser.close()
            report(f"overview, {cells:,} GPUs ({args.nodes} nodes), cold cache", cold)
            report(f"overview, {cells:,} GPUs ({args.nodes} nodes), warm cache (2nd visit)", warm)
            report(f"overview, {cells:,} GPUs ({args.nodes} nodes), hot (3rd visit: V8's code cache)", hot)
            print("  meaningful paint, each run (cold / warm / hot): "
                  + ", ".join(f"{c['meaningful']:.0f}/{w['meaningful']:.0f}/{h['meaningful']:.0f}"
                              for c, w, h in zip(cold, warm, hot)))
            print(f"  mean: cold {statistics.fmean(r['meaningful'] for r in cold):.0f} ms, "
                  f"warm {statistics.fmean(r['meaningful'] for r in warm):.0f} ms, "
                  f"hot {statistics.fmean(r['meaningful'] for r in hot):.0f} ms")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
