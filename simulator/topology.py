"""The shape of the simulated cluster: node names, racks, GPUs and InfiniBand ports per node."""
from __future__ import annotations

from dataclasses import dataclass

NODES_PER_RACK = 8


@dataclass(frozen=True)
class NodeSpec:
    name: str
    index: int  # 0-based position in the fleet
    rack: str
    gpus: int
    ib_ports: int


def node_name(index: int, width: int) -> str:
    """``gpu-001`` ... ``gpu-140``; wider numbers for bigger fleets (``gpu-00001``)."""
    return f"gpu-{index + 1:0{width}d}"


def build_topology(nodes: int, gpus_per_node: int = 8, ib_ports: int = 4) -> list[NodeSpec]:
    if nodes < 1:
        raise ValueError("a fleet needs at least one node")
    if not 1 <= gpus_per_node <= 16:
        raise ValueError("gpus per node must be between 1 and 16")
    width = max(3, len(str(nodes)))
    return [
        NodeSpec(node_name(i, width), i, f"rack-{i // NODES_PER_RACK + 1:02d}", gpus_per_node, ib_ports)
        for i in range(nodes)
    ]
