"""A rule's query result as Prometheus's rule manager sees it: a vector of (labels, value).

Prometheus's EngineQueryFunc turns a scalar into a one-sample vector without labels and refuses
other result types; both query clients (in process and HTTP) go through here.
"""
from __future__ import annotations

from cwkernel.series import Labels
from tsdb.client import QueryClient

Sample = tuple[dict[str, str], float]


class RuleEvalError(Exception):
    """A rule could not be evaluated (query failed, result not a vector, duplicate labels...)."""


def query_vector(client: QueryClient, expr: str, ts: float) -> list[Sample]:
    from tsdb.client import QueryError

    try:
        result = client.instant(expr, ts)
    except QueryError as exc:
        # Prometheus's rule error is the engine's message alone, without its errorType.
        raise RuleEvalError(exc.message) from None
    if result.result_type == "scalar":
        return [({}, float(result.scalar))]
    if result.result_type != "vector":
        raise RuleEvalError("rule result is not a vector or scalar")
    return [(dict(labels), float(value)) for labels, value in result.samples()]


def as_labels(labels: dict[str, str]) -> Labels:
    """``labels`` as the store keeps them (``Labels``): sorted, empty values dropped (an empty label
    is no label). Not ``tsdb.labelset.labels_key``, a query-time identity that keeps every label."""
    return tuple(sorted((k, v) for k, v in labels.items() if v != ""))
