"""The Go-template subset renders as Prometheus renders (values checked against promtool 2.42)."""
from __future__ import annotations

import threading

import pytest

from alerts.evaluator.gofmt import go_sprintf, go_value, humanize, humanize_duration, humanize_percentage
from alerts.evaluator.templates import Template, TemplateError, render


@pytest.mark.parametrize("value, text", [(1234567.0, "1.234567e+06"), (123456.0, "123456"), (0.5, "0.5"),
                                         (1.234e-05, "1.234e-05"), (95.0, "95"), (float("inf"), "+Inf")])
def test_value_prints_like_go(value, text):
    assert go_value(value) == text


def test_humanize_family_matches_promtool():
    assert humanize(1234567.0) == "1.235M" and humanize(1.234e-05) == "12.34u"
    assert humanize_duration(1234567.0) == "14d 6h 56m 7s" and humanize_duration(1.234e-05) == "12.34us"
    assert humanize_percentage(0.5) == "50%"
    assert go_sprintf("%.2f|%d|%s", 1.5, 1.5, 1.5) == "1.50|%!d(float64=1.5)|%!s(float64=1.5)"


def test_printf_c_of_a_number_that_is_no_character_is_the_replacement_character():
    """As Go writes it; a lone surrogate in an annotation could not be encoded to UTF-8 later."""
    assert go_sprintf("%c|%c|%c", 65, 0xD800, 0x110000) == "A|\ufffd|\ufffd"


def test_labels_value_pipelines_conditionals_and_trim():
    text = ('{{ $labels.instance }} GPU {{ .Labels.gpu }}: {{ $value | humanizePercentage }}'
            '{{ if gt $value 0.5 }} high{{ else }} low{{ end }} [{{ $labels.missing }}] {{- " x" }}')
    assert render(text, {"instance": "n1", "gpu": "3"}, 0.75) == "n1 GPU 3: 75% high [] x"


def test_range_lists_a_query_result_sorted_bounded_and_says_when_empty():
    """What the fabric alerts' impact annotation does (alerts/rules/fabric.yml): a query's result
    sorted by a label, the first N with their index, {{else}} for none; checked in promtool by
    alerts/tests/fabric_links_test.yml."""
    rows = [{"Labels": {"node": n}, "Value": 1.0} for n in ("gpu-3", "gpu-1", "gpu-2")]
    text = ('{{ $r := query "x" | sortByLabel "node" }}({{ len $r }}) {{ range $i, $n := $r }}{{ if lt $i 2 }}'
            '{{ if $i }}, {{ end }}{{ label "node" $n }}{{ end }}{{ else }}none{{ end }}')
    assert render(text, {}, 1.0, query=lambda q: rows) == "(3) gpu-1, gpu-2"
    assert render(text, {}, 1.0, query=lambda q: []) == "(0) none"
    assert render("{{ range query `x` }}{{ .Labels.node }};{{ end }}", {}, 1.0, query=lambda q: rows) == \
        "gpu-3;gpu-1;gpu-2;"


def test_bad_templates_are_refused_at_parse_and_rendered_as_errors():
    with pytest.raises(TemplateError):
        Template("{{ nosuchfunc $value }}")
    with pytest.raises(TemplateError):
        Template('{{ template "x" }}')
    with pytest.raises(TemplateError):
        Template("{{ range query `up` }}")  # no {{end}}
    assert render("{{ first (query \"up\") }}", {}, 1.0).startswith("<error expanding template:")


def render_in_a_thread(text: str, labels: dict[str, str]) -> list:
    """What ``render`` returned; the join's limit only keeps a backtracking engine from hanging the suite."""
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(render(text, labels, 1.0)), daemon=True)
    thread.start()
    thread.join(timeout=60)
    return outcome


