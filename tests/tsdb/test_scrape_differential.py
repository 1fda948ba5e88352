"""Scraping against a real Prometheus 2.42: one HTTP server offers random text-format pages (odd
names, label values with escapes and non-ASCII text, repeated label names, labels that clash with
the target's, every spelling of values and infinities, timestamps, comments, HELP and TYPE lines,
blank lines, no final newline), one page per path; the same file_sd file (a target per page,
``__metrics_path__`` and a ``page`` label) is given to Prometheus and to ``clusterwatch serve``.
Each page must come out the same in both: scraped or refused (``up``), and the same series with
the same values. It found that we refused every page with a repeated label name, where
Prometheus refuses only a sample still repeating a name after its labelling: a repeated target
label becomes ``exported_<name>`` with its first value, and a name with an empty value anywhere is
dropped (tsdb/exposition.py ``scraped_series``). 400 pages were run once (2026-12-06): all agreed.

Left out: negative timestamps, which Prometheus's text parser refuses and we accept (timestamps
are not used: ``honor_timestamps: false`` on both sides).
"""
from __future__ import annotations

import json
import math
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.realcomponents import free_port, require_binary, wait_http
from tsdb.client import HTTPQueryClient, QueryError

pytestmark = pytest.mark.real_component

PAGES = 200
OM_PAGES = 200
SINGLE_LINE = 130  # pages of one sample line: a difference points at the line
INTERVAL_S = 3
NAMES = ["a", "b_total", "c:d", "e_bucket", "f_sum", "_g", "h", "up", "instance_x"]
LABEL_NAMES = ["l", "le", "quantile", "job", "instance", "x_y", "L2", "__meta", "exported_job", "page"]
LABEL_VALUES = ["v", "", "1", "a b", 'q\\"q', "back\\\\slash", "new\\nline", "é😀", "+Inf", "0.5"]
VALUES = ["1", "0", "-1", "1.5e3", "NaN", "+Inf", "-Inf", "Inf", "1e-300", "0x10", "1_000", ".5", "5.", "+3", "nan",
          "inf", "1E2"]
TYPES = ["counter", "gauge", "histogram", "summary", "untyped", "bogus"]


def sample_line(rng: random.Random) -> str:
    labels = [f'{rng.choice(LABEL_NAMES)}="{rng.choice(LABEL_VALUES)}"' for _ in range(rng.randrange(0, 3))]
    braces = ("{" + ",".join(labels) + ("," if labels and rng.random() < 0.1 else "") + "}"
              if labels or rng.random() < 0.1 else "")
    timestamp = "" if rng.random() < 0.85 else " " + rng.choice(["1700000000000", "1.5", "abc"])
    return f"{rng.choice(NAMES)}{braces}{rng.choice([' ', ' ', chr(9), '  '])}{rng.choice(VALUES)}{timestamp}"


def page(number: int) -> str:
    rng = random.Random(number)
    if number < SINGLE_LINE:
        return sample_line(rng) + "\n"
    lines = []
    for _ in range(rng.randrange(1, 6)):
        roll = rng.random()
        if roll < 0.1:
            lines.append(f"# HELP {rng.choice(NAMES)} some \\\\ help \\n text")
        elif roll < 0.2:
            lines.append(f"# TYPE {rng.choice(NAMES)} {rng.choice(TYPES)}")
        elif roll < 0.25:
            lines.append(rng.choice(["", "# just a comment", "   ", "#"]))
        else:
            lines.append(sample_line(rng))
    return "\n".join(lines) + ("\n" if rng.random() < 0.9 else "")


OM_NAMES = ["a", "b_total", "b_created", "h_bucket", "h_count", "h_sum", "x", "c_d", "a_seconds", "x_info"]
OM_TYPES = ["counter", "gauge", "histogram", "summary", "unknown", "info", "stateset", "gaugehistogram", "untyped"]
OM_TIMESTAMPS = ["1700000000", "1700000000.5", "1.7e9", "-1", "abc", "NaN"]
OM_EXEMPLARS = ['{trace_id="t"} 1', '{trace_id="t"} 1 1700000000', "{} 2", "bad", '{a="b"} 1.5 -3']


def openmetrics_page(number: int) -> str:
    rng = random.Random(number)
    lines = []
    for _ in range(rng.randrange(1, 5)):
        roll = rng.random()
        if roll < 0.15:
            lines.append(f"# TYPE {rng.choice(['a', 'b', 'h', 'c_d', 'x'])} {rng.choice(OM_TYPES)}")
        elif roll < 0.2:
            lines.append(f"# HELP {rng.choice(['a', 'b', 'x'])} help \\\\ text")
        elif roll < 0.25:
            lines.append(f"# UNIT {rng.choice(['a', 'a_seconds', 'x'])} seconds")
        elif roll < 0.3:
            lines.append(rng.choice(["", "# comment", "#"]))
        else:
            labels = [f'{rng.choice(LABEL_NAMES)}="{rng.choice(LABEL_VALUES)}"' for _ in range(rng.randrange(0, 3))]
            timestamp = "" if rng.random() < 0.7 else " " + rng.choice(OM_TIMESTAMPS)
            exemplar = "" if rng.random() < 0.85 else " # " + rng.choice(OM_EXEMPLARS)
            braces = "{" + ",".join(labels) + "}" if labels else ""
            lines.append(f"{rng.choice(OM_NAMES)}{braces} {rng.choice(VALUES)}{timestamp}{exemplar}")
    end = rng.random()
    return "\n".join(lines) + ("\n# EOF\n" if end < 0.8 else "\n# EOF" if end < 0.85 else "\n")


