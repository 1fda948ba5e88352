"""Pods on Kubernetes GPU nodes: the kubelet's pod-resources API, served by a real gRPC server on a
unix socket speaking the v1 protobuf, read by the client and by the jobs collector on a fake GPU
node. What an operator notices: every GPU a container holds is attributed to its pod, running a
process or not (held but unused), while a kubelet that is missing, forbidden, old or hung only
loses that attribution, once in the log, never the node's other metrics."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent import futures
from pathlib import Path
from typing import Callable, Iterator

import grpc
import pytest
import yaml

from exporter.collectors.gpu import GpuCollector
from exporter.collectors.jobs import JobsCollector
from exporter.config import ExporterConfig
from exporter.exporter import Exporter
from exporter.hostfs import HostFS
from exporter.nvml.fake import GIB, FakeMigInstance, FakeProcess, FakeState
from exporter.podresources import allocations, api_pb2, api_pb2_grpc, client as podresources_client
from exporter.podresources.allocations import DeviceAllocation, PodResourcesError, socket_for
from exporter.podresources.client import PodResourcesClient
from exporter.podresources.poller import PodResourcesPoller
from tests.exporter.helpers import FakeGpuNode, Samples, parse_exposition, sample, series
from tests.realcomponents import until

ROOT = Path(__file__).resolve().parents[2]
PROC = ROOT / "tests" / "fixtures" / "jobs" / "proc"
POD_PID = 4301   # its cgroup: /kubepods/burstable/pod0f4a5e0c-.../<container> (a pod, by UID)
SLURM_PID = 4101  # its cgroup: Slurm job 1234
GPU = "nvidia.com/gpu"
WAIT_S = 30.0


class FakeKubelet(api_pb2_grpc.PodResourcesListerServicer):
    """The kubelet's side: ``pods`` as {(namespace, pod): {container: [(resource, [device ids])]}}."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, list[tuple[str, list[str]]]]] = {}
        self.allocatable: list[tuple[str, list[str]]] = []
        self.hang = False
        self.hung = threading.Event()     # set once a List is hanging
        self.release = threading.Event()  # ends every hang

    def List(self, request, context):  # noqa: N802 - the protobuf service's name
        if self.hang:
            self.hung.set()
            self.release.wait(300)
        return api_pb2.ListPodResourcesResponse(pod_resources=[
            api_pb2.PodResources(namespace=namespace, name=name, containers=[
                api_pb2.ContainerResources(name=container, devices=[
                    api_pb2.ContainerDevices(resource_name=resource, device_ids=ids) for resource, ids in devices])
                for container, devices in containers.items()])
            for (namespace, name), containers in self.pods.items()])

    def GetAllocatableResources(self, request, context):  # noqa: N802
        return api_pb2.AllocatableResourcesResponse(devices=[
            api_pb2.ContainerDevices(resource_name=resource, device_ids=ids) for resource, ids in self.allocatable])


