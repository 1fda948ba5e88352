"""A process-wide bound on memory: once the server's resident memory reaches 85 % of its limit
(``--memory-limit``, else its cgroup's ``memory.max``, else the machine's memory), new pages,
dashboard JSON and Prometheus API queries are refused with a 503 in their route's shape, until it
is below again; scraping, rules, alerting, the webhook, operator actions, ``/metrics`` and the
probes go on. Every input was bounded on its own (query samples, series, alerts, silences, bodies),
but the bounds add up to more than a container's memory: the demo's store alone is 0.8-1.3 GB, and
a handful of queries at the sample limit are gigabytes more, so the OOM killer ended the whole
watcher for a dashboard's sake."""
from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cwkernel.admission import Admission
from cwkernel.memguard import HIGH_RATIO, MemoryGuard, memory_limit
from cwkernel.server import Component, build_app
from cwkernel.settings import byte_size
from tests.realcomponents import free_port, wait_http


class Resident:
    def __init__(self, value: int) -> None:
        self.value = value

    def __call__(self) -> int:
        return self.value


def app_with(guard: MemoryGuard):
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/api/overview")
    def overview() -> dict:
        return {"ok": True}

    admission = Admission(memory=guard)
    return build_app([Component("http", routers=[router], collectors=[admission, guard],
                                health=lambda: {**admission.problems(), **guard.problems()})])


def test_views_are_refused_under_memory_pressure_and_the_probes_still_answer() -> None:
    resident = Resident(100)
    guard = MemoryGuard(1000, "--memory-limit", rss=resident, sample_s=0)
    with TestClient(app_with(guard)) as client:
        assert client.get("/api/overview").status_code == 200
        resident.value = int(1000 * HIGH_RATIO) + 1
        refused = client.get("/api/overview")
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert "memory" in refused.json()["detail"] and "--memory-limit" in refused.json()["detail"]
        assert client.get("/-/healthy").status_code == 200 and client.get("/-/live").status_code == 200
        assert "memory_pressure" in client.get("/-/ready").text
        metrics = client.get("/metrics").text
        assert 'clusterwatch_http_requests_shed_total{class="view",reason="memory"} 1.0' in metrics
        assert "clusterwatch_memory_limit_bytes 1000.0" in metrics
        resident.value = 100
        assert client.get("/api/overview").status_code == 200


def test_the_limit_is_the_setting_else_the_cgroup_else_the_machine(tmp_path: Path) -> None:
    cgroup = tmp_path / "sys" / "fs" / "cgroup"
    (cgroup / "system.slice" / "cw.service").mkdir(parents=True)
    (tmp_path / "self_cgroup").write_text("0::/system.slice/cw.service\n")
    (tmp_path / "meminfo").write_text("MemTotal:       16384000 kB\nMemFree: 1 kB\n")
    paths = {"proc_cgroup": tmp_path / "self_cgroup", "cgroup_root": cgroup, "meminfo": tmp_path / "meminfo"}
    assert memory_limit(0, **paths) == (16384000 * 1024, "/proc/meminfo MemTotal")
    (cgroup / "system.slice" / "cw.service" / "memory.max").write_text("max\n")
    assert memory_limit(0, **paths) == (16384000 * 1024, "/proc/meminfo MemTotal")
    (cgroup / "system.slice" / "cw.service" / "memory.max").write_text("4294967296\n")
    assert memory_limit(0, **paths) == (4294967296, "cgroup memory.max")
    assert memory_limit(2 << 30, **paths) == (2 << 30, "--memory-limit")


@pytest.mark.parametrize("raw, value", [("0", 0), ("1048576", 1 << 20), ("512MiB", 512 << 20), ("4GiB", 4 << 30),
                                        ("4Gi", 4 << 30), ("2GB", 2 << 30), ("1.5GiB", 3 << 29)])
def test_sizes(raw, value) -> None:
    assert byte_size(raw) == value


@pytest.mark.parametrize("raw", ["-1", "lots", "4 parsecs", "nanGiB"])
def test_bad_sizes(raw) -> None:
    with pytest.raises(ValueError):
        byte_size(raw)


@pytest.mark.real_component
def test_serve_under_its_memory_limit_refuses_views_and_keeps_watching(process_factory) -> None:
    port = free_port()
    proc = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                            "--memory-limit", "1MiB"], name="serve")
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/-/healthy", timeout=30, proc=proc)
    overview = httpx.get(f"{base}/api/overview", timeout=30)
    assert overview.status_code == 503 and "memory" in overview.json()["detail"]
    query = httpx.get(f"{base}/api/v1/query", params={"query": "up"}, timeout=30)
    assert query.status_code == 503 and query.json()["errorType"] == "unavailable"
    assert "memory_pressure" in httpx.get(f"{base}/-/ready", timeout=30).text
    assert httpx.get(f"{base}/metrics", timeout=30).status_code == 200


