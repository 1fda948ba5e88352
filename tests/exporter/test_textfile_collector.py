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


def test_a_series_in_two_files_is_exposed_once_the_first_kept_and_reported(tmp_path: Path, caplog) -> None:
    """node_exporter keeps the first too (its registry refuses the repeat). Exposed twice, the page
    is invalid: Prometheus drops one of them at every scrape and logs it."""
    (tmp_path / "a.prom").write_text('site_jobs{queue="gpu"} 3\nsite_jobs{queue="cpu"} 5\n')
    (tmp_path / "b.prom").write_text('site_jobs{queue="gpu"} 4\n')
    ours, ctx = run("repeated", tmp_path)
    assert [line for line in ours.splitlines() if line.startswith("site_jobs")] == [
        'site_jobs{queue="gpu"} 3.0', 'site_jobs{queue="cpu"} 5.0']
    assert "# HELP site_jobs Metric read from fixtures/textfile/repeated/a.prom, " \
           "fixtures/textfile/repeated/b.prom\n" in ours  # each file once, as node_exporter lists them
    assert "node_textfile_scrape_error 1.0" in ours and ctx.errors.counts() == {"textfile": 1}
    assert f'{tmp_path / "b.prom"}: site_jobs{{queue="gpu"}} was read before from {tmp_path / "a.prom"}' in caplog.text


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


def settle(*paths: Path) -> None:
    """The files' mtimes a minute back, so that the collector may trust stat to tell them unchanged
    (a file modified within node_textfile.RACY_S of its read is read again)."""
    for path in paths:
        stamp = path.stat().st_mtime_ns - 60 * 10**9
        os.utime(path, ns=(stamp, stamp))


def collect_text(collector: TextfileCollector) -> str:
    out: list[str] = []
    for part in collector.collect():
        if isinstance(part, FamilySet):
            part.render_text(out)
        else:
            render_metric_text(part, out)
    return "".join(out)


def test_textfiles_past_the_sample_bound_are_refused_whole_and_the_rest_still_exposed(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """The directory is writable by jobs (the checkpoint contract): a file of 400,000 series would
    take the node past the server's series limit per target, and the node's GPU metrics with it."""
    monkeypatch.setattr(node_textfile, "MAX_TEXTFILE_SAMPLES", 5)
    (tmp_path / "a.prom").write_text("a_metric{i=\"1\"} 1\na_metric{i=\"2\"} 2\na_metric{i=\"3\"} 3\n")
    (tmp_path / "b.prom").write_text("".join(f'b_metric{{i="{i}"}} {i}\n' for i in range(4)))
    (tmp_path / "c.prom").write_text("c_metric 1\n")
    ours, ctx = run("bounded", tmp_path)
    families = exposition(ours)
    assert "a_metric" in families and "c_metric" in families and "b_metric" not in families
    assert families["node_textfile_scrape_error"][2] == {("node_textfile_scrape_error", frozenset(), 1.0)}
    assert ctx.errors.counts() == {"textfile": 1}


def test_more_files_than_the_bound_are_refused_beyond_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(node_textfile, "MAX_FILES", 2)
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.prom").write_text(f"{name}_metric 1\n")
    families = exposition(run("bounded", tmp_path)[0])
    assert "a_metric" in families and "b_metric" in families and "c_metric" not in families
    assert families["node_textfile_scrape_error"][2] == {("node_textfile_scrape_error", frozenset(), 1.0)}


def test_an_unchanged_file_is_parsed_once_and_a_rewritten_one_again(tmp_path: Path, monkeypatch) -> None:
    """Parsing costs about half a second per MiB: a file nobody rewrote is not parsed again each
    cycle. Families merged across files stay as they are in each file (none grows per cycle)."""
    parsed: list[int] = []
    real = node_textfile.parse_prom
    monkeypatch.setattr(node_textfile, "parse_prom", lambda text: parsed.append(len(text)) or real(text))
    (tmp_path / "a.prom").write_text('shared{f="a"} 1\n')
    (tmp_path / "b.prom").write_text('shared{f="b"} 2\n')
    settle(tmp_path / "a.prom", tmp_path / "b.prom")
    collector = TextfileCollector(CollectorContext(ExporterConfig(textfile_dir=str(tmp_path)), MemoryFS(), MemoryFS()))
    texts = [collect_text(collector) for _ in range(3)]
    assert len(parsed) == 2 and texts[0] == texts[1] == texts[2]
    assert exposition(texts[2])["shared"][2] == {("shared", frozenset({("f", "a")}), 1.0),
                                                 ("shared", frozenset({("f", "b")}), 2.0)}
    (tmp_path / "b.prom").write_text('shared{f="b"} 3\n')
    settle(tmp_path / "b.prom")
    assert ("shared", frozenset({("f", "b")}), 3.0) in exposition(collect_text(collector))["shared"][2]
    assert len(parsed) == 3


def test_a_file_rewritten_within_its_mtime_tick_is_read_again(tmp_path: Path) -> None:
    """A filesystem's mtime is coarse (ext4: a few milliseconds), and a rename may reuse the inode
    number just freed: a checkpoint mark rewritten at the same size in the same tick as the parse
    looks unchanged by stat alone. A file modified within a second of its parse is read again."""
    mark = tmp_path / "clusterwatch_job_checkpoint_1.prom"
    mark.write_text("clusterwatch_job_checkpoint_timestamp_seconds 1700000000\n")
    collector = TextfileCollector(CollectorContext(ExporterConfig(textfile_dir=str(tmp_path)), MemoryFS(), MemoryFS()))
    collect_text(collector)
    stamp = mark.stat().st_mtime_ns
    mark.write_text("clusterwatch_job_checkpoint_timestamp_seconds 1700001800\n")  # same size, same inode
    os.utime(mark, ns=(stamp, stamp))
    assert "clusterwatch_job_checkpoint_timestamp_seconds 1700001800.0" in collect_text(collector)


def test_changed_textfiles_past_the_cycles_parse_budget_wait(tmp_path: Path, monkeypatch) -> None:
    """Files rewritten every cycle cost their parse every cycle: past a budget of bytes per cycle a
    changed file is refused for this cycle (an error), so the GPU collectors after it are not held up."""
    monkeypatch.setattr(node_textfile, "MAX_PARSE_BYTES_PER_CYCLE", 40)
    (tmp_path / "a.prom").write_text("a_metric 1\na_other 1\na_third 1\n")  # 31 bytes
    (tmp_path / "b.prom").write_text("b_metric 1\n")
    settle(tmp_path / "a.prom", tmp_path / "b.prom")
    collector = TextfileCollector(CollectorContext(ExporterConfig(textfile_dir=str(tmp_path)), MemoryFS(), MemoryFS()))
    first = exposition(collect_text(collector))
    assert "a_metric" in first and "b_metric" not in first
    assert first["node_textfile_scrape_error"][2] == {("node_textfile_scrape_error", frozenset(), 1.0)}
    second = exposition(collect_text(collector))  # a.prom unchanged: only b.prom to parse
    assert "a_metric" in second and "b_metric" in second
    assert second["node_textfile_scrape_error"][2] == {("node_textfile_scrape_error", frozenset(), 0.0)}


def test_off_without_a_directory() -> None:
    ctx = CollectorContext(ExporterConfig(), MemoryFS(), MemoryFS())
    with pytest.raises(NoDataError):
        TextfileCollector(ctx).collect()