def serve(socket_path: str, kubelet: FakeKubelet, *, old: bool = False) -> grpc.Server:
    """A gRPC server on ``socket_path``; ``old``: a kubelet before 1.21, whose service has only List."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if old:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("v1.PodResourcesLister", {
            "List": grpc.unary_unary_rpc_method_handler(
                kubelet.List, request_deserializer=api_pb2.ListPodResourcesRequest.FromString,
                response_serializer=api_pb2.ListPodResourcesResponse.SerializeToString)}),))
    else:
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(kubelet, server)
    server.add_insecure_port(f"unix://{socket_path}")
    server.start()
    return server


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Short: a unix socket's path must fit in 108 bytes, which pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="cwk8s", dir="/tmp"))
    yield path
    path.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def kubelet(socket_dir: Path) -> Iterator[tuple[FakeKubelet, str]]:
    fake, socket_path = FakeKubelet(), str(socket_dir / "kubelet.sock")
    server = serve(socket_path, fake)
    yield fake, socket_path
    fake.release.set()
    server.stop(0).wait(10)


def gpu_node(socket_path: str, *extra: type) -> FakeGpuNode:
    """An 8-GPU fake node whose jobs collector (and ``extra`` collectors) read ``socket_path``."""
    node = FakeGpuNode(FakeState.h100_node(gpus=8, seed=3), errors_of="jobs")
    node.ctx.config = ExporterConfig(interval=0.2, pod_resources_socket=socket_path)
    node.ctx.procfs = HostFS(PROC)
    node.collectors = [JobsCollector(node.ctx), *(collector(node.ctx) for collector in extra)]
    return node


def close(node: FakeGpuNode) -> None:
    for collector in node.collectors:
        collector.close()


def scrape_until(node: FakeGpuNode, check: Callable[[Samples], object], what: str) -> Samples:
    """The first scrape that passes ``check`` (the poller answers in its own time)."""
    return until(lambda: samples if check(samples := node.scrape()) else None, WAIT_S, what)


def kubelet_state(node: FakeGpuNode) -> Samples:
    """A scrape once the kubelet's first answer (or failure) is in: its up gauge is exposed."""
    return scrape_until(node, lambda s: series(s, "clusterwatch_exporter_pod_resources_up"), "the kubelet's first answer")


def up(samples: Samples) -> float:
    return sample(samples, "clusterwatch_exporter_pod_resources_up")


def owners(samples: Samples, gpu: int) -> set[tuple[str, ...]]:
    return {(s["job_id"], s["pod"], s["namespace"], s["container"], s["source"])
            for s in series(samples, "gpu_job_info") if s["gpu"] == str(gpu)}


def bert(node: FakeGpuNode) -> dict[str, list[tuple[str, list[str]]]]:
    """ml/bert-0's one container, holding GPUs 0 and 1."""
    return {"trainer": [(GPU, [node.state.gpu(0).uuid, node.state.gpu(1).uuid])]}


BERT = ("ml/bert-0", "bert-0", "ml", "trainer", "kubelet")


# -- the client -----------------------------------------------------------------------------------

def test_client_reads_every_containers_devices_and_the_allocatable_ones(kubelet):
    fake, socket_path = kubelet
    fake.pods[("ml", "bert-0")] = {"trainer": [(GPU, ["GPU-a", "GPU-b"])], "sidecar": []}
    fake.pods[("infra", "nic-user")] = {"app": [("example.com/nic", ["0000:3b:00.0"])]}
    fake.allocatable = [(GPU, ["GPU-a", "GPU-b", "GPU-c"])]
    client = PodResourcesClient(socket_path)
    try:
        assert client.list_devices() == [
            DeviceAllocation("ml", "bert-0", "trainer", GPU, "GPU-a"),
            DeviceAllocation("ml", "bert-0", "trainer", GPU, "GPU-b"),
            DeviceAllocation("infra", "nic-user", "app", "example.com/nic", "0000:3b:00.0"),
        ]
        assert client.allocatable_devices() == [(GPU, "GPU-a"), (GPU, "GPU-b"), (GPU, "GPU-c")]
    finally:
        client.close()


def test_an_answer_over_the_size_cap_is_refused_with_a_clear_error(kubelet):
    fake, socket_path = kubelet
    fake.pods = {("ns", f"pod-{n}"): {"c": [(GPU, [f"GPU-{n:040d}"])]} for n in range(100)}
    client = PodResourcesClient(socket_path, max_message_bytes=1024)
    try:
        with pytest.raises(PodResourcesError) as raised:
            client.list_devices()
        assert raised.value.reason == "answer too large"
    finally:
        client.close()


def test_a_missing_socket_is_named_at_once(socket_dir):
    client = PodResourcesClient(str(socket_dir / "kubelet.sock"))
    try:
        with pytest.raises(PodResourcesError, match="does not exist") as raised:
            client.list_devices()
        assert raised.value.reason == "socket missing"
    finally:
        client.close()


