"""Query results as plain objects, the same whichever engine answered (ours in process, or any
Prometheus-API server over HTTP), plus their Prometheus JSON form in both directions."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tsdb.promql.aggregation import format_value


@dataclass
class Series:
    """One series of a result: a vector sample has one point, a matrix series many."""

    labels: dict[str, str]
    timestamps: list[float] = field(default_factory=list)  # seconds
    values: list[float] = field(default_factory=list)

    @property
    def value(self) -> float:
        """The value of a vector sample (its only point)."""
        return self.values[-1]


@dataclass
class QueryResult:
    """``result_type`` is Prometheus's resultType: vector, matrix, scalar or string."""

    result_type: str
    series: list[Series] = field(default_factory=list)
    scalar: float | None = None
    string: str | None = None
    timestamp: float | None = None  # of a scalar or string result

    def to_json(self) -> dict[str, Any]:
        """The ``data`` member of Prometheus's /api/v1/query(_range) answer."""
        if self.result_type in ("scalar", "string"):
            value = format_value(self.scalar) if self.result_type == "scalar" else self.string
            return {"resultType": self.result_type, "result": [_json_time(self.timestamp), value]}
        if self.result_type == "vector":
            result = [{"metric": s.labels, "value": [_json_time(s.timestamps[-1]), format_value(s.values[-1])]}
                      for s in self.series]
        else:
            result = [{"metric": s.labels,
                       "values": [[_json_time(t), format_value(v)] for t, v in zip(s.timestamps, s.values)]}
                      for s in self.series]
        return {"resultType": self.result_type, "result": result}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "QueryResult":
        kind = data["resultType"]
        result = data["result"]
        if kind == "scalar":
            return cls(kind, scalar=_parse_value(result[1]), timestamp=float(result[0]))
        if kind == "string":
            return cls(kind, string=str(result[1]), timestamp=float(result[0]))
        if kind == "vector":
            return cls(kind, [Series(dict(r["metric"]), [float(r["value"][0])], [_parse_value(r["value"][1])])
                              for r in result])
        return cls(kind, [Series(dict(r["metric"]), [float(t) for t, _ in r["values"]],
                                 [_parse_value(v) for _, v in r["values"]]) for r in result])


def _json_time(seconds: float | None) -> float | int:
    # Prometheus writes times as seconds with millisecond precision, integers without a fraction.
    millis = round((seconds or 0.0) * 1000)
    return millis // 1000 if millis % 1000 == 0 else millis / 1000


def _parse_value(text: str) -> float:
    return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}.get(text) if text in ("NaN", "+Inf", "-Inf") \
        else float(text)
