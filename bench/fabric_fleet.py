"""A generated InfiniBand fat-tree in an embedded store, as the fabric contract (issue 19) exposes
it: ``fabric_switch_info``, ``fabric_link_info`` and the ``fabric-links`` group's recorded series
(``fabric_link:health``, ``fabric_link:errors:rate5m``, ``fabric_link:downed:increase15m``,
``fabric_switch:bad_links:count``), plus ``gpu_job_info`` for the jobs on the nodes, written
straight from the contract: the series the fabric page reads, at any size in seconds, without
running the collector's sweep and the rules over 49,152 cables. Used by bench/bench_fabric_page.py
(16,384 nodes) and the page's tests (tests/dashboard/test_fabric_*.py; the simulator, collector
and rules end to end: test_fabric_simulated.py).

Shape: leaves of ``hosts_per_leaf`` nodes (one HCA each, ``mlx5_0``), grouped in pods of
``leaves_per_pod`` leaves, every leaf cabled once to each of its pod's ``spines_per_pod`` spines;
with ``core_uplinks`` > 0 a third tier, spine ``u`` of every pod cabled once to each of the
``core_uplinks`` cores of core group ``u``. Ports are numbered from 1: a leaf's host ports first,
then its uplinks; a spine's downlinks, then its uplinks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from tsdb.store import Store, TimeColumn

T0 = 1_700_000_000.0
STEP = 60.0
HCA = "mlx5_0"
GPUS = 8
NODES_PER_JOB = 4

Link = tuple[str, str, str, str]  # switch, switch_port, peer, peer_port


@dataclass
class Fault:
    """A link whose recorded health is ``health`` for the last ``steps`` samples (0 before), with
    ``errors`` per second on ``end``'s counters and ``downed`` link-downed increases."""

    link: Link
    health: int
    steps: int
    end: str = "peer"
    errors: float = 0.0
    downed: float = 0.0


@dataclass
class FatTree:
    store: Store
    last: float  # the last sample's time
    steps: int
    nodes: list[str]
    leaves: list[str]
    spines: list[str]
    cores: list[str]
    links: list[Link] = field(default_factory=list)
    host_link: dict[str, Link] = field(default_factory=dict)  # node -> its HCA's cable
    leaf_of: dict[str, str] = field(default_factory=dict)  # node -> leaf
    uplinks: dict[str, list[Link]] = field(default_factory=dict)  # lower switch -> its cables up
    job_of: dict[str, str] = field(default_factory=dict)  # node -> the job running on it
    faults: list[Fault] = field(default_factory=list)


