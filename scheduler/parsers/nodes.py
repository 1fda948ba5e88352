"""Node records to ``Node``: the per-node shape and the grouped ``sinfo`` shape.

Two document shapes exist, and a release may print either:
- ``{"nodes": [...]}``, one record per node: ``sinfo --json`` in 22.05 (v0.0.38),
  ``scontrol show nodes --json`` and slurmrestd ``GET /nodes`` in every release;
- ``{"sinfo": [...]}``, records grouped by partition and state: ``sinfo --json`` from 23.02 on.
  ``sinfo -N --json`` gives one record per (node, partition); several nodes in one record share
  its values, so counts are split evenly between them (run with ``-N`` for exact figures).
"""
from __future__ import annotations

from typing import Any

from scheduler import gres
from scheduler.fields import dig, first, integer, text, timestamp, words
from scheduler.hostlist import expand
from scheduler.model import Node
from scheduler.parsers.jobs import split_state

MIB = 1024 * 1024

BASE_STATES = frozenset({"IDLE", "ALLOCATED", "MIXED", "DOWN", "ERROR", "FUTURE", "UNKNOWN"})


def parse_nodes(document: dict) -> list[Node]:
    if isinstance(document.get("nodes"), list):
        nodes = [_from_node_record(record) for record in document["nodes"] if isinstance(record, dict)]
    elif isinstance(document.get("sinfo"), list):
        nodes = [node for record in document["sinfo"] if isinstance(record, dict)
                 for node in _from_sinfo_record(record)]
    else:
        nodes = []
    return _merge_by_name(nodes)


def _state(*values: Any) -> tuple[str, tuple[str, ...]]:
    state_words: list[str] = []
    for value in values:
        state_words.extend(word for word in words(value) if word not in state_words)
    return split_state(state_words, BASE_STATES)


def _partitions(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(text(item) for item in value if text(item))
    return tuple(part for part in text(value).split(",") if part)


def _from_node_record(record: dict) -> Node:
    state, flags = _state(record.get("state"), record.get("state_flags"))
    return Node(
        name=text(record.get("name")),
        state=state,
        state_flags=flags,
        reason=text(record.get("reason")),
        reason_set_by=text(record.get("reason_set_by_user")),
        reason_time=timestamp(record.get("reason_changed_at")),
        gpus=gres.gpu_count(text(record.get("gres"))),
        gpus_allocated=gres.gpu_count(text(record.get("gres_used"))),
        partitions=_partitions(record.get("partitions")),
        cpus=integer(record.get("cpus")),
        cpus_allocated=integer(record.get("alloc_cpus")),
        memory_bytes=integer(record.get("real_memory")) * MIB,
        memory_allocated_bytes=integer(first(record, "alloc_memory", "alloc_mem")) * MIB,
    )


def _from_sinfo_record(record: dict) -> list[Node]:
    names: list[str] = []
    for item in dig(record, "nodes", "nodes") or []:
        names.extend(name for name in expand(text(item)) if name not in names)
    if not names:
        return []
    share = len(names)
    state, flags = _state(dig(record, "node", "state"))
    reason = record.get("reason")
    if isinstance(reason, dict):
        reason_text = text(reason.get("description"))
        reason_user = text(reason.get("user"))
        reason_time = timestamp(reason.get("time"))
    else:
        reason_text, reason_user, reason_time = text(reason), "", None
    partition = text(dig(record, "partition", "name"))
    cpus = integer(dig(record, "cpus", "maximum")) or integer(dig(record, "cpus", "total")) // share
    return [
        Node(
            name=name,
            state=state,
            state_flags=flags,
            reason=reason_text,
            reason_set_by=reason_user,
            reason_time=reason_time,
            # A group's GRES strings describe one node each (nodes are grouped by equal config).
            gpus=gres.gpu_count(text(dig(record, "gres", "total"))),
            gpus_allocated=gres.gpu_count(text(dig(record, "gres", "used"))),
            partitions=(partition,) if partition else (),
            cpus=cpus,
            cpus_allocated=integer(dig(record, "cpus", "allocated")) // share,
            memory_bytes=integer(dig(record, "memory", "maximum")) * MIB,
            memory_allocated_bytes=integer(dig(record, "memory", "allocated")) // share * MIB,
        )
        for name in names
    ]


def _merge_by_name(nodes: list[Node]) -> list[Node]:
    """One Node per name: grouped sinfo repeats a node once per partition."""
    merged: dict[str, Node] = {}
    for node in nodes:
        if not node.name:
            continue
        known = merged.get(node.name)
        if known is None:
            merged[node.name] = node
            continue
        partitions = known.partitions + tuple(p for p in node.partitions if p not in known.partitions)
        merged[node.name] = Node(**{**known.__dict__, "partitions": partitions})
    return list(merged.values())