def test_the_setting_picks_the_socket(monkeypatch, socket_dir):
    monkeypatch.setattr(allocations, "DEFAULT_SOCKET", str(socket_dir / "pod-resources" / "kubelet.sock"))
    assert socket_for("auto") is None  # no kubelet directory: a node without Kubernetes, not an error
    (socket_dir / "pod-resources").mkdir()
    assert socket_for("auto") == str(socket_dir / "pod-resources" / "kubelet.sock")
    assert socket_for("off") is None and socket_for("") is None
    assert socket_for("/run/k.sock") == "/run/k.sock"


def test_the_exporter_command_looks_for_the_kubelet_and_a_simulated_node_does_not():
    from clusterwatch.cli import build_parser
    from clusterwatch.commands.exporter import load_config

    def setting(*flags: str) -> str:
        return load_config(build_parser().parse_args(["exporter", *flags]), environ={}).pod_resources_socket

    assert setting() == "auto"
    assert setting("--pod-resources-socket", "off") == "off"
    assert ExporterConfig().pod_resources_socket == ""  # built in code (simulator, bench): fake GPUs, no kubelet


def test_an_answer_older_than_a_few_intervals_attributes_nothing(kubelet):
    """A poller that stopped answering must not keep pods on GPUs they may have left."""
    fake, socket_path = kubelet
    fake.pods[("ml", "bert-0")] = {"trainer": [(GPU, ["GPU-a"])]}
    now = [1000.0]
    poller = PodResourcesPoller(PodResourcesClient(socket_path), interval=5.0, clock=lambda: now[0])
    try:
        assert poller.latest() is None  # not asked yet: no answer, no failure
        poller.poll_once()
        assert [d.device_id for d in poller.latest().devices] == ["GPU-a"]
        now[0] += poller.max_age + 1
        stale = poller.latest()
        assert stale.devices == () and stale.error.reason == "no recent answer"
    finally:
        poller.stop()


# -- the jobs collector ---------------------------------------------------------------------------

def test_every_allocated_gpu_is_attributed_to_its_pod_with_or_without_a_process(kubelet):
    fake, socket_path = kubelet
    node = gpu_node(socket_path)
    try:
        state = node.state
        fake.pods[("ml", "bert-0")] = bert(node)
        # Time-slicing: two containers share GPU 3 as replicas "<uuid>::<n>".
        fake.pods[("ml", "llama-1")] = {"worker": [(GPU, [state.gpu(3).uuid + "::0"])],
                                        "eval": [(GPU, [state.gpu(3).uuid + "::1"])]}
        # MIG (the device plugin's mixed strategy): a MIG instance's UUID attributes its GPU.
        state.gpu(5).mig_mode = True
        state.gpu(5).mig_instances = [FakeMigInstance(1, 0, "MIG-aaaaaaaa-1111-2222-3333-444444444444", "3g.40gb",
                                                      40 * GIB)]
        fake.pods[("ml", "small-2")] = {"main": [("nvidia.com/mig-3g.40gb", ["MIG-aaaaaaaa-1111-2222-3333-444444444444"])]}
        # Not this node's GPUs, or not GPUs: ignored.
        fake.pods[("infra", "other")] = {"app": [(GPU, ["GPU-00000000-0000-0000-0000-000000000000"]),
                                                 ("example.com/nic", ["0000:3b:00.0"])]}
        fake.allocatable = [(GPU, [state.gpu(i).uuid for i in range(6)])]
        state.gpu(0).processes = [FakeProcess(POD_PID, 2 * GIB)]  # bert-0's process, its cgroup naming the pod's UID
        state.gpu(4).processes = [FakeProcess(SLURM_PID, GIB)]    # a Slurm job's, unchanged

        samples = kubelet_state(node)

        assert up(samples) == 1
        assert owners(samples, 0) == {BERT}  # the process's pod UID folds into the allocation: one series
        assert owners(samples, 1) == {BERT}  # held, no process
        assert sample(samples, "gpu_processes", gpu=1, uuid=state.gpu(1).uuid) == 0
        assert owners(samples, 2) == set()   # not allocated
        assert owners(samples, 3) == {("ml/llama-1", "llama-1", "ml", "worker", "kubelet"),
                                      ("ml/llama-1", "llama-1", "ml", "eval", "kubelet")}
        assert owners(samples, 4) == {("1234", "", "", "", "cgroup")}
        assert owners(samples, 5) == {("ml/small-2", "small-2", "ml", "main", "kubelet")}
        assert sample(samples, "gpu_process_memory_used_bytes", gpu=0, uuid=state.gpu(0).uuid, pid=POD_PID,
                      job_id="ml/bert-0", pod="bert-0", namespace="ml", container="trainer") == 2 * GIB
        assert {s["gpu"] for s in series(samples, "gpu_kubernetes_allocatable")} == {str(i) for i in range(6)}
        assert node.errors() == 0

        del fake.pods[("ml", "bert-0")]  # the pod ends: its GPUs are free at the next answer
        samples = scrape_until(node, lambda s: not owners(s, 1), "bert-0's GPUs to be released")
        assert owners(samples, 0) == {("", "0f4a5e0c-3f3b-4b2e-9a59-1c2d3e4f5a6b", "", "", "kubernetes")}
    finally:
        close(node)


