"""PromQL the engine asks: evidence before a reset wipes the counters, and verification after.

Both go through ``tsdb.client.QueryClient``, so they work against the embedded store and against
any Prometheus-API server alike. Placeholders in the policy's checks are filled only with values
that ``validate`` accepted (a node name, a GPU index, an alert name), each escaped as a PromQL
string anyway.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from scheduler.checkpoint import JOB_LABEL, MARK_NODE_LABEL, believed_marks, newest_mark_on
from tsdb.client import QueryClient, QueryError

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
MARK_LOOKBACK = "5m"  # an instant selector's: a mark the exporter stopped exposing is soon none


def quote(value: str) -> str:
    """A value safe inside a PromQL double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def fill(template: str, values: dict[str, str | None]) -> str:
    return _PLACEHOLDER.sub(lambda m: quote(values.get(m.group(1)) or ""), template)


def _rows(client: QueryClient, query: str, at: float | None) -> list[dict[str, Any]]:
    result = client.instant(query, at)
    return [{"labels": dict(series.labels), "value": series.value} for series in _series(result)]


def _capture(client: QueryClient, queries: dict[str, str], at: float | None) -> dict[str, Any]:
    """Each query's rows, or the error that stopped it: one failing query never loses the others."""
    captured: dict[str, Any] = {}
    for name, query in queries.items():
        try:
            captured[name] = _rows(client, query, at)
        except (QueryError, OSError) as exc:
            captured[name] = {"error": str(exc)}
    return captured


def _series(result: Any) -> list[Any]:
    # A scalar result has no series: for a check that counts as "no result", like Prometheus.
    return list(result.series)


def evidence(client: QueryClient, node: str, gpu: str | None, at: float | None = None) -> dict[str, Any]:
    """GPU identity (serial, UUID), XID history and every GPU metric's value now."""
    selector = f'instance="{quote(node)}"' + (f', gpu="{quote(gpu)}"' if gpu is not None else "")
    queries = {
        "gpu_info": f"gpu_info{{{selector}}}",
        "xid_history": f'gpu_xid_errors_total{{instance="{quote(node)}"}}',
        "xid_last": f'gpu_xid_last_code{{instance="{quote(node)}"}}',
        "gpu_metrics": f'{{__name__=~"gpu_.+", {selector}}}',
    }
    captured: dict[str, Any] = {"node": node, "gpu": gpu, "queries": queries, **_capture(client, queries, at)}
    info = captured.get("gpu_info")
    if isinstance(info, list) and info:
        captured["serial"] = info[0]["labels"].get("serial", "")
        captured["uuid"] = info[0]["labels"].get("uuid", "")
    return captured


def fabric_evidence(client: QueryClient, cable: dict[str, str], alertname: str,
                    at: float | None = None) -> dict[str, Any]:
    """For the repair crew: the cable by both ends with their GUIDs, each end's state, width, rate
    and error counters now, and since when the alert has been active (``cable``: the checked
    labels of ``validate.Cable``; for a switch alert, only ``switch``, and its bad links)."""
    selector = ", ".join(f'{name}="{quote(value)}"' for name, value in cable.items())
    queries: dict[str, str] = {
        "since": f'ALERTS_FOR_STATE{{alertname="{quote(alertname)}", {selector}}}',
        "health": f"fabric_link:health{{{selector}}}",
    }
    if "peer" in cable:
        queries |= {"identity": f"fabric_link_info{{{selector}}}",
                    "ends": f'{{__name__=~"fabric_link_.+", {selector}, end!=""}}'}
    else:
        queries |= {"identity": f"fabric_switch_info{{{selector}}}",
                    "health": f"fabric_link:health{{{selector}}} >= 1"}
    captured: dict[str, Any] = {"cable": dict(cable), "queries": queries, **_capture(client, queries, at)}
    identity = captured.get("identity")
    if isinstance(identity, list) and identity:
        labels = identity[0]["labels"]
        captured |= {key: labels[key] for key in ("switch_guid", "peer_guid", "link_type", "node", "tier", "rack")
                     if key in labels}
    since = captured.get("since")
    if isinstance(since, list) and since:
        captured["since_timestamp"] = since[0]["value"]  # ALERTS_FOR_STATE's value: when it became active
    ends = captured.get("ends")
    if isinstance(ends, list):
        by_end: dict[str, dict[str, float]] = {}
        for row in ends:
            end = row["labels"].get("end", "?")
            name = row["labels"].get("__name__", "?").removeprefix("fabric_link_")
            by_end.setdefault(end, {})[name] = row["value"]
        captured["by_end"] = by_end
    return captured


def checkpoint_times(client: QueryClient, job_nodes: Mapping[str, Sequence[str]],
                     at: float | None = None) -> dict[str, float]:
    """Each job's last finished checkpoint (the contract's mark), newest over the nodes it runs on
    (``job_nodes``: job id -> its nodes; ``newest_mark_on`` says why only those); jobs without a
    mark there are absent. Only the job's own word counts (``believed_marks``: not a mark another
    user's job wrote for it), exposed in the last ``MARK_LOOKBACK``. Raises ``QueryError``/``OSError``
    like the client."""
    if not job_nodes:
        return {}
    wanted = "|".join(re.escape(job_id) for job_id in job_nodes)
    marks_of_jobs = believed_marks(f'{JOB_LABEL}=~"{quote(wanted)}"', MARK_LOOKBACK)
    query = f'max by ({JOB_LABEL}, {MARK_NODE_LABEL}) ({marks_of_jobs})'
    marks: dict[str, dict[str, float]] = {}
    for series in _series(client.instant(query, at)):
        by_node = marks.setdefault(series.labels.get(JOB_LABEL, ""), {})
        by_node[series.labels.get(MARK_NODE_LABEL, "")] = float(series.value)
    newest = {job_id: newest_mark_on(by_node, job_nodes.get(job_id, ())) for job_id, by_node in marks.items()}
    return {job_id: mark for job_id, mark in newest.items() if mark is not None}


def verify(client: QueryClient, checks: tuple[str, ...], values: dict[str, str | None],
           at: float | None = None) -> tuple[bool, str]:
    """All checks return a series (Prometheus's "the expression has a result" = healthy)."""
    for template in checks:
        query = fill(template, values)
        try:
            if not _series(client.instant(query, at)):
                return False, f"no result: {query}"
        except (QueryError, OSError) as exc:
            return False, f"query failed: {query}: {exc}"
    return True, f"{len(checks)} check(s) passed"
