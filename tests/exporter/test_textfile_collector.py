"""Textfile collector against node_exporter's own textfile fixtures and their expected output.

tests/fixtures/node_exporter/textfile/<case>/ are node_exporter's collector/fixtures/textfile
directories and <case>.out what node_exporter exposes for them (README.md one level up names the
commit). node_exporter's test sets every mtime to 1 and names files relatively
(fixtures/textfile/<case>/...): the comparison does the same to ours.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from cwkernel.metrics import FamilySet, render_metric_text
from exporter.collector import CollectorContext, NoDataError
from exporter.collectors import node_textfile
from exporter.collectors.node_textfile import TextfileCollector
from exporter.config import ExporterConfig
from exporter.hostfs import MemoryFS

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "node_exporter" / "textfile"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def exposition(text: str) -> dict[str, tuple[str, str, set]]:
    """name -> (TYPE, HELP, {(sample name, labels, value)}); a histogram's samples under its name."""
    out: dict[str, tuple[str, str, set]] = {}
    helps: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            _, _, name, *text_ = line.split(" ", 3)
            helps[name] = text_[0] if text_ else ""
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            current = name
            out[name] = (kind, helps.get(name, ""), set())
        elif line and not line.startswith("#"):
            name, labels, value = SAMPLE.match(line).groups()
            out[current][2].add((name, frozenset(PAIR.findall(labels or "")), float(value)))
    return out


def run(case: str, directory: Path | None = None) -> tuple[str, CollectorContext]:
    directory = directory or CASES / case
    ctx = CollectorContext(ExporterConfig(textfile_dir=str(directory)), MemoryFS(), MemoryFS())
    parts = TextfileCollector(ctx).collect()
    out: list[str] = []
    for part in parts:
        if isinstance(part, FamilySet):
            part.render_text(out)
        else:
            render_metric_text(part, out)
    text = "".join(out).replace(str(directory), f"fixtures/textfile/{case}")
    text = re.sub(r'^(node_textfile_mtime_seconds\{.*\}) \S+$', r"\1 1", text, flags=re.M)
    return text, ctx


@pytest.mark.parametrize("case", ["two_metric_files", "inconsistent_metrics", "client_side_timestamp",
                                  "metrics_merge_different_help", "metrics_merge_no_help",
                                  "metrics_merge_same_help", "histogram", "summary", "no_metric_files"])
def test_exposes_what_node_exporter_exposes(case: str) -> None:
    ours, _ = run(case)
    theirs = exposition((CASES / f"{case}.out").read_text())
    assert exposition(ours) == theirs


def test_a_missing_directory_is_a_scrape_error_not_a_failure(tmp_path: Path) -> None:
    ours, ctx = run("nonexistent_path", tmp_path / "nonexistent_path")
    assert exposition(ours) == exposition((CASES / "nonexistent_path.out").read_text())
    assert ctx.errors.counts() == {"textfile": 1}


def test_a_bad_file_is_reported_and_the_good_ones_still_exposed(tmp_path: Path) -> None:
    shutil.copy(CASES / "two_metric_files" / "metrics1.prom", tmp_path / "good.prom")
    (tmp_path / "bad.prom").write_text("this is { not the text format\n")
    (tmp_path / "ignored.txt").write_text("not_a_prom_file 1\n")
    ours, ctx = run("mixed", tmp_path)
    families = exposition(ours)
    assert families["node_textfile_scrape_error"][2] == {("node_textfile_scrape_error", frozenset(), 1.0)}
    assert {s[1] for s in families["node_textfile_mtime_seconds"][2]} == {
        frozenset({("file", "fixtures/textfile/mixed/good.prom")})}
    assert "testmetric1_1" in families and "not_a_prom_file" not in families
    assert ctx.errors.counts() == {"textfile": 1}


def test_an_oversized_file_and_a_named_pipe_are_refused_and_the_good_ones_still_exposed(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """A runaway script's file would take the exporter's memory, a FIFO without a writer would
    block its collection loop: both are refused like an unparsable file."""
    monkeypatch.setattr(node_textfile, "MAX_FILE_BYTES", 1024)
    shutil.copy(CASES / "two_metric_files" / "metrics1.prom", tmp_path / "good.prom")
    (tmp_path / "huge.prom").write_text("huge_metric 1\n" * 200)
    os.mkfifo(tmp_path / "pipe.prom")
    ours, ctx = run("bounded", tmp_path)
    families = exposition(ours)
    assert families["node_textfile_scrape_error"][2] == {("node_textfile_scrape_error", frozenset(), 1.0)}
    assert "testmetric1_1" in families and "huge_metric" not in families
    assert ctx.errors.counts() == {"textfile": 2}


def test_off_without_a_directory() -> None:
    ctx = CollectorContext(ExporterConfig(), MemoryFS(), MemoryFS())
    with pytest.raises(NoDataError):
        TextfileCollector(ctx).collect()