def _rule(record: str) -> str:
    for path in sorted((ROOT / "alerts" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("record") == record:
                    return rule["expr"]
    raise AssertionError(f"no recording rule {record}")


def test_a_pods_gpu_held_without_a_process_is_what_the_rules_count(kubelet):
    """JobGpusHeldUnused and JobGpusIdle read job_id: a pod is a job to them."""
    from tsdb.client import in_memory_engine

    fake, socket_path = kubelet
    node = gpu_node(socket_path)
    try:
        fake.pods[("ml", "bert-0")] = bert(node)
        node.state.gpu(0).processes = [FakeProcess(POD_PID, GIB)]
        samples = kubelet_state(node)
    finally:
        close(node)
    engine = in_memory_engine()
    for name, labels in samples:
        pairs = tuple(sorted((k, v) for k, v in {**dict(labels), "__name__": name, "instance": "gpu-k01"}.items() if v))
        engine.load(pairs, [1_000_000], [samples[(name, labels)]])
    allocated = f"({_rule('instance_gpu_job:allocated:info')})"
    held_unused = _rule("job_id:gpus_without_processes:count").replace("instance_gpu_job:allocated:info", allocated)
    result = engine.query.instant(held_unused, at=1_000)
    assert [(labels.get("job_id"), value) for labels, value in result.samples()] == [("ml/bert-0", 1.0)]


def test_without_the_socket_pods_lose_only_their_kubelet_attribution_logged_once(socket_dir, caplog):
    socket_path = str(socket_dir / "kubelet.sock")
    node = gpu_node(socket_path)
    try:
        node.state.gpu(4).processes = [FakeProcess(SLURM_PID, GIB)]
        with caplog.at_level(logging.WARNING):
            samples = kubelet_state(node)
            for _ in range(3):
                samples = node.scrape()
        assert up(samples) == 0
        assert owners(samples, 4) == {("1234", "", "", "", "cgroup")}
        assert node.errors() == 1  # one failure, counted once, not once per cycle
        warnings = [r.getMessage() for r in caplog.records if "pod-resources" in r.getMessage()]
        assert len(warnings) == 1 and "socket missing" in warnings[0] and socket_path in warnings[0]

        fake = FakeKubelet()  # the kubelet comes (back): picked up without a restart
        fake.pods[("ml", "bert-0")] = bert(node)
        server = serve(socket_path, fake)
        try:
            samples = scrape_until(node, lambda s: up(s) == 1, "the kubelet")
            assert owners(samples, 1) == {BERT}
        finally:
            server.stop(0).wait(10)
    finally:
        close(node)


PERMISSION_CHECK = """
import socket, sys
from exporter.podresources.allocations import PodResourcesError
from exporter.podresources.client import PodResourcesClient
raw = socket.socket(socket.AF_UNIX)
try:
    raw.connect(sys.argv[1])
    print("connected")
except PermissionError:
    print("kernel: permission denied")
try:
    PodResourcesClient(sys.argv[1]).list_devices()
except PodResourcesError as exc:
    print(f"client: {exc.reason}: {exc}")
"""


def test_a_socket_the_exporter_may_not_use_is_reported_as_permission_denied(kubelet):
    fake, socket_path = kubelet
    os.chmod(socket_path, 0)
    argv = [sys.executable, "-c", PERMISSION_CHECK, socket_path]
    if os.geteuid() == 0:
        # Root as the DaemonSet runs it: uid 0 with every capability dropped, which file modes do stop.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root, which file modes do not stop, and no setpriv (util-linux) to drop "
                        "root's capabilities as the DaemonSet does")
        argv = [setpriv, "--bounding-set=-all", "--inh-caps=-all", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "kernel: permission denied"
    assert lines[1].startswith("client: permission denied:") and socket_path in lines[1]


def test_a_kubelet_without_get_allocatable_resources_still_attributes(socket_dir):
    fake, socket_path = FakeKubelet(), str(socket_dir / "kubelet.sock")
    server = serve(socket_path, fake, old=True)
    node = gpu_node(socket_path)
    try:
        fake.pods[("ml", "bert-0")] = bert(node)
        client = PodResourcesClient(socket_path)
        assert client.allocatable_devices() is None  # UNIMPLEMENTED: not an error
        client.close()
        samples = kubelet_state(node)
        assert up(samples) == 1 and node.errors() == 0
        assert owners(samples, 0) == owners(samples, 1) == {BERT}
        assert series(samples, "gpu_kubernetes_allocatable") == []
    finally:
        close(node)
        server.stop(0).wait(10)


def test_a_hung_kubelet_never_stalls_the_collection(kubelet, monkeypatch):
    fake, socket_path = kubelet
    fake.hang = True
    # A deadline longer than the test: a collection that waited on the kubelet would not finish.
    monkeypatch.setattr(podresources_client, "CALL_TIMEOUT_S", 600.0)
    node = gpu_node(socket_path, GpuCollector)
    exporter = Exporter(node.ctx, node.collectors)
    try:
        assert fake.hung.wait(WAIT_S)
        done = threading.Event()
        threading.Thread(target=lambda: (exporter.collect_once(), done.set()), daemon=True).start()
        assert done.wait(WAIT_S), "a collection waited on the hung kubelet"
        samples = parse_exposition(exporter.collection.render())
        assert series(samples, "gpu_temperature_celsius")  # the other collectors are exposed
        assert series(samples, "clusterwatch_exporter_pod_resources_up") == []  # no answer yet: not a failure
    finally:
        fake.release.set()
        close(node)


def test_a_kubelet_that_does_not_answer_in_time_is_a_timeout(kubelet, monkeypatch, caplog):
    fake, socket_path = kubelet
    fake.hang = True
    monkeypatch.setattr(podresources_client, "CALL_TIMEOUT_S", 0.5)
    node = gpu_node(socket_path)
    try:
        fake.pods[("ml", "bert-0")] = bert(node)
        with caplog.at_level(logging.WARNING):
            samples = kubelet_state(node)
        assert up(samples) == 0 and owners(samples, 1) == set()
        assert any("timeout" in r.getMessage() for r in caplog.records)
        fake.hang = False
        fake.release.set()
        samples = scrape_until(node, lambda s: up(s) == 1, "the kubelet's answer")
        assert owners(samples, 1) == {BERT}
    finally:
        close(node)
