"""The production path wired with real servers, for the end-to-end tests (docs/operations.md,
"End-to-end production path"):

    clusterwatch simulate (the fleet, file_sd) -> Prometheus 2.42 | VictoriaMetrics + vmalert
      (scraping the file_sd, evaluating the exported rule pack) -> Alertmanager 0.25
      -> clusterwatch serve's inbound receiver (bearer token) -> remediation against the
      simulator's Slurm face; the dashboard reading the engine through --prometheus-url.

Every server binds 127.0.0.1 on a free port and is stopped by its PID; a missing binary skips
(fails under CI=true) through tests.realcomponents.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.realcomponents import ManagedProcess, free_port, require_binary, wait_http

WEBHOOK_TOKEN = "e2e-webhook-token"
OPERATOR_TOKEN = "e2e-operator-token"
NODES = 6


@dataclass
class Stack:
    """The servers of one engine (Prometheus or VictoriaMetrics) and their addresses."""

    workdir: Path
    engine: str = ""
    sim_url: str = ""
    engine_url: str = ""       # what serve --prometheus-url points at
    rules_url: str = ""        # the rule evaluator's API (Prometheus itself, or vmalert)
    alertmanager_url: str = ""
    serve_port: int = 0
    processes: list[ManagedProcess] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)  # (what was waited for, seconds)

    @property
    def serve_url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def start(self, argv: list[str], name: str, **kwargs: Any) -> ManagedProcess:
        proc = ManagedProcess(argv, self.workdir / f"{name}-{len(self.processes)}.log", **kwargs)
        self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()

    def logs(self, chars: int = 3000) -> str:
        parts = []
        for proc in self.processes:
            state = "running" if proc.popen.poll() is None else f"exited {proc.popen.returncode}"
            parts.append(f"===== {proc.log_path.name} ({state}): {' '.join(proc.argv)[:300]}\n{proc.log_tail(chars)}")
        return "\n".join(parts)

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
        """Poll ``probe`` until it returns something truthy; fail with every server's log tail."""
        started = time.monotonic()
        deadline = started + timeout
        last: Any = None
        seen: list[tuple[str, float]] = []  # the distinct "not yet" states, with when they were first seen
        while True:
            try:
                last = probe()
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if last and not isinstance(last, str):
                self.timings.append((what, time.monotonic() - started))
                self.timings.extend((f"    not yet: {state[:300]}", at) for state, at in seen[-5:])
                return last
            if isinstance(last, str) and all(state != last for state, _ in seen):
                seen.append((last, time.monotonic() - started))
            if time.monotonic() >= deadline:
                pytest.fail(f"{what}: not within {timeout:.0f}s (last: {str(last)[:1500]})\n{self.logs()}")
            time.sleep(interval)


def get(url: str, **kwargs: Any) -> Any:
    response = httpx.get(url, timeout=10, **kwargs)
    response.raise_for_status()
    return response.json()


def engine_query(stack: Stack, promql: str) -> list[dict]:
    body = get(f"{stack.engine_url}/api/v1/query", params={"query": promql})
    assert body["status"] == "success", body
    return body["data"]["result"]


# ---- the pieces ---------------------------------------------------------------------------------

def start_simulator(stack: Stack, seed: int) -> Path:
    port = free_port()
    file_sd = stack.workdir / "gpu-nodes.json"
    proc = stack.start([sys.executable, "-m", "clusterwatch", "simulate", "--nodes", str(NODES), "--listen",
                        f"127.0.0.1:{port}", "--file-sd", str(file_sd), "--speed", "1", "--seed", str(seed)],
                       "simulator")
    stack.sim_url = f"http://127.0.0.1:{port}"
    wait_http(f"{stack.sim_url}/api/fleet", timeout=60, proc=proc)
    stack.wait_for("simulator's file_sd", lambda: file_sd.exists() and json.loads(file_sd.read_text()), 10)
    return file_sd


def export_rules(stack: Stack) -> Path:
    out = stack.workdir / "rules"
    done = subprocess.run([sys.executable, "-m", "clusterwatch", "rules", "export", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(out.glob("*.yml")), "rules export wrote no file"
    return out


def alertmanager_config(serve_port: int, token_file: Path) -> str:
    """deploy/alertmanager/alertmanager.yml's route to ClusterWatch, with test-sized timers."""
    return f"""\
route:
  receiver: clusterwatch
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: ['severity=~".+"']
      receiver: clusterwatch
      group_wait: 1s
receivers:
  - name: clusterwatch
    webhook_configs:
      - url: http://127.0.0.1:{serve_port}/api/v1/alertmanager/webhook
        send_resolved: true
        http_config:
          authorization: {{type: Bearer, credentials_file: {token_file}}}
"""


def start_alertmanager(stack: Stack) -> None:
    binary = require_binary("prometheus-alertmanager")
    token_file = stack.workdir / "clusterwatch-token"
    token_file.write_text(WEBHOOK_TOKEN + "\n")
    config = stack.workdir / "alertmanager.yml"
    config.write_text(alertmanager_config(stack.serve_port, token_file))
    port = free_port()
    proc = stack.start([binary, f"--config.file={config}", f"--storage.path={stack.workdir / 'am-data'}",
                        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="], "alertmanager")
    stack.alertmanager_url = f"http://127.0.0.1:{port}"
    wait_http(f"{stack.alertmanager_url}/-/ready", timeout=30, proc=proc)


def scrape_configs(file_sd: Path, serve_port: int) -> str:
    """The GPU nodes through file_sd (the simulator sets instance = node name and the metrics path
    per target) and the server's /metrics (slurm_* series carry the node in `instance`)."""
    return f"""\
scrape_configs:
  - job_name: gpu-nodes
    honor_labels: true
    file_sd_configs: [{{files: ['{file_sd}']}}]
  - job_name: clusterwatch
    honor_labels: true
    static_configs: [{{targets: ['127.0.0.1:{serve_port}']}}]
"""


def start_prometheus(stack: Stack, file_sd: Path, rules: Path) -> None:
    binary = require_binary("prometheus")
    config = stack.workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 2s}\n"
        f"rule_files: ['{rules}/*.yml']\n"
        f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['{stack.alertmanager_url[7:]}']}}]}}]}}\n"
        + scrape_configs(file_sd, stack.serve_port))
    port = free_port()
    proc = stack.start([binary, f"--config.file={config}", f"--storage.tsdb.path={stack.workdir / 'prom-data'}",
                        f"--web.listen-address=127.0.0.1:{port}"], "prometheus")
    stack.engine = "prometheus"
    stack.engine_url = stack.rules_url = f"http://127.0.0.1:{port}"
    wait_http(f"{stack.engine_url}/-/ready", timeout=30, proc=proc)