def test_template_regexes_run_in_linear_time_on_label_values() -> None:
    """The label values are scraped (a job's textfile can set them); the patterns are users'. On
    Python's backtracking engine this pair took minutes, stalling every rule group behind it."""
    hostile = {"job": "a" * 40 + "!"}
    assert render_in_a_thread('{{ reReplaceAll "(a+)+$" "x" $labels.job }}', hostile) == [hostile["job"]]
    assert render_in_a_thread('{{ if match "(a+)+$" $labels.job }}yes{{ else }}no{{ end }}', hostile) == ["no"]


def test_template_regexes_use_go_syntax_and_expansion() -> None:
    labels = {"instance": "gpu-001:9400", "path": "a.b"}
    assert render('{{ reReplaceAll "(.*):(\\\\d+)" "${1} port $2" $labels.instance }}', labels, 0) == "gpu-001 port 9400"
    assert render('{{ reReplaceAll "\\\\." "_" $labels.path }}', labels, 0) == "a_b"
    with pytest.raises(TemplateError, match=r"^error calling match: error parsing regexp: invalid or unsupported Perl "
                                            r"syntax: `\(\?=`$"):  # Go's words: RE2 has no lookahead either
        Template('{{ match "(?=x)" $labels.path }}').render(labels, 0)


def test_comparisons_with_nan_answer_as_gos() -> None:
    """Go's text/template defines ``le`` as ``lt or eq``, ``gt`` as ``not le`` and ``ge`` as ``not
    lt``: with NaN, ``gt`` and ``ge`` are true (found against promtool: ``{{ if gt $value 0.5 }}``
    on a NaN value took the other branch here)."""
    for name, expected in (("gt", "yes"), ("ge", "yes"), ("lt", "no"), ("le", "no"), ("eq", "no"), ("ne", "yes")):
        assert render(f"{{{{ if {name} $value 0.5 }}}}yes{{{{ else }}}}no{{{{ end }}}}", {}, float("nan")) == expected, name


def test_every_function_of_prometheus_2_42_is_known() -> None:
    """A rule file written for Prometheus may use any of its template functions; one we did not
    know failed ``rules check`` and the whole file with it. Those promtool cannot show without
    more setup: the external URL and its path, and a sample's ``__value__``."""
    url = "http://prom.example:9090/prom/"
    assert render("{{ externalURL }} {{ pathPrefix }}", {}, 0, external_url=url) == f"{url} /prom/"
    assert render('{{ with query "q" }}[{{ . | first | strvalue }}]{{ end }}', {}, 0,
                  query=lambda q: [{"Labels": {"__value__": "v1"}, "Value": 1.0}]) == "[v1]"
    for name in ("safeHtml", "args", "strvalue", "graphLink", "tableLink", "pathPrefix", "externalURL",
                 "parseDuration", "toTime", "stripDomain"):
        Template(f"{{{{ if false }}}}{{{{ {name} }}}}{{{{ end }}}}")  # parses: the function exists


@pytest.mark.parametrize("address, port_stripped, domain_stripped", [
    # promtool 2.42's answers: both functions split as Go's net.SplitHostPort does.
    ("[::1]", "[::1]", "[::1]"), ("host:abc", "host", "host:abc"), ("a:b:c", "a:b:c", "a:b:c"),
    ("host:", "host", "host"), ("[::1]:", "::1", "[::1]:"), ("10.0.0.1:80", "10.0.0.1", "10.0.0.1:80"),
    ("h[x]:1", "h[x]:1", "h[x]:1"), ("gpu-001.cluster:9400", "gpu-001.cluster", "gpu-001:9400"),
])
def test_strip_port_and_strip_domain_split_host_and_port_as_go(address, port_stripped, domain_stripped) -> None:
    """stripPort kept "[::1]" unbracketed and "host:abc" whole, where Prometheus answers "[::1]"
    (no port: not split) and "host": one split for both functions now."""
    assert render(f'{{{{ stripPort "{address}" }}}}|{{{{ stripDomain "{address}" }}}}', {}, 0) == \
        f"{port_stripped}|{domain_stripped}"
