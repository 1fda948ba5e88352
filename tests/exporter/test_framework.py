"""The collection framework: timing, health, isolation of failing collectors, snapshot serving."""
from __future__ import annotations

import gzip
import threading
import types
import urllib.request

import pytest
from prometheus_client.core import GaugeMetricFamily

from cwkernel.metrics import FamilySet, gauge, metric_table
from exporter.collector import Collector, CollectorContext, NoDataError
from exporter.exporter import CollectionLoop, Exporter
from exporter.hostfs import MemoryFS
from exporter.server import ExporterHTTPServer
from tests.exporter.helpers import parse_exposition, sample

TABLE = metric_table(gauge("demo_value", "A value.", ["k"]))


class Counting(Collector):
    name = "counting"

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.calls = 0

    def collect(self):
        self.calls += 1
        out = FamilySet(TABLE)
        out.add("demo_value", self.calls, k="a")
        return out


class Broken(Collector):
    name = "broken"

    def collect(self):
        raise RuntimeError("disk on fire")


class Empty(Collector):
    name = "empty"

    def collect(self):
        raise NoDataError("no InfiniBand here")


class PartlyBroken(Collector):
    name = "partly"

    def collect(self):
        self.skip("reading /sys/x", OSError(5, "EIO"))
        out = FamilySet(TABLE)
        out.add("demo_value", 7, k="partly")
        return out


@pytest.fixture
def ctx() -> CollectorContext:
    return CollectorContext(config=types.SimpleNamespace(interval=1.0), procfs=MemoryFS(), sysfs=MemoryFS())


def test_one_failing_collector_does_not_hide_the_others(ctx):
    exporter = Exporter(ctx, [Broken(ctx), Counting(ctx), Empty(ctx)])
    samples = parse_exposition(exporter.collect_once().text)
    assert sample(samples, "demo_value", k="a") == 1
    assert sample(samples, "clusterwatch_exporter_collector_success", collector="broken") == 0
    assert sample(samples, "clusterwatch_exporter_collector_errors_total", collector="broken") == 1
    # "No data" is not a failure: a node without InfiniBand is healthy.
    assert sample(samples, "clusterwatch_exporter_collector_success", collector="empty") == 1
    assert sample(samples, "clusterwatch_exporter_collector_errors_total", collector="empty") == 0
    assert sample(samples, "clusterwatch_exporter_collector_success", collector="counting") == 1
    assert sample(samples, "clusterwatch_exporter_collector_duration_seconds", collector="counting") >= 0


def test_partial_failures_are_counted_and_the_rest_is_served(ctx):
    exporter = Exporter(ctx, [PartlyBroken(ctx)])
    exporter.collect_once()
    samples = parse_exposition(exporter.collect_once().text)
    assert sample(samples, "demo_value", k="partly") == 7
    assert sample(samples, "clusterwatch_exporter_collector_success", collector="partly") == 1
    assert sample(samples, "clusterwatch_exporter_collector_errors_total", collector="partly") == 2
    assert sample(samples, "clusterwatch_exporter_collections_total") == 2


def test_scrapes_serve_the_snapshot_and_never_collect(ctx):
    counting = Counting(ctx)
    exporter = Exporter(ctx, [counting])
    loop = CollectionLoop(exporter, interval=3600)
    loop.start()
    server = ExporterHTTPServer(("127.0.0.1", 0), lambda: exporter.collection)
    server.start_in_thread()
    try:
        bodies = []

        def scrape():
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
                bodies.append(response.read())

        threads = [threading.Thread(target=scrape) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(bodies) == 20 and len(set(bodies)) == 1
        assert counting.calls == 1  # 20 concurrent scrapes, one collection
    finally:
        server.shutdown()
        loop.stop()


def test_openmetrics_and_gzip_are_negotiated(ctx):
    exporter = Exporter(ctx, [Counting(ctx)])
    exporter.collect_once()
    server = ExporterHTTPServer(("127.0.0.1", 0), lambda: exporter.collection)
    server.start_in_thread()
    try:
        request = urllib.request.Request(f"{server.url}/metrics", headers={
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            "Accept-Encoding": "gzip",
        })
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            body = gzip.decompress(response.read()).decode()
        assert body.rstrip().endswith("# EOF")
        assert 'demo_value{k="a"} 1.0' in body
    finally:
        server.shutdown()


def test_no_snapshot_yet_is_503_not_an_empty_success(ctx):
    server = ExporterHTTPServer(("127.0.0.1", 0), lambda: None)
    server.start_in_thread()
    try:
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"{server.url}/metrics", timeout=5)
        assert raised.value.code == 503
    finally:
        server.shutdown()


def test_loop_keeps_running_after_a_cycle_raises(ctx):
    class Exploding(Exporter):
        def __init__(self, *args):
            super().__init__(*args)
            self.cycles = 0

        def collect_once(self):
            self.cycles += 1
            if self.cycles == 2:
                raise RuntimeError("bug in one cycle")
            return super().collect_once()

    exporter = Exploding(ctx, [Counting(ctx)])
    loop = CollectionLoop(exporter, interval=0.02)
    loop.start()
    try:
        deadline = threading.Event()
        for _ in range(200):
            if exporter.cycles >= 4:
                break
            deadline.wait(0.02)
        assert exporter.cycles >= 4
    finally:
        loop.stop()


def test_openmetrics_exposition_parses_and_holds_the_text_formats_samples(ctx):
    """The exporter writes OpenMetrics itself (prometheus_client's renderer cost 1.5 s of CPU per
    scrape on a 900-node fabric): OpenMetrics' own parser must read it, with every sample the text
    format has, counter families named without _total and an untyped family as unknown."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
    from prometheus_client.parser import text_string_to_metric_families as parse_text

    from cwkernel.metrics import counter, untyped
    from exporter.exporter import render_text

    table = metric_table(counter("demo_events_total", "Events.", ["k"]), gauge("demo_temp", 'A "quoted"\nhelp.', ["k"]),
                         untyped("demo_vmstat", "Untyped.", []))
    families = FamilySet(table)
    families.add("demo_events_total", 3, k='a"b\\c')
    families.add("demo_temp", float("nan"), k="x")
    families.add("demo_vmstat", 7)
    textfile_family = GaugeMetricFamily("site_backup_age_seconds", "From a .prom file.", labels=["job"])
    textfile_family.add_metric(["nightly"], 3600)
    parts = [families, textfile_family]

    def samples(parsed):
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in parsed for s in family.samples}

    openmetrics = render_text(parts, openmetrics=True).decode()
    parsed = list(parse_openmetrics(openmetrics))
    text = samples(parse_text(render_text(parts).decode()))
    assert {k: v for k, v in samples(parsed).items() if v == v} == {k: v for k, v in text.items() if v == v}
    assert {(f.name, f.type) for f in parsed} == {("demo_events", "counter"), ("demo_temp", "gauge"),
                                                  ("demo_vmstat", "unknown"), ("site_backup_age_seconds", "gauge")}
    assert openmetrics.endswith("# EOF\n")
