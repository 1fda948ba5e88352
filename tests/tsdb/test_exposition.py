import math

import pytest

from tsdb.exposition import ExpositionError, parse_exposition

TEXT = r'''# HELP gpu_utilization_ratio GPU utilization, 0-1.
# TYPE gpu_utilization_ratio gauge
gpu_utilization_ratio{gpu="0",uuid="GPU-a"} 0.5
gpu_utilization_ratio{gpu="1",uuid="GPU-b",} 1e-1 1700000000123
# a free comment
weird{path="C:\\dir",quote="say \"hi\"",nl="a\nb"} +Inf
nolabels NaN
empty{} -Inf
'''


def test_text_format_samples_labels_and_metadata() -> None:
    parsed = parse_exposition(TEXT)
    names = [s[0] for s in parsed.samples]
    assert names == ["gpu_utilization_ratio", "gpu_utilization_ratio", "weird", "nolabels", "empty"]
    assert parsed.samples[0] == ("gpu_utilization_ratio", (("gpu", "0"), ("uuid", "GPU-a")), 0.5, None)
    assert parsed.samples[1][2:] == (0.1, 1700000000123)
    assert dict(parsed.samples[2][1]) == {"path": "C:\\dir", "quote": 'say "hi"', "nl": "a\nb"}
    assert parsed.samples[2][2] == math.inf and math.isnan(parsed.samples[3][2])
    assert parsed.metadata["gpu_utilization_ratio"].type == "gauge"
    assert parsed.metadata["gpu_utilization_ratio"].help == "GPU utilization, 0-1."


def test_openmetrics_needs_eof_and_takes_second_timestamps_and_exemplars() -> None:
    text = ('# TYPE jobs counter\n# UNIT jobs_seconds seconds\njobs_total{a="1"} 3 1700000000.5 # {trace_id="x"} 1 1700000000\n'
            "# EOF\n")
    parsed = parse_exposition(text, openmetrics=True)
    assert parsed.samples == [("jobs_total", (("a", "1"),), 3.0, 1700000000500)]
    assert parsed.metadata["jobs"].type == "counter"
    with pytest.raises(ExpositionError, match="# EOF"):
        parse_exposition("a 1\n", openmetrics=True)
    with pytest.raises(ExpositionError, match="after # EOF"):
        parse_exposition("# EOF\na 1\n", openmetrics=True)


@pytest.mark.parametrize("line, problem", [
    ("gpu_util{gpu=0} 1", "malformed labels"),
    ("gpu_util 1 2 3", "expected a value"),
    ("gpu_util abc", "invalid value"),
    ("gpu_util 1_000", "invalid value"),
    ('gpu_util{a="1",a="2"} 1', "duplicate label"),
    ("gpu_util", "expected a space"),
    ("0bad 1", "expected a metric name"),
    ("gpu_util 1 notatime", "invalid timestamp"),
    ("# TYPE gpu_util nonsense", "invalid metric type"),
])
def test_malformed_lines_fail_with_line_number(line: str, problem: str) -> None:
    with pytest.raises(ExpositionError, match=f"line 2: .*{problem}|line 2: {problem}"):
        parse_exposition(f"ok 1\n{line}\n")
