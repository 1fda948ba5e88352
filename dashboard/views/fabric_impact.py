"""What a bad cable or switch puts at risk: the nodes behind it and the running jobs that span
them (issue 19 item 4), for many cables in a few queries.

Behind a host cable is its node; behind any other cable, the nodes under its lower end (the
``switch`` label); behind a switch, the nodes under it. "Under" follows ``fabric_link_info``
down: a switch's host cables' nodes, and those of the switches cabled to it from below
(``peer`` = it), tier by tier. Jobs come from the scheduler's snapshot when the dashboard has
one, else from ``gpu_job_info`` joined in the engine with the host cables' ``node`` label.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from dashboard.views.fabric_links import Cable, exact_regex
from tsdb.client import QueryClient

MAX_TIERS = 4  # leaf, spine, core, and one more for a super-spine: the walk down stops there
NODES_SHOWN = 24  # node names per impact in the payload (the count is always whole)
JOBS_SHOWN = 50


class JobImpact(BaseModel):
    job_id: str
    nodes: int = Field(description="of the affected nodes, how many the job runs on")


class Impact(BaseModel):
    node_count: int
    nodes: list[str] = Field(description=f"the first {NODES_SHOWN} affected nodes by name")
    job_count: int
    jobs: list[JobImpact] = Field(description=f"running jobs on the affected nodes, most affected first "
                                              f"(at most {JOBS_SHOWN})")


@dataclass
class _Fabric:
    """The part of the fabric under some switches, as far as the queries went."""

    below: dict[str, set[str]] = field(default_factory=dict)  # switch -> switches cabled to it from below
    hosts: dict[str, dict[str, str]] = field(default_factory=dict)  # leaf -> port -> node
    jobs: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> job -> its GPUs there

    def under(self, switch: str) -> set[str]:
        """``switch`` and every switch below it."""
        seen, frontier = {switch}, [switch]
        while frontier:
            frontier = [s for lower in frontier for s in self.below.get(lower, ()) if s not in seen]
            seen.update(frontier)
        return seen

    def nodes_under(self, switches: set[str]) -> set[str]:
        return {node for leaf in switches for node in self.hosts.get(leaf, {}).values()}


def impacts(client: QueryClient, at: float, cables: list[Cable], switches: list[str], snapshot) -> \
        tuple[list[Impact], list[Impact]]:
    """The impact of each cable and of each switch (names already validated), in their order."""
    roots = {c.switch for c in cables if c.link_type != "host"} | set(switches)
    fabric = _read(client, at, roots, {c.switch for c in cables if c.link_type == "host"}, snapshot)
    by_cable = []
    for cable in cables:
        if cable.link_type == "host":
            node = fabric.hosts.get(cable.switch, {}).get(cable.switch_port, cable.node)
            by_cable.append(_impact(fabric, {node} if node else set()))
        else:
            by_cable.append(_impact(fabric, fabric.nodes_under(fabric.under(cable.switch))))
    by_switch = [_impact(fabric, fabric.nodes_under(fabric.under(s))) for s in switches]
    return by_cable, by_switch


def _read(client: QueryClient, at: float, roots: set[str], leaves: set[str], snapshot) -> _Fabric:
    fabric = _Fabric()
    frontier = set(roots)
    for _ in range(MAX_TIERS):
        if not frontier:
            break
        found: set[str] = set()
        query = f'fabric_link_info{{link_type="isl", peer=~{exact_regex(frontier)}}}'
        for labels, _ in client.instant(query, at).samples():
            upper, lower = labels.get("peer", ""), labels.get("switch", "")
            fabric.below.setdefault(upper, set()).add(lower)
            found.add(lower)
        frontier = found - set(fabric.below) - roots
        roots |= found
    every = roots | leaves
    if not every:
        return fabric
    hosts = f'fabric_link_info{{link_type="host", node!="", switch=~{exact_regex(every)}}}'
    for labels, _ in client.instant(hosts, at).samples():
        fabric.hosts.setdefault(labels.get("switch", ""), {})[labels.get("switch_port", "")] = labels.get("node", "")
    if snapshot is not None:
        nodes = {node for ports in fabric.hosts.values() for node in ports.values()}
        for job in snapshot.jobs:
            if job.state == "RUNNING":
                for node in nodes.intersection(job.nodes):
                    fabric.jobs.setdefault(node, {})[job.job_id] = len(job.gpu_indices.get(node, ()))
    else:
        joined = (f'count by (instance, job_id) (gpu_job_info{{job_id!=""}} and on (instance) '
                  f'label_replace({hosts}, "instance", "$1", "node", "(.+)"))')
        for labels, value in client.instant(joined, at).samples():
            fabric.jobs.setdefault(labels.get("instance", ""), {})[labels.get("job_id", "")] = int(value)
    return fabric


def _impact(fabric: _Fabric, nodes: set[str]) -> Impact:
    per_job: dict[str, int] = {}
    for node in nodes:
        for job in fabric.jobs.get(node, ()):
            per_job[job] = per_job.get(job, 0) + 1
    jobs = sorted(per_job.items(), key=lambda item: (-item[1], item[0]))
    return Impact(node_count=len(nodes), nodes=sorted(nodes)[:NODES_SHOWN], job_count=len(jobs),
                  jobs=[JobImpact(job_id=j, nodes=n) for j, n in jobs[:JOBS_SHOWN]])
