"""The one query interface everything above the store uses.

``QueryClient`` has two implementations with the same results: ``LocalQueryClient`` answers in
process from our engine, ``HTTPQueryClient`` asks any server with the Prometheus HTTP API
(Prometheus, VictoriaMetrics, Thanos, Mimir, or ``clusterwatch serve``). A query that fails
raises ``QueryError`` carrying Prometheus's errorType and message, whichever side answered.
What a reader may want to know about the other side is a capability on the client
(``concurrent_queries``), never its class; ``in_memory_engine()`` is a fresh store and engine in
process for readers that bring their own series (the rule test runner); ``printed_query`` is a
query as Prometheus prints it once parsed (the rules API shows rules' queries so).
"""
from __future__ import annotations

import json
import time
from typing import Callable, Protocol, Sequence, runtime_checkable

import httpx

from cwkernel import httpdeadline
from cwkernel.series import Labels
from tsdb.promql.engine import Engine
from tsdb.promql.gate import Ticket
from tsdb.promql.printer import query_text
from tsdb.promql.values import PromQLError
from tsdb.results import QueryResult, Series
from tsdb.store import DEFAULT_RETENTION_S, AppendError, Store

__all__ = ["QueryClient", "LocalQueryClient", "HTTPQueryClient", "QueryError", "QueryResult", "Series",
           "InMemoryEngine", "in_memory_engine"]


def printed_query(query: str) -> str:
    """``query`` as Prometheus prints it once parsed: how its rules API shows a rule's query
    (``sum(x) by (a)`` reads ``sum by (a) (x)``). Raises ValueError where it does not parse."""
    return query_text(query)