def start_victoriametrics(stack: Stack, file_sd: Path, rules: Path) -> None:
    vm_binary = require_binary("victoria-metrics")
    vmalert_binary = require_binary("vmalert")
    config = stack.workdir / "scrape.yml"
    config.write_text("global: {scrape_interval: 1s, scrape_timeout: 1s}\n" + scrape_configs(file_sd, stack.serve_port))
    port = free_port()
    proc = stack.start([vm_binary, f"-httpListenAddr=127.0.0.1:{port}",
                        f"-storageDataPath={stack.workdir / 'vm-data'}", "-retentionPeriod=1d",
                        f"-promscrape.config={config}", "-search.latencyOffset=0s"], "victoria-metrics")
    stack.engine = "victoriametrics"
    stack.engine_url = f"http://127.0.0.1:{port}"
    wait_http(f"{stack.engine_url}/health", timeout=30, proc=proc)
    vmalert_port = free_port()
    # -remoteWrite.url: vmalert writes ALERTS/ALERTS_FOR_STATE and the recording rules back into
    # VictoriaMetrics, as Prometheus keeps them in its own TSDB (the policy's verify step reads ALERTS).
    proc = stack.start([vmalert_binary, f"-rule={rules}/*.yml", f"-datasource.url={stack.engine_url}",
                        f"-remoteWrite.url={stack.engine_url}", f"-notifier.url={stack.alertmanager_url}",
                        "-evaluationInterval=2s", f"-httpListenAddr=127.0.0.1:{vmalert_port}"], "vmalert")
    stack.rules_url = f"http://127.0.0.1:{vmalert_port}"
    wait_http(f"{stack.rules_url}/-/healthy", timeout=30, proc=proc)


def start_engine(stack: Stack, engine: str, seed: int) -> None:
    """Simulator, rule pack, Alertmanager, then the engine; waits until every node is scraped."""
    stack.serve_port = free_port()  # known before serve runs: Alertmanager and the scrape config name it
    file_sd = start_simulator(stack, seed)
    rules = export_rules(stack)
    start_alertmanager(stack)
    if engine == "prometheus":
        start_prometheus(stack, file_sd, rules)
    else:
        start_victoriametrics(stack, file_sd, rules)
    stack.wait_for(f"{engine} scraping all {NODES} nodes through file_sd", lambda: len(
        engine_query(stack, 'count by (instance) (gpu_up{job="gpu-nodes"})')) == NODES, timeout=45)


def engine_stack(engine: str, seed: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A test module's ``stack`` fixture (module scope, so its dry-run and auto tests share the
    simulator, the engine and Alertmanager): ``yield from engine_stack(...)``."""
    stack = Stack(workdir=tmp_path_factory.mktemp(f"e2e-{engine}"))
    try:
        start_engine(stack, engine, seed)
        yield stack
    finally:
        stack.stop_all()  # every process by its PID, whatever happened


# alerts/notify/default.yml with test-sized timers: what can be remediated goes to the engine.
ALERTING = """\
route:
  receiver: log
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
  routes:
    - receiver: remediation
      matchers: ['action=~"reboot|reset_gpu|drain|notify_owner"']
      group_by: [alertname, instance, gpu, job_id]
      group_wait: 1s
      group_interval: 5s
      continue: true
receivers:
  - name: log
    log_configs: [{level: info}]
  - name: remediation
    hook_configs: [{name: remediation, send_resolved: true}]
"""


def start_serve(stack: Stack, mode: str, state_dir: Path, policy: Path) -> ManagedProcess:
    """``clusterwatch serve`` in --prometheus-url mode: the engine evaluates the rule pack and
    Alertmanager delivers (serve evaluates nothing itself in this mode), so every alert the server
    holds came through the inbound receiver."""
    alerting = state_dir.parent / "alerting.yml"
    alerting.write_text(ALERTING)
    proc = stack.start([
        sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{stack.serve_port}",
        "--prometheus-url", stack.engine_url, "--scheduler", "simulator", "--scheduler-url", f"{stack.sim_url}/slurm",
        "--scheduler-interval", "1s", "--webhook-token", WEBHOOK_TOKEN, "--operator-token", OPERATOR_TOKEN,
        "--state-dir", str(state_dir), "--automation", mode,
        "--alerting-config", str(alerting), "--policy", str(policy),
    ], f"serve-{mode}")
    wait_http(f"{stack.serve_url}/-/ready", timeout=90, proc=proc)
    return proc
