"""``clusterwatch rules check|test|export``: the alert rule pack, validated, unit-tested, exported.

- check: parse every rule file (fields, names, durations, PromQL via promql-parser, templates), and
  warn of a template that fails whatever the alert (a function given the wrong type or number).
- test: run alerts/tests/*.yml (promtool's unit-test format) on the embedded engine, and with
  ``promtool test rules`` too when promtool is installed; both must pass.
- export: copy the rule files for Prometheus or vmalert to load (``rule_files:`` / ``-rule``);
  ``--source dcgm`` adds the bridge from dcgm-exporter (alerts/rules/bridges/dcgm.yml, written as
  dcgm-bridge.yml), for sites whose GPUs are scraped from dcgm-exporter (docs/migration.md).
  ``--selector`` scopes every rule to ClusterWatch's targets (default ``job=~"gpu-nodes|clusterwatch|clusterwatch-fabric"``,
  the job names of ``clusterwatch scrape-config``; none with ``--source dcgm`` unless given; ``''``: none)
  and ``--runbook-base`` makes each alert's ``runbook_url`` (alerts/evaluator/scoping.py, docs/alerts.md).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from alerts.evaluator.component import BRIDGES
from alerts.evaluator.scoping import DEFAULT_RUNBOOK_BASE, DEFAULT_SELECTOR
from cwkernel.errors import UsageError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent / "alerts"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("rules", help="check, test or export the alert rule pack",
                                   description=__doc__.splitlines()[0].split(": ", 1)[-1])
    sub = parser.add_subparsers(dest="rules_command", metavar="ACTION")
    sub.required = True
    check = sub.add_parser("check", help="validate rule files")
    check.add_argument("paths", nargs="*", help="rule files or directories (default: the shipped pack)")
    test = sub.add_parser("test", help="run rule unit tests (promtool format)")
    test.add_argument("paths", nargs="*", help="test files or directories (default: the shipped tests)")
    test.add_argument("--no-promtool", action="store_true", help="only the embedded runner")
    export = sub.add_parser("export", help="write the rule files for Prometheus / vmalert")
    export.add_argument("--out", required=True, help="directory to write into")
    export.add_argument("--source", choices=sorted(BRIDGES), default="clusterwatch",
                        help="what exports the GPU metrics: clusterwatch (its exporter, default) or dcgm "
                             "(dcgm-exporter: also writes dcgm-bridge.yml, recording rules onto the gpu_* contract)")
    export.add_argument("--selector", default=None, metavar="MATCHERS",
                        help="label matchers added to every selector of a scraped series, so the rules see only "
                             f"ClusterWatch's targets in a shared Prometheus (default: {DEFAULT_SELECTOR}, the job "
                             "names of 'clusterwatch scrape-config'; with --source dcgm: none unless given; '': none)")
    export.add_argument("--runbook-base", default=DEFAULT_RUNBOOK_BASE, metavar="URL",
                        help="where docs/ is served: each alert gets runbook_url = URL/alerts.md#<alert> "
                             f"(default: {DEFAULT_RUNBOOK_BASE}, a placeholder to replace)")
    export.add_argument("paths", nargs="*", help="rule files or directories (default: the shipped pack)")
    return parser


def _check(paths: list[str]) -> int:
    from alerts.evaluator.rulefile import RuleFileError, expand_paths, load_rule_file
    from alerts.evaluator.component import template_problems_of

    failed = 0
    for path in expand_paths(paths or [PACKAGE_ROOT / "rules"]):
        try:
            groups = load_rule_file(path)
        except RuleFileError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: SUCCESS: {sum(len(g.rules) for g in groups)} rules in {len(groups)} groups")
        # Valid for Prometheus too, which loads them; but every alert would carry the error.
        for problem in template_problems_of(groups):
            print(f"WARNING: {problem}", file=sys.stderr)
    return 1 if failed else 0


def _test(paths: list[str], use_promtool: bool) -> int:
    from alerts.evaluator.promtest import run_test_file

    files = []
    for path in map(Path, paths or [PACKAGE_ROOT / "tests"]):
        files.extend(sorted(path.glob("*.yml")) if path.is_dir() else [path])
    if not files:
        raise UsageError("no test files found")
    failed = 0
    for file in files:
        result = run_test_file(file)
        print(f"{file}: {'SUCCESS' if result.passed else 'FAILED'} (embedded)")
        for failure in result.failures:
            print(f"  {failure}")
        failed += not result.passed
    promtool = shutil.which("promtool")
    if use_promtool and promtool:
        completed = subprocess.run([promtool, "test", "rules", *map(str, files)], check=False)
        failed += completed.returncode != 0
    elif use_promtool:
        print("promtool not installed: ran the embedded runner only", file=sys.stderr)
    return 1 if failed else 0


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _export(out: str, paths: list[str], source: str = "clusterwatch", selector: str | None = None,
            runbook_base: str = DEFAULT_RUNBOOK_BASE) -> int:
    from alerts.evaluator.rulefile import expand_paths, load_rule_file
    from alerts.evaluator.scoping import (
        ScopeError,
        parse_scope,
        recorded_names,
        scope_document,
    )

    files = [(path, path.name) for path in expand_paths(paths or [PACKAGE_ROOT / "rules"])]
    bridge = BRIDGES[source]
    if bridge is not None:
        files.append((bridge, f"{source}-bridge.yml"))
    if selector is None:  # the bridge reads DCGM_FI_* under dcgm-exporter's job, whose name is the site's
        selector = DEFAULT_SELECTOR if bridge is None else ""
    selector = selector.strip()
    try:
        if selector:
            parse_scope(selector)
    except ScopeError as exc:
        raise UsageError(str(exc)) from None
    for path, _ in files:
        load_rule_file(path)  # refuse to export a file Prometheus would refuse
    documents = [yaml.safe_load(path.read_text()) or {} for path, _ in files]
    recorded = recorded_names(documents)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    for (path, name), doc in zip(files, documents):
        original = yaml.safe_dump(doc)
        try:
            scope_document(doc, selector, runbook_base, recorded)
        except ScopeError as exc:
            raise UsageError(f"{path}: {exc}") from None
        if yaml.safe_dump(doc) == original:
            shutil.copyfile(path, target / name)  # nothing to change: the file as shipped, comments and all
        else:
            header = (f"# {path.name} of the ClusterWatch rule pack, written by 'clusterwatch rules export'"
                      f" (selector: {selector or 'none'}; runbook base: {runbook_base}).\n")
            (target / name).write_text(header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1 << 20,
                                                          allow_unicode=True))
        load_rule_file(target / name)
        print(target / name)
    return 0


def run(args: argparse.Namespace) -> int:
    from alerts.evaluator.rulefile import RuleFileError

    try:
        if args.rules_command == "check":
            return _check(args.paths)
        if args.rules_command == "test":
            return _test(args.paths, not args.no_promtool)
        return _export(args.out, args.paths, args.source, args.selector, args.runbook_base)
    except RuleFileError as exc:
        print(f"clusterwatch rules: {exc}", file=sys.stderr)
        return 1