class QueryError(Exception):
    """``error_type``: bad_data, execution, timeout, canceled, internal or unavailable (not
    admitted: the server's query queue is full, or it could not be reached)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


@runtime_checkable
class QueryClient(Protocol):
    # Whether queries sent together are answered in parallel: True for a server over HTTP (it
    # answers them on its cores), False for the in-process engine (it holds the GIL, so threads
    # only add contention). A reader with independent queries sends them together only when True.
    concurrent_queries: bool
    # Whether each answer arrives as text this process decodes: True over HTTP (JSON, every point of
    # every series parsed in Python: 512 GPUs' series over an hour cost a page more to decode than
    # the engine took to answer), False in process (the engine's own arrays, where asking for an
    # aggregate as well costs the engine another read). A reader that shows only an aggregate of
    # many series asks the engine for it when True, and aggregates them itself when False.
    decodes_results: bool

    def instant(self, query: str, at: float | None = None) -> QueryResult: ...

    def range(self, query: str, start: float, end: float, step: float) -> QueryResult: ...


class LocalQueryClient:
    """Queries answered by an in-process engine.

    ``gated=False`` (the rule evaluator, remediation): the engine's reserved lane, never waiting
    behind outside queries. ``gated=True`` (the dashboard's request-driven queries): each query
    passes the engine's gate like an ``/api/v1`` query, waiting in its queue or refused
    (``unavailable``) when the queue is full."""

    concurrent_queries = False
    decodes_results = False

    def __init__(self, engine: Engine, gated: bool = False) -> None:
        self.engine = engine
        self.gated = gated

    def instant(self, query: str, at: float | None = None) -> QueryResult:
        return self._run(lambda ticket: self.engine.instant(query, at, ticket))

    def range(self, query: str, start: float, end: float, step: float) -> QueryResult:
        return self._run(lambda ticket: self.engine.range(query, start, end, step, ticket))

    def _run(self, evaluate: Callable[[Ticket | None], QueryResult]) -> QueryResult:
        try:
            if not self.gated:
                return evaluate(None)
            with self.engine.gate.admitted() as ticket:
                return evaluate(ticket)
        except PromQLError as exc:
            raise QueryError(exc.error_type, exc.message) from None


# An answer's JSON costs about five times its size once decoded into Python objects; 64 MiB is
# some two million samples of a range query, more than any page asks for.
DEFAULT_MAX_ANSWER_BYTES = 64 << 20
_UNDECODABLE = (KeyError, IndexError, TypeError, ValueError, AttributeError)


class HTTPQueryClient:
    """Queries sent to ``base_url`` (e.g. http://127.0.0.1:9090) as POST forms, like Grafana.

    The answer comes from another process, so it is bounded like any input: the whole exchange
    ends at ``timeout`` (sent along as Prometheus's ``timeout``, so the server stops too), an
    answer over ``max_answer_bytes`` is refused before the rest is read, and one that is not the
    API's JSON (nested past the decoder's depth, a proxy's HTML page) is a ``QueryError``."""

    concurrent_queries = True
    decodes_results = True

    def __init__(self, base_url: str, timeout: float = 30.0, client: httpx.Client | None = None,
                 max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self._client = client or httpdeadline.client(timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def instant(self, query: str, at: float | None = None) -> QueryResult:
        return self._post("/api/v1/query", {"query": query, "time": _fmt(time.time() if at is None else at)})

    def range(self, query: str, start: float, end: float, step: float) -> QueryResult:
        return self._post("/api/v1/query_range",
                          {"query": query, "start": _fmt(start), "end": _fmt(end), "step": _fmt(step)})

    def _post(self, path: str, form: dict[str, str]) -> QueryResult:
        url = self.base_url + path
        try:
            with httpdeadline.deadline(self.timeout) as extensions, \
                    self._client.stream("POST", url, data={**form, "timeout": _fmt(self.timeout)},
                                        extensions=extensions) as response:
                raw = httpdeadline.read_capped(response, self.max_answer_bytes)
        except httpdeadline.AnswerTooLarge as exc:
            raise QueryError("execution", f"{url}: {exc} (--prometheus-max-answer-bytes)") from None
        except httpx.TimeoutException:
            raise QueryError("timeout", f"{url}: no answer within {self.timeout:.1f}s") from None
        except httpx.HTTPError as exc:
            raise QueryError("unavailable", f"{url}: {exc}") from None
        return _decode_answer(raw, response.status_code)


def _decode_answer(raw: bytes, status: int) -> QueryResult:
    try:
        body = json.loads(raw)
    except RecursionError:
        raise QueryError("internal", f"HTTP {status}: an answer nested too deeply to be the API's") from None
    except ValueError:
        preview = raw[:200].decode("utf-8", "replace")
        raise QueryError("internal", f"HTTP {status} without a JSON body: {preview}") from None
    if not isinstance(body, dict):
        raise QueryError("internal", f"HTTP {status}: not a Prometheus API answer (a JSON {type(body).__name__})")
    if body.get("status") != "success":
        raise QueryError(str(body.get("errorType", "internal")), str(body.get("error", f"HTTP {status}")))
    try:
        return QueryResult.from_json(body["data"])
    except _UNDECODABLE as exc:
        raise QueryError("internal", f"HTTP {status}: not a Prometheus API answer "
                                     f"({type(exc).__name__}: {str(exc)[:200]})") from None


class InMemoryEngine:
    """A fresh, empty store with its engine in this process, for readers that bring their own
    data instead of scraping it: the rule test runner (``alerts.evaluator.promtest``) loads each
    test group's input series, evaluates the rules through ``query`` and writes their output
    back with ``write``. Nothing outside sees it; it goes when dropped."""

    def __init__(self, retention_s: float) -> None:
        self._store = Store(retention_s=retention_s)
        self.query: QueryClient = LocalQueryClient(Engine(self._store))

    def load(self, labels: Labels, timestamps_ms: Sequence[int], values: Sequence[float]) -> None:
        """One whole series (``labels`` as the store keeps them: sorted pairs, no empty value);
        ValueError when it cannot be loaded (say, the series is already there)."""
        try:
            self._store.append_series(labels, timestamps_ms, values)
        except AppendError as exc:
            raise ValueError(str(exc)) from None

    def write(self, target: str, timestamp_ms: int, samples: Sequence[tuple[Labels, float]]) -> int:
        """What a rule returned (recorded series, ``ALERTS``), as the embedded store takes it from
        the rule evaluator: the evaluator's ``writer``."""
        return self._store.append_rule_output(target, timestamp_ms, samples)


def in_memory_engine(retention_s: float = DEFAULT_RETENTION_S) -> InMemoryEngine:
    return InMemoryEngine(retention_s)


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}"