def fat_tree(nodes: int, hosts_per_leaf: int = 32, leaves_per_pod: int = 32, spines_per_pod: int = 32,
             core_uplinks: int = 32, steps: int = 12, faults: int = 3, gpu_jobs: bool = True, recorded: bool = True,
             rename: Mapping[str, str] | None = None, extra_bad: int = 0) -> FatTree:
    """The fabric of ``nodes`` nodes with ``faults`` (up to 3) cable faults: a host cable with
    symbol errors on the switch's side, a leaf-spine cable flapping, a host cable down. At the
    defaults and 16,384 nodes: 512 leaves, 512 spines, 1,024 cores, 49,152 links. ``recorded``
    False: the info series only (the rules have not run). ``rename``: switch names replaced
    (a vendor-default description as a name). ``extra_bad``: that many more cables, spread over the
    fabric, with errors (a storm). Every node has ``up`` (its node page exists)."""
    store = Store(retention_s=1e9)
    names = [f"gpu-{i + 1:05d}" for i in range(nodes)]
    leaves_n = -(-nodes // hosts_per_leaf)
    pods = -(-leaves_n // leaves_per_pod)
    rename = rename or {}
    leaves = [rename.get(n, n) for n in (f"leaf-{i + 1:04d}" for i in range(leaves_n))]
    spines = [rename.get(n, n) for n in (f"spine-{p + 1:02d}-{u + 1:02d}" for p in range(pods)
                                         for u in range(spines_per_pod))]
    cores = [f"core-{u + 1:02d}-{k + 1:02d}" for u in range(spines_per_pod) for k in range(core_uplinks)] \
        if core_uplinks else []
    tree = FatTree(store, T0 + (steps - 1) * STEP, steps, names, leaves, spines, cores)
    host_links: list[tuple[Link, str]] = []
    isl_links: list[Link] = []
    for i, node in enumerate(names):
        leaf = leaves[i // hosts_per_leaf]
        link = (leaf, str(i % hosts_per_leaf + 1), f"{node} {HCA}", "1")
        host_links.append((link, node))
        tree.host_link[node], tree.leaf_of[node] = link, leaf
    for li, leaf in enumerate(leaves):
        pod, slot = divmod(li, leaves_per_pod)
        for u in range(spines_per_pod):
            link = (leaf, str(hosts_per_leaf + u + 1), spines[pod * spines_per_pod + u], str(slot + 1))
            isl_links.append(link)
            tree.uplinks.setdefault(leaf, []).append(link)
    for si, spine in enumerate(spines):
        pod, u = divmod(si, spines_per_pod)
        for k in range(core_uplinks):
            link = (spine, str(leaves_per_pod + k + 1), cores[u * core_uplinks + k], str(pod + 1))
            isl_links.append(link)
            tree.uplinks.setdefault(spine, []).append(link)
    chosen = [Fault(host_links[min(5, nodes - 1)][0], 1, 4, end="switch", errors=40.0),
              Fault(tree.uplinks[leaves[-1]][0], 3, 3, end="peer", errors=0.2, downed=7.0),
              Fault(host_links[min(13, nodes - 1)][0], 4, 2, end="peer", downed=1.0)]
    tree.faults = chosen[:faults]
    every = [link for link, _ in host_links] + isl_links
    taken = {f.link for f in tree.faults}
    spread = [every[i * len(every) // extra_bad] for i in range(extra_bad)] if extra_bad else []
    tree.faults += [Fault(link, 1, 6, end="peer", errors=0.5) for link in spread if link not in taken]
    if gpu_jobs:
        for i, node in enumerate(names):
            if i % 10 != 9:  # nine nodes in ten run a job of four nodes
                tree.job_of[node] = str(2000 + i // NODES_PER_JOB)
    _write(tree, host_links, isl_links, recorded)
    return tree


def _write(tree: FatTree, host_links: list[tuple[Link, str]], isl_links: list[Link], recorded: bool) -> None:
    store, steps = tree.store, tree.steps
    stamps = [int((T0 + i * STEP) * 1000) for i in range(steps)]
    column = TimeColumn()  # every series shares the rule evaluations' timestamps
    column.ts.extend(stamps)
    ones, zeros = [1.0] * steps, [0.0] * steps
    faults = {f.link: f for f in tree.faults}
    tier = {**{s: "leaf" for s in tree.leaves}, **{s: "spine" for s in tree.spines}, **{s: "core" for s in tree.cores}}
    for index, (switch, level) in enumerate(tier.items()):
        guid = f"0x{0xe41d2d0300000000 + index:016x}"
        store.append_series((("__name__", "fabric_switch_info"), ("rack", ""), ("switch", switch),
                             ("switch_guid", guid), ("tier", level)), stamps, ones, column)
    bad: dict[str, list[float]] = {}
    for link, node in [(lk, n) for lk, n in host_links] + [(lk, "") for lk in isl_links]:
        switch, switch_port, peer, peer_port = link
        ids = (("peer", peer), ("peer_port", peer_port), ("switch", switch), ("switch_port", switch_port))
        link_type = "host" if node else "isl"
        store.append_series((("__name__", "fabric_link_info"), ("link_type", link_type), ("node", node),
                             ("peer", peer), ("peer_guid", ""), ("peer_port", peer_port), ("switch", switch),
                             ("switch_guid", ""), ("switch_port", switch_port)), stamps, ones, column)
        tree.links.append(link)
        if not recorded:
            continue
        fault = faults.get(link)
        onset = steps - fault.steps if fault else steps
        health = [0.0] * onset + [float(fault.health)] * (steps - onset) if fault else zeros
        store.append_series((("__name__", "fabric_link:health"),) + ids, stamps, health, column)
        for end in ("peer", "switch"):
            faulty = fault is not None and fault.end == end
            errors = [0.0] * onset + [fault.errors] * (steps - onset) if faulty else zeros
            downed = [0.0] * onset + [fault.downed] * (steps - onset) if faulty else zeros
            by_end = (("end", end),)
            store.append_series((("__name__", "fabric_link:errors:rate5m"), ("end", end)) + ids, stamps, errors, column)
            store.append_series((("__name__", "fabric_link:downed:increase15m"),) + by_end + ids, stamps, downed,
                                column)
        for index, value in enumerate(health):
            if value >= 1:
                for end_switch in (switch, peer) if peer in tier else (switch,):
                    bad.setdefault(end_switch, zeros[:])[index] += 1
    for switch in tier if recorded else ():
        store.append_series((("__name__", "fabric_switch:bad_links:count"), ("switch", switch)), stamps,
                            bad.get(switch, zeros), column)
    for node in tree.nodes:
        store.append_series((("__name__", "up"), ("instance", node), ("job", "gpu-nodes")), stamps, ones, column)
    for node, job in tree.job_of.items():
        for gpu in range(GPUS):
            store.append_series((("__name__", "gpu_job_info"), ("gpu", str(gpu)), ("instance", node),
                                 ("job", "gpu-nodes"), ("job_id", job), ("source", "cgroup")), stamps, ones, column)