def test_a_cgroup_v1_limit_mounted_as_the_containers_root(tmp_path: Path) -> None:
    """cgroup v1 in a container: /proc/self/cgroup names a path that is not under the mount,
    whose root is the container's own group."""
    cgroup = tmp_path / "cgroup"
    (cgroup / "memory").mkdir(parents=True)
    (cgroup / "memory" / "memory.limit_in_bytes").write_text("2147483648\n")
    (tmp_path / "self_cgroup").write_text("4:memory:/process_api/abc\n0::/\n")
    assert memory_limit(0, proc_cgroup=tmp_path / "self_cgroup", cgroup_root=cgroup,
                        meminfo=tmp_path / "none") == (2147483648, "cgroup memory.limit_in_bytes")
    (cgroup / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert memory_limit(0, proc_cgroup=tmp_path / "self_cgroup", cgroup_root=cgroup,
                        meminfo=tmp_path / "none") == (0, "unknown")


def test_an_outside_query_is_refused_and_one_evaluating_is_stopped_past_the_line_while_rules_go_on() -> None:
    """The engine's gate: a query from outside is refused at the gate past the line, and one
    already evaluating stops at its next check (503 unavailable), so that a query that grows the
    process past the line does not go on to the OOM killer; the server's own queries (rules,
    remediation) are never refused."""
    from tsdb.promql.engine import Engine
    from tsdb.promql.values import PromQLError
    from tsdb.store import Store

    store = Store()
    for i in range(50):
        store.append_scrape(f"t{i}", 1_000_000, [((("__name__", "up"), ("instance", f"t{i}")), 1.0)])
    short: list[str] = []

    class Bound:
        def pressure(self) -> str | None:
            return short[0] if short else None

        def admit(self, nbytes: int) -> str | None:
            return None

    engine = Engine(store, memory=Bound())
    with engine.gate.admitted() as ticket:
        assert len(engine.instant("up", 1000, ticket=ticket).series) == 50
    short.append("the server's memory is at 900 MiB of its 1,000 MiB limit")
    with pytest.raises(PromQLError) as refused:
        engine.gate.enter()
    assert refused.value.error_type == "unavailable" and "900 MiB" in str(refused.value)
    assert len(engine.instant("up", 1000).series) == 50, "the server's own queries go on"
    short.clear()
    asked = 0

    def crossing_the_line_midway() -> str | None:  # the process crosses the line while the query evaluates
        nonlocal asked
        asked += 1
        return "the server's memory is at 950 MiB of its 1,000 MiB limit" if asked > 2 else None

    engine.gate.memory.pressure = crossing_the_line_midway
    with pytest.raises(PromQLError, match="950 MiB"), engine.gate.admitted() as ticket:
        engine.instant("sum(up) + sum(up) + sum(up) + sum(up)", 1000, ticket=ticket)
    assert asked > 2 and engine.gate.running() == 0
    assert engine.refusals()["memory"] == 2


def test_an_allocation_that_would_pass_the_line_is_refused_before_it_is_made() -> None:
    """A query's store read is charged before it is copied: with the process at 700 of 1,000 (line
    850), 100 admitted and not yet in the resident figure, 100 more pass, 100 after that do not;
    the next reading of the resident memory starts the count again."""
    mib = 1 << 20
    resident = Resident(700 * mib)
    clock = [0.0]
    guard = MemoryGuard(1000 * mib, "--memory-limit", rss=resident, clock=lambda: clock[0], sample_s=1.0)
    assert guard.admit(100 * mib) is None and guard.admit(40 * mib) is None
    refused = guard.admit(100 * mib)
    assert refused and "at 700 MiB and would reach 940 MiB of its 1,000 MiB limit (--memory-limit)" in refused
    clock[0] = 2.0
    resident.value = 600 * mib
    assert guard.admit(200 * mib) is None


def test_a_query_whose_read_would_pass_the_line_is_refused_and_the_servers_own_are_not() -> None:
    from tsdb.promql.engine import Engine
    from tsdb.promql.values import PromQLError
    from tsdb.store import Store

    store = Store()
    for i in range(50):
        store.append_scrape(f"t{i}", 1_000_000, [((("__name__", "up"), ("instance", f"t{i}")), 1.0)])
    # Line at 1,700 bytes, 1,000 resident: a read of 50 samples (24 bytes each) would pass it.
    guard = MemoryGuard(2000, "--memory-limit", rss=lambda: 1000, sample_s=0)
    engine = Engine(store, memory=guard)
    with pytest.raises(PromQLError, match="would reach"), engine.gate.admitted() as ticket:
        engine.instant("up", 1000, ticket=ticket)
    assert len(engine.instant("up", 1000).series) == 50
