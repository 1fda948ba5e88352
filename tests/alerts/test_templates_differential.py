"""Alert templates against promtool 2.42: random (template, value, label) cases become alerting
rules whose expected annotations are what our renderer writes, and ``promtool test rules`` checks
them with Prometheus's own template engine. The templates cover the value's printing, the humanize
family, printf's verbs, flags, widths and precisions, the string functions, conditionals and
``print``; the values include 0, NaN, infinities, the smallest subnormal and the largest float;
the label values include quotes, backslashes, IPv6 hosts and non-ASCII text; and the functions
``stripDomain``, ``toTime``, ``parseDuration``, ``safeHtml``, ``args``, ``graphLink``, ``tableLink``. It found printf verbs
we did not know (%t %T %c %U %o %b, %x of a float), ``title`` after an apostrophe or a symbol, and
``humanizeTimestamp`` of a negative fraction of a second, and arguments of the wrong type or
number (which Python met as an AttributeError that failed the whole rule group). Cases whose rendering fails are compared
too: Prometheus's text names the template, the failing command and its line and column (counted
in bytes, past the definitions Prometheus puts before the template on its first line), and a
pattern that does not parse is worded as Go's regexp words it."""
from __future__ import annotations

import json
import random
import subprocess

import pytest
import yaml

from alerts.evaluator.templates import render
from tests.realcomponents import require_binary

pytestmark = pytest.mark.real_component

CASES_PER_SEED = 400
SEEDS = range(1, 6)
VALUES = ["0", "1", "-1", "0.5", "1234567", "0.00001234", "1e21", "123456789012", "NaN", "Inf", "-Inf", "1.5e-9",
          "34560000", "-3600", "1700000000", "0.999999", "-0.0001", "100", "1024", "1048576", "12.345678", "5e-324",
          "1.7976931348623157e308", "-1700000000.5", "0.1"]
INSTANCES = ["gpu-001:9400", "node-a", "[::1]:9400", "été", 'a"b', "x y", "GPU-0a", "10.0.0.1", "a\\b", "ünïcode-😀",
             "don't-stop", "ǆemal", "ﬁle ßig", "a.b-c_d", "", "[::1]", "host:abc", "a.b.c:", "h[x]:1",
             # Go's %q escapes what is not printable: a tab, a bell, DEL, a no-break space.
             "tab\there", "bell\x07", "del\x7f", "no\u00a0break"]
