"""One `clusterwatch demo` (simulator + serve with the dashboard) shared by the dashboard tests, and
the Chromium of the browser tests."""
from __future__ import annotations

import os
import sys
import time
from urllib.parse import urlparse

import httpx
import pytest

from tests.dashboard.chromium import CHROMIUM_ARGS
from tests.dashboard.fleet import NODES, TOKEN
from tests.realcomponents import ManagedProcess, free_port, require_binary, unavailable, wait_http


@pytest.fixture(scope="package")
def demo(tmp_path_factory):
    state = tmp_path_factory.mktemp("demo")
    port, sim_port = free_port(), free_port()
    proc = ManagedProcess([sys.executable, "-m", "clusterwatch", "demo", "--nodes", str(NODES), "--listen",
                           f"127.0.0.1:{port}", "--simulator-listen", f"127.0.0.1:{sim_port}", "--state-dir",
                           str(state / "demo"), "--scrape-interval", "1s"], state / "demo.log",
                          env={"CLUSTERWATCH_OPERATORS": f"alice:{TOKEN}"})
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/-/ready", timeout=120, proc=proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # scraped GPUs and a scheduler poll with running jobs
            body = httpx.get(f"{base}/api/overview", timeout=10).json()
            if body["kpis"]["gpus_total"] == NODES * 8 and body["kpis"]["jobs_running"] and body["heatmap"]["job_ids"]:
                break
            time.sleep(0.5)
        yield {"base": base, "sim": f"http://127.0.0.1:{sim_port}", "proc": proc}
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser():
    require_binary("chromium")
    executable = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if os.path.exists(p)), None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright; never `playwright install`)")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors (``page.errors``) and requests leaving 127.0.0.1
    (``page.foreign``)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.errors, page.foreign = [], []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.foreign.append(r.url)
            if urlparse(r.url).hostname not in ("127.0.0.1", None) and not r.url.startswith("data:") else None)
    yield page
    context.close()