TEXT_FORMAT = "text/plain; version=0.0.4"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class PageServer:
    """Each path's page with its own content type: /t/N text format, /o/N OpenMetrics."""

    def __init__(self, pages: dict[str, str]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = pages.get(self.path, "").encode()
                self.send_response(200)
                self.send_header("content-type", OPENMETRICS if self.path.startswith("/o/") else TEXT_FORMAT)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def answer(client: HTTPQueryClient, query: str) -> dict | str:
    try:
        result = client.instant(query, time.time())
    except QueryError as exc:
        return f"error: {exc}"
    return {tuple(sorted(s.labels.items())): "NaN" if math.isnan(s.value) else s.value for s in result.series}


def scraped_everything(client: HTTPQueryClient, pages: int) -> bool:
    # Three scrapes of every page: a refused page has had its chances too. (A page may expose
    # its own "up" series, hence by page.)
    counted = answer(client, 'count(max by (page) (count_over_time(up{job="fuzz"}[1h])) >= 3)')
    return isinstance(counted, dict) and list(counted.values()) == [float(pages)]


def scrape_both(tmp_path: Path, process_factory, pages: dict[str, str]) -> list[tuple]:
    """Each page as (number, text, what Prometheus made of it, what we did): ``up`` (at most once
    down: a scrape that ran late on a busy machine is not a refusal) and the page's series."""
    server = PageServer(pages)
    try:
        groups = [{"targets": [server.address], "labels": {"__metrics_path__": path, "page": path[1:].replace("/", "-"), "job": "fuzz"}}
                  for path in pages]
        file_sd = tmp_path / "targets.json"
        file_sd.write_text(json.dumps(groups))
        config = tmp_path / "prometheus.yml"
        config.write_text(f"global: {{scrape_interval: {INTERVAL_S}s, scrape_timeout: {INTERVAL_S}s}}\n"
                          "scrape_configs:\n  - job_name: fuzz\n    honor_timestamps: false\n"
                          f"    file_sd_configs: [{{files: ['{file_sd}']}}]\n")
        prom_port, our_port = free_port(), free_port()
        prom = process_factory([require_binary("prometheus"), f"--config.file={config}",
                                f"--storage.tsdb.path={tmp_path / 'prometheus'}", f"--web.listen-address=127.0.0.1:{prom_port}"])
        ours = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{our_port}",
                                "--file-sd", str(file_sd), "--scrape-interval", f"{INTERVAL_S}s"], name="clusterwatch-serve")
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready", proc=prom)
        wait_http(f"http://127.0.0.1:{our_port}/-/ready", timeout=60, proc=ours)
        our_client, prom_client = HTTPQueryClient(f"http://127.0.0.1:{our_port}"), \
            HTTPQueryClient(f"http://127.0.0.1:{prom_port}")
        deadline = time.monotonic() + 300
        while not (scraped_everything(our_client, len(pages)) and scraped_everything(prom_client, len(pages))):
            assert time.monotonic() < deadline, "both servers should have scraped every page three times"
            time.sleep(1)
        seen = []
        for path, text in pages.items():
            number = path[1:].replace("/", "-")
            up = f'max_over_time(up{{page="{number}"}}[1h])'
            series = f'{{page="{number}",__name__!~"up|scrape_.*|ALERTS.*"}}'
            seen.append((number, text, (answer(prom_client, up), answer(prom_client, series)),
                         (answer(our_client, up), answer(our_client, series))))
        return seen
    finally:
        server.close()


def report(pages: list[tuple]) -> str:
    return "\n".join(f"page {n}: {text!r}\n    ours {ours}\n    Prometheus {theirs}" for n, text, theirs, ours in pages)


@pytest.mark.real_component
def test_pages_are_scraped_as_prometheus_scrapes_them(tmp_path: Path, process_factory) -> None:
    """Text-format pages come out the same in both, scraped or refused. OpenMetrics pages are held
    by Prometheus's parser to the standard (metadata before a family's samples, a unit that ends the
    name, exemplars only where allowed, exact spellings of NaN and infinities, # EOF), which refuses
    about two in three of these random pages; some of those we store as they say (86 of 600 on
    2026-12-06; docs/promql.md). What must hold there is the other way round: no page Prometheus
    scrapes may be refused here, or read differently."""
    pages = {**{f"/t/{n}": page(n) for n in range(PAGES)}, **{f"/o/{n}": openmetrics_page(n) for n in range(OM_PAGES)}}
    seen = scrape_both(tmp_path, process_factory, pages)
    text = [item for item in seen if item[0].startswith("t-")]
    differing = [item for item in text if item[2] != item[3]]
    assert not differing, f"{len(differing)} of {PAGES} text pages differ:\n" + report(differing)
    scraped_there = [item for item in seen if item[0].startswith("o-") and list(item[2][0].values()) == [1.0]]
    assert len(scraped_there) >= OM_PAGES // 5  # enough pages compared (about a third)
    differing = [item for item in scraped_there if item[2] != item[3]]
    assert not differing, f"{len(differing)} OpenMetrics pages Prometheus scrapes differ here:\n" + report(differing)
