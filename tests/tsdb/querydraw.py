"""Random PromQL expressions over the conformance data set's series, one per seed: the
differential tests' generator (tests/tsdb/test_promql_differential.py answers them against
Prometheus, tests/tsdb/test_printer_differential.py prints them as Prometheus prints them)."""
from __future__ import annotations

import random

GAUGES = ["gpu_utilization_ratio", "gpu_temperature_celsius", "gpu_power_watts", "gpu_fan_speed_ratio",
          "gpu_memory_used_bytes"]
COUNTERS = ["gpu_energy_joules_total", "node_cpu_seconds_total", "gpu_xid_errors_total"]
LABELS = ["instance", "gpu", "uuid", "job_id", "mode", "xid", "le"]
MATCHER_VALUES = {"instance": ["gpu-001", "gpu-003", "gpu-00[1-4]", "gpu-0.*", ""], "gpu": ["0", "1", "[12]", ""],
                  "uuid": ["GPU-0.*", "x", ""]}
WINDOWS = ["1m", "5m", "10m", "30m", "90s"]
COUNTER_FUNCTIONS = ["rate", "irate", "increase", "resets", "changes"]
GAUGE_FUNCTIONS = ["avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
                   "stddev_over_time", "stdvar_over_time", "last_over_time", "present_over_time", "delta",
                   "idelta", "deriv"]
ELEMENTWISE = ["abs", "ceil", "floor", "sqrt", "exp", "ln", "log2", "log10", "sgn", "timestamp", "sort", "sort_desc"]
AGGREGATIONS = ["sum", "avg", "min", "max", "count", "stddev", "stdvar", "group"]
OPERATORS = ["+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless", "atan2",
             "> bool", "== bool"]
MATCHING = ["", "", " on (instance, gpu)", " ignoring (uuid)", " on (instance)", " on ()", " ignoring (gpu, uuid)"]
SCALARS = ["2", "0", "-1", "0.5", "NaN", "Inf"]
TEMPLATES = ["clamp({v}, 0.2, 0.8)", "clamp_min({v}, 0.5)", "clamp_max({v}, 0.5)", "round({v}, 0.1)", "round({v})",
             'label_replace({v}, "node", "$1", "instance", "gpu-(.*)")', 'label_join({v}, "x", "-", "instance", "gpu")',
             "absent({v})", "vector(time())", "vector(scalar({v}))", 'count_values("v", round({v}))',
             "histogram_quantile(0.9, sum by (le, instance) (rate(checkpoint_write_seconds_bucket[5m])))",
             "predict_linear(gpu_energy_joules_total[10m], 600)", "quantile_over_time(0.7, gpu_power_watts[5m])",
             "holt_winters(gpu_utilization_ratio[10m], 0.5, 0.5)",
             'absent_over_time(gpu_utilization_ratio{{instance="gpu-003"}}[5m])', "day_of_week()",
             "minute(timestamp({v}))", "hour(timestamp({v}))"]


class Draw:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def matchers(self) -> str:
        found = []
        for _ in range(self.rng.randrange(0, 3)):
            name = self.rng.choice(list(MATCHER_VALUES))
            op = self.rng.choice(["=", "!=", "=~", "!~"])
            found.append(f'{name}{op}"{self.rng.choice(MATCHER_VALUES[name])}"')
        return "{" + ",".join(found) + "}" if found else ""

    def offset(self) -> str:
        return "" if self.rng.random() < 0.8 else self.rng.choice([" offset 5m", " offset -2m", " offset 1h"])

    def selector(self, counter: bool = False) -> str:
        return self.rng.choice(COUNTERS if counter else GAUGES) + self.matchers()

    def window(self, counter: bool = False) -> str:
        return f"{self.selector(counter)}[{self.rng.choice(WINDOWS)}]{self.offset()}"

    def vector(self, depth: int = 0) -> str:
        rng, inner = self.rng, lambda: self.vector(depth + 1)
        kind = rng.randrange(12) if depth < 3 else 0
        if kind == 0:
            return self.selector() + self.offset()
        if kind == 1:
            return f"{rng.choice(COUNTER_FUNCTIONS)}({self.window(True)})"
        if kind == 2:
            return f"{rng.choice(GAUGE_FUNCTIONS)}({self.window()})"
        if kind == 3:
            function = rng.choice(ELEMENTWISE + ["-"])
            return f"-{inner()}" if function == "-" else f"{function}({inner()})"
        if kind == 4:
            modifier = rng.choice(["", f" by ({', '.join(rng.sample(LABELS, rng.randrange(0, 3)))})",
                                   f" without ({', '.join(rng.sample(LABELS, rng.randrange(1, 3)))})"])
            return f"{rng.choice(AGGREGATIONS)}{modifier} ({inner()})"
        if kind == 5:
            modifier = rng.choice(["", " by (instance)", " without (gpu)"])
            return f"quantile{modifier} ({rng.choice(['0.5', '0.9', '0', '1'])}, {inner()})"
        if kind in (6, 7):
            op, matching = rng.choice(OPERATORS), rng.choice(MATCHING)
            group = ""
            if matching and op not in ("and", "or", "unless") and rng.random() < 0.4:
                group = rng.choice([" group_left", " group_right", " group_left (uuid)"])
            return f"({inner()}) {op}{matching}{group} ({inner()})"
        if kind == 8:
            op, scalar = rng.choice(["+", "*", "/", ">", "< bool", "-", "%", "^"]), rng.choice(SCALARS)
            return f"{scalar} {op} ({inner()})" if rng.random() < 0.5 else f"({inner()}) {op} {scalar}"
        if kind == 9:
            template = rng.choice(TEMPLATES)
            if template.startswith(("minute", "hour")):  # only finite times: see the module's docstring
                return template.format(v=self.selector())
            return template.format(v=inner())
        if kind == 10:
            function = rng.choice(["max_over_time", "avg_over_time", "rate", "min_over_time", "count_over_time"])
            body = self.selector(True) if function == "rate" else inner()
            return (f"{function}(({body})[{rng.choice(['10m', '5m', '30m'])}:{rng.choice(['1m', '30s', '', '2m'])}]"
                    f"{self.offset()})")
        return f"{self.selector()} @ {rng.choice(['1700003600', 'start()', 'end()', '1700004000.5'])}"
