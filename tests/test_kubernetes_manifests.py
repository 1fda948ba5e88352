"""The Kubernetes deploy kit (deploy/kubernetes/): every manifest parses into named objects, the
DaemonSet gives the exporter the kubelet's pod-resources socket, every selector finds the pods,
every scrape path sets ``instance`` to the node's name, and Prometheus accepts the scrape config."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clusterwatch.cli import build_parser
from exporter.podresources.allocations import DEFAULT_SOCKET
from tests.realcomponents import require_binary

KUBERNETES = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
SCRAPE_CONFIG = KUBERNETES / "prometheus-scrape-config.yml"  # a Prometheus config, not Kubernetes objects
NODE_NAME = "__meta_kubernetes_pod_node_name"


def objects() -> list[dict]:
    return [doc for path in sorted(KUBERNETES.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def one(kind: str, name: str | None = None) -> dict:
    found = [o for o in objects() if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}" + (f" named {name}" if name else "")
    return found[0]


def pod_template() -> dict:
    return one("DaemonSet")["spec"]["template"]


def exporter_container() -> dict:
    return next(c for c in pod_template()["spec"]["containers"] if c["name"] == "exporter")


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def test_every_manifest_parses_into_objects_with_api_version_kind_and_name():
    paths = sorted(KUBERNETES.glob("*.yaml"))
    assert {p.name for p in paths} >= {"exporter-daemonset.yaml", "service.yaml", "servicemonitor.yaml",
                                       "podmonitor.yaml", "prometheus-rbac.yaml", "server.yaml"}
    for path in paths:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        assert documents, f"{path.name} holds no object"
        for doc in documents:
            assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: {doc}"
            assert doc.get("metadata", {}).get("name"), f"{path.name}: a {doc['kind']} without metadata.name"
    monitors = {o["kind"]: o["apiVersion"] for o in objects() if o["kind"] in ("ServiceMonitor", "PodMonitor")}
    assert monitors == {"ServiceMonitor": "monitoring.coreos.com/v1", "PodMonitor": "monitoring.coreos.com/v1"}


def test_the_daemonset_gives_the_exporter_the_kubelets_pod_resources_socket():
    spec = pod_template()["spec"]
    container = exporter_container()
    args = container["args"]
    socket = args[args.index("--pod-resources-socket") + 1]
    assert socket == DEFAULT_SOCKET
    directory = str(Path(socket).parent)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == directory)
    assert mount["readOnly"] is True
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["hostPath"]["path"] == directory  # the host's directory, so a restarted kubelet's new socket shows


def test_the_daemonsets_exporter_arguments_are_the_exporters_flags():
    parsed = build_parser().parse_args(exporter_container()["args"])
    assert parsed.pod_resources_socket == DEFAULT_SOCKET and parsed.procfs == "/host/proc"


def test_every_selector_finds_the_exporter_pods():
    daemonset, service = one("DaemonSet"), one("Service", "clusterwatch-exporter")
    pod_labels = pod_template()["metadata"]["labels"]
    namespace = daemonset["metadata"]["namespace"]
    assert matches(daemonset["spec"]["selector"]["matchLabels"], pod_labels)
    assert matches(service["spec"]["selector"], pod_labels) and service["metadata"]["namespace"] == namespace
    port_names = {p["name"] for p in exporter_container()["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    service_monitor, pod_monitor = one("ServiceMonitor"), one("PodMonitor")
    assert matches(service_monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert [e["port"] for e in service_monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    assert matches(pod_monitor["spec"]["selector"]["matchLabels"], pod_labels)
    assert {e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]} <= port_names
    for monitor in (service_monitor, pod_monitor):
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == [namespace]

    config = yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"][0]
    assert config["kubernetes_sd_configs"][0]["namespaces"]["names"] == [namespace]
    keep = next(r for r in config["relabel_configs"] if r.get("action") == "keep")
    values = {"__meta_kubernetes_pod_label_app_kubernetes_io_name": pod_labels["app.kubernetes.io/name"],
              "__meta_kubernetes_pod_container_port_name": "metrics"}
    assert "metrics" in port_names
    assert re.fullmatch(keep["regex"], ";".join(values[label] for label in keep["source_labels"]))


def test_every_scrape_path_names_the_target_by_its_node():
    for monitor, endpoints in ((one("ServiceMonitor"), "endpoints"), (one("PodMonitor"), "podMetricsEndpoints")):
        for endpoint in monitor["spec"][endpoints]:
            assert {"sourceLabels": [NODE_NAME], "targetLabel": "instance"} in endpoint["relabelings"], monitor["kind"]
            assert {"targetLabel": "job", "replacement": "gpu-nodes"} in endpoint["relabelings"]
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"][0]
    assert {"source_labels": [NODE_NAME], "target_label": "instance"} in config["relabel_configs"]
    assert config["job_name"] == "gpu-nodes"


def test_a_plain_prometheus_may_discover_the_pods():
    role, binding, account = one("ClusterRole"), one("ClusterRoleBinding"), one("ServiceAccount")
    granted = {(resource, verb) for rule in role["rules"] if "" in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert {(r, v) for r in ("pods", "endpoints") for v in ("get", "list", "watch")} <= granted
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert {"kind": "ServiceAccount", "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"]} in binding["subjects"]


@pytest.mark.real_component
def test_prometheus_accepts_the_scrape_config(tmp_path):
    promtool = require_binary("promtool")
    check = subprocess.run([promtool, "check", "config", str(SCRAPE_CONFIG)], capture_output=True, text=True,
                           timeout=60)
    if "field kubernetes_sd_configs not found" in check.stdout + check.stderr:
        # Debian's build of Prometheus (2.42.0+ds) leaves Kubernetes discovery out: promtool checks
        # the rest (job, relabelling) with the discovery swapped for a static target, and vmagent,
        # which reads the same format strictly, checks the discovery block itself.
        config = yaml.safe_load(SCRAPE_CONFIG.read_text())
        for job in config["scrape_configs"]:
            del job["kubernetes_sd_configs"]
            job["static_configs"] = [{"targets": ["gpu-k01:9835"]}]
        static = tmp_path / "prometheus.yml"
        static.write_text(yaml.safe_dump(config))
        check = subprocess.run([promtool, "check", "config", str(static)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        vmagent = require_binary("vmagent")
        dry_run = subprocess.run([vmagent, f"-promscrape.config={SCRAPE_CONFIG}", "-promscrape.config.dryRun"],
                                 capture_output=True, text=True, timeout=60)
        assert dry_run.returncode == 0, dry_run.stdout + dry_run.stderr
    else:
        assert check.returncode == 0, check.stdout + check.stderr


def test_the_server_is_restarted_when_wedged_and_keeps_its_state():
    """server.yaml: serve's own flags; liveness on /-/live (503 while a loop is stalled), which the
    app serves, on the event loop like /-/healthy; the state directory on the claimed volume; the
    Service finds the pod; the secrets' variables are the ones serve and the operators' check read."""
    from cwkernel.auth import ENV_OPERATORS
    from cwkernel.server import build_app

    server = one("StatefulSet", "clusterwatch-server")
    template = server["spec"]["template"]
    container = template["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert args.state_dir.startswith(container["volumeMounts"][0]["mountPath"] + "/")
    assert container["volumeMounts"][0]["name"] == server["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    assert server["spec"]["replicas"] == 1
    routes = {route.path for route in build_app([]).routes}
    probes = {kind: container[kind]["httpGet"]["path"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["livenessProbe"] == "/-/live" and set(probes.values()) <= routes
    service = one("Service", "clusterwatch-server")
    assert matches(service["spec"]["selector"], template["metadata"]["labels"])
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in container["ports"]}
    serve_help = subprocess.run([sys.executable, "-m", "clusterwatch", "serve", "--help"], capture_output=True,
                                text=True, timeout=60).stdout.replace("\n", "").replace(" ", "")
    for variable in (entry["name"] for entry in container["env"]):
        assert variable == ENV_OPERATORS or variable in serve_help, variable
