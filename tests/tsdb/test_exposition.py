import math

import pytest

from tsdb.exposition import ExpositionError, parse_exposition, scraped_series

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


TARGET = (("instance", "n1:9400"), ("job", "node"))


@pytest.mark.parametrize("exposed, stored", [
    ((("gpu", "0"),), {"gpu": "0"}),
    ((("a", "1"), ("a", "2")), 'label name "a" is not unique'),
    ((("job", "x"), ("job", "y")), {"exported_job": "x"}),  # the first value
    ((("instance", "é"), ("instance", "")), {"exported_instance": "é"}),
    ((("job", ""), ("job", "x")), {}),  # its first value is empty: no conflict
    ((("a", ""), ("a", "v")), {}),  # an empty value anywhere: no label
    ((("job", "x"), ("exported_job", "y")), {"exported_job": "y", "exported_exported_job": "x"}),
    ((("__name__", "other"),), 'label name "__name__" is not unique'),
])
def test_a_scraped_sample_is_labelled_as_prometheus_labels_it(exposed, stored) -> None:
    """Each case was seen against a real Prometheus 2.42 (tests/tsdb/test_scrape_differential.py
    draws such pages). Refusing every page with a repeated label name, as we did, took down targets
    Prometheus scrapes: a repeat of a target label or of one with an empty value."""
    if isinstance(stored, str):
        with pytest.raises(ExpositionError, match=stored):
            scraped_series("m", exposed, TARGET)
    else:
        assert dict(scraped_series("m", exposed, TARGET)) == {"__name__": "m", **dict(TARGET), **stored}


def test_the_parser_keeps_repeated_label_names_for_the_labelling_to_judge() -> None:
    parsed = parse_exposition('gpu_util{a="1",b="x",a="2"} 1\n')
    assert parsed.samples == [("gpu_util", (("a", "1"), ("b", "x"), ("a", "2")), 1.0, None)]


@pytest.mark.parametrize("line, problem", [
    ("gpu_util{gpu=0} 1", "malformed labels"),
    ("gpu_util 1 2 3", "expected a value"),
    ("gpu_util abc", "invalid value"),
    ("gpu_util 1_000", "invalid value"),
    ("gpu_util", "expected a space"),
    ("0bad 1", "expected a metric name"),
    ("gpu_util 1 notatime", "invalid timestamp"),
    ("# TYPE gpu_util nonsense", "invalid metric type"),
])
def test_malformed_lines_fail_with_line_number(line: str, problem: str) -> None:
    with pytest.raises(ExpositionError, match=f"line 2: .*{problem}|line 2: {problem}"):
        parse_exposition(f"ok 1\n{line}\n")


# ---- a target's last page remembered (tsdb/exposition.py ``remembered``) -----------------------

PREFIXES = ['gpu_util{gpu="0",uuid="GPU-a"}', 'gpu_util{gpu="1",uuid="GPU-b",}', "up", "empty{}",
            'weird{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb"}', 'jobs_total{a="1"}', 'gpu_util{gpu="0",uuid="GPU-a"} ']
VALUE_TEXTS = ["1", "0.5", "1e-1", "+Inf", "-Inf", "NaN", "nan", "1_000", "abc", "#", "", "1 1700000000123",
               "1\t1700000000123", "1\r", "1 ", "3 1700000000.5", "3 # {trace_id=\"x\"} 1", "3 # {} 3", "0x10", "5."]


def page_lines(rng, count: int) -> list[str]:
    return [f"{rng.choice(PREFIXES)} {rng.choice(VALUE_TEXTS)}" for _ in range(count)]


def parsed_or_error(text: str, openmetrics: bool, remembered=None):
    try:
        result = parse_exposition(text, openmetrics, remembered)
    except ExpositionError as exc:
        return "error", str(exc)
    return [(n, l, "nan" if isinstance(v, float) and math.isnan(v) else v, t) for n, l, v, t in result.samples], \
        dict(result.metadata)


@pytest.mark.parametrize("openmetrics", [False, True])
def test_a_remembered_page_reads_exactly_as_a_fresh_one(openmetrics: bool) -> None:
    """The memory may only save work: for pages whose lines the last page held with other value
    texts (bad values, timestamps, exemplars, tabs, carriage returns, trailing spaces among them),
    the samples, or the error, are those of a parse without it."""
    import random
    rng = random.Random(7)
    end = "# EOF\n" if openmetrics else ""
    for _ in range(400):
        first = "\n".join(page_lines(rng, rng.randint(1, 6))) + "\n" + end
        second = "# TYPE gpu_util gauge\n" + "\n".join(page_lines(rng, rng.randint(1, 6))) + "\n" + end
        try:
            memory = parse_exposition(first, openmetrics, {}).series_text
        except ExpositionError:
            memory = {}
        assert parsed_or_error(second, openmetrics, memory) == parsed_or_error(second, openmetrics), (first, second)


def test_lines_a_target_showed_last_time_are_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading each line's labels was most of a scrape: the demo's server spent more than half a
    core scraping 140 nodes every 5 s. A line the last page held, with a new value, is not."""
    import tsdb.exposition as exposition
    first = parse_exposition(TEXT, remembered={})
    assert set(first.series_text) == {'gpu_utilization_ratio{gpu="0",uuid="GPU-a"}', "nolabels", "empty{}",
                                      'weird{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb"}'}  # not the timestamped line
    parsed: list[str] = []
    real = exposition._parse_sample
    monkeypatch.setattr(exposition, "_parse_sample", lambda line, *rest: parsed.append(line) or real(line, *rest))
    again = parse_exposition(TEXT.replace(" 0.5\n", " 0.75\n"), remembered=first.series_text)
    assert parsed == ['gpu_utilization_ratio{gpu="1",uuid="GPU-b",} 1e-1 1700000000123']
    assert again.samples[0] == ("gpu_utilization_ratio", (("gpu", "0"), ("uuid", "GPU-a")), 0.75, None)
    assert again.series_text.keys() == first.series_text.keys()