TEMPLATES = [
    "{{ $value }}", "{{ $value | humanize }}", "{{ $value | humanize1024 }}", "{{ $value | humanizeDuration }}",
    "{{ $value | humanizePercentage }}", "{{ $value | humanizeTimestamp }}", '{{ printf "%.2f" $value }}',
    '{{ printf "%d" $value }}', '{{ printf "%g" $value }}', '{{ printf "%e" $value }}', '{{ printf "%v" $value }}',
    '{{ printf "%s" $value }}', '{{ printf "%5.1f|%-8.3f|" $value $value }}', '{{ printf "%x" $value }}',
    '{{ printf "%X" $value }}', '{{ printf "%08.3f" $value }}', '{{ printf "%+.1e" $value }}', '{{ printf "%G" $value }}',
    '{{ printf "%.0f" $value }}', '{{ printf "%q" $labels.instance }}', '{{ printf "%T" $value }}',
    '{{ printf "%T|%T|%T" $labels.instance 1 true }}', '{{ printf "%v %v" $value }}', '{{ printf "%b" $value }}',
    "{{ $labels.instance | title }}", "{{ $labels.instance | toUpper }}", "{{ $labels.instance | toLower }}",
    '{{ reReplaceAll "([a-z]+)-(\\\\d+)" "$2-$1" $labels.instance }}', "{{ $labels.instance | stripPort }}",
    "{{ if gt $value 0.5 }}hi{{ else }}lo{{ end }}", '{{ print $value "x" 1 2 "y" }}', "{{ len $labels.instance }}",
    "{{ with $labels.missing }}x{{ else }}none{{ end }}", '{{ $value | printf "%.3g" }}', '{{ printf "%6.2f%%" $value }}',
    '{{ match "^gpu" $labels.instance }}', '{{ if eq $labels.instance "node-a" }}same{{ end }}',
    "{{ humanize 1234.5 }} {{ humanizeDuration 90 }}", '{{ $value | humanizePercentage | printf "%s!" }}',
    '{{ printf "%10s|%-10s|" $labels.instance $labels.instance }}', '{{ printf "%.3s" $labels.instance }}',
    "{{ title \"hello wORLD-foo_bar baz'qux 1st x.y\" }}", '{{ printf "%d|%5d|%-5d|%05d|%+d" 42 42 42 42 42 }}',
    '{{ printf "%c|%U|%o|%O|%b|%x|%X|%#x|%#o" 65 65 8 8 5 255 255 255 8 }}', '{{ printf "%t|%5t|%-6t|" true false true }}',
    '{{ printf "%.2f" 1.005 }}', '{{ printf "%.1f" 0.25 }}', '{{ printf "%.0f" 2.5 }}', '{{ printf "%e" 0 }}',
    # Failing for some values or always: the error's position, command and wording.
    'été {{ $value | humanizeTimestamp }}', 'one\n  two {{ printf "%s" (humanizeTimestamp $value) }}',
    '{{ if gt $value 1e11 }}{{ humanizeTimestamp $value }}{{ end }}', '{{ match "(" $labels.instance }}',
    '{{ reReplaceAll "a**" "x" $labels.instance }}', '{{ reReplaceAll `x{2,1}` "y" $labels.instance }}',
    '{{ match "[z-a]" $labels.instance }}{{ match "(?i" "x" }}', '{{ humanizeTimestamp "abc" }}',
    # The rest of Prometheus 2.42's functions.
    "{{ $labels.instance | stripDomain }}", "{{ toTime $value }}", '{{ parseDuration "1h30m" }}',
    '{{ parseDuration "1y2w3d4h5m6s7ms" }}|{{ parseDuration "0" }}', '{{ parseDuration "5m1h" }}',
    "{{ safeHtml $labels.instance }}", '{{ with args 1 "x" $value }}{{ .arg0 }}-{{ .arg1 }}-{{ .arg2 }}{{ end }}',
    '{{ graphLink "rate(x[5m]) > 0" }}|{{ tableLink $labels.instance }}',
    # Arguments of the wrong type or number: Go refuses them before the call, at the argument.
    "{{ toUpper 3.5 }}", "{{ $value | toUpper }}", "{{ title $labels }}", '{{ reReplaceAll "a" "b" 1 }}',
    '{{ match 1 "x" }}', "{{ printf 1 }}", "{{ title true }}", "{{ title nil }}", "{{ 1 | title }}",
    '{{ toUpper (len "ab") }}', '{{ match "a" $value }}', "{{ len 3 }}", "{{ index $labels 1 }}", "{{ toUpper }}",
    '{{ toUpper "a" "b" }}', "{{ printf }}", '{{ "a" | toUpper "b" }}', "{{ humanize }}", "{{ safeHtml $value }}",
]


def cases(seed: int) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    return [(rng.choice(TEMPLATES), rng.choice(VALUES), rng.choice(INSTANCES)) for _ in range(CASES_PER_SEED)]


@pytest.mark.parametrize("seed", SEEDS)
def test_random_templates_render_as_promtool(seed, tmp_path):
    promtool = require_binary("promtool")
    drawn = cases(seed)
    rules = {"groups": [{"name": "templates", "rules": [
        {"alert": f"T{i}", "expr": f'v{{case="{i}"}}', "annotations": {"a": template}}
        for i, (template, _, _) in enumerate(drawn)]}]}
    series, expected = [], []
    for i, (template, value, instance) in enumerate(drawn):
        labels = {"case": str(i), "instance": instance} if instance else {"case": str(i)}  # "": no label
        ours = render(template, labels, float(value), name=f"__alert_T{i}")
        series.append({"series": f'v{{case="{i}",instance={json.dumps(instance, ensure_ascii=False)}}}',
                       "values": value})
        expected.append({"eval_time": "0m", "alertname": f"T{i}", "exp_alerts": [
            {"exp_labels": labels, "exp_annotations": {"a": ours}}]})
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules, allow_unicode=True))
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": expected}]}, allow_unicode=True))
    result = subprocess.run([promtool, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]


def test_a_failing_template_names_itself_its_position_and_command_as_prometheus_does():
    """promtool 2.42's text for nanoseconds past int64, on the first line (its column counts the
    112 characters of definitions before the template) and on a later one."""
    assert render("{{ $value | humanizeTimestamp }}", {}, 123456789012.0, name="__alert_T0") == (
        '<error expanding template: error executing template __alert_T0: template: __alert_T0:1:124: executing '
        '"__alert_T0" at <humanizeTimestamp>: error calling humanizeTimestamp: 1.23456789012e+11 cannot be '
        "represented as a nanoseconds timestamp since it overflows int64>")
    assert render("x\n  {{ humanizeTimestamp $value }}", {}, 123456789012.0, name="__alert_T0").startswith(
        '<error expanding template: error executing template __alert_T0: template: __alert_T0:2:5: executing '
        '"__alert_T0" at <humanizeTimestamp $value>: error calling humanizeTimestamp:')
