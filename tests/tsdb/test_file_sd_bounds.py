"""file_sd files are written by other tools (a CMDB export, the scheduler's node list, a job's
script): a bad one is refused with a reason that names it, keeps its last good targets, and never
holds up the scrape loop or takes the server's memory.

Observed before the bounds: a 130 kB YAML file of aliases expanded to 1,010,000 targets (1.9 GB,
29 s; 2,000 aliases were killed by the OOM killer); a named pipe blocked the scrape loop for good
(no target scraped again); 200,000 nested brackets raised ``RecursionError`` out of discovery on
every pass of the loop; a 1.2 MB YAML file of 16,384 nodes took 4.7 s inside the scrape loop.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from tsdb import discovery
from tsdb.component import EmbeddedTSDB, TSDBConfig
from tsdb.discovery import DiscoveryError, FileSD, parse_file_sd
from tests.tsdb.scrape_pages import PAGES, latest


def write_sd(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a visible change


def up_once(tsdb: EmbeddedTSDB, targets: int) -> list[float]:
    """The ``up`` values, sorted, once ``targets`` targets have one (or after two minutes)."""
    deadline = time.monotonic() + 120
    while len(latest(tsdb.store, "up")) < targets and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(latest(tsdb.store, "up").values())


def alias_bomb(groups: int, per_group: int = 10_000) -> str:
    addresses = ",".join(f'"n{i}:9400"' for i in range(per_group))
    return "\n".join([f"- &g {{targets: &t [{addresses}]}}"] + ["- {targets: *t}"] * groups)


def test_aliases_that_expand_past_the_target_bound_are_refused_and_the_last_targets_kept(tmp_path: Path) -> None:
    sd = tmp_path / "nodes.yml"
    write_sd(sd, json.dumps([{"targets": ["gpu-001:9400"]}]))
    files = FileSD([str(sd)], "fleet")
    assert len(files.targets()) == 1
    write_sd(sd, alias_bomb(groups=20))  # 34 kB that names 210,000 targets
    assert [t.instance for t in files.targets()] == ["gpu-001:9400"]
    assert f"more than {discovery.MAX_FILE_SD_TARGETS:,} targets" in files.errors[str(sd)]


def test_aliased_groups_and_label_sets_are_bounded_by_what_they_expand_to() -> None:
    labels = ", ".join(f"l{i}: v" for i in range(1_000))
    many_labels = "\n".join([f"- &g {{targets: [a:1, b:1, c:1], labels: {{{labels}}}}}"] + ["- *g"] * 2_000)
    with pytest.raises(DiscoveryError, match=f"more than {discovery.MAX_FILE_SD_LABELS:,} labels"):
        parse_file_sd(many_labels, "fleet")
    with pytest.raises(DiscoveryError, match=f"more than {discovery.MAX_FILE_SD_TARGETS:,} target groups"):
        parse_file_sd("\n".join(["- &g {targets: []}"] + ["- *g"] * discovery.MAX_FILE_SD_TARGETS), "fleet")


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    pipe = tmp_path / "nodes.json"
    os.mkfifo(pipe)
    files = FileSD([str(pipe)], "fleet")
    answered: list = []
    reader = threading.Thread(target=lambda: answered.append(files.targets()), daemon=True)
    reader.start()
    reader.join(timeout=60)
    try:
        assert answered == [[]]
        assert "not a regular file" in files.errors[str(pipe)]
    finally:
        if reader.is_alive():  # before the bound: release the reader blocked in open()
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))


def test_deep_nesting_is_a_discovery_error_not_a_recursion_error() -> None:
    with pytest.raises(DiscoveryError, match="nested too deeply"):
        parse_file_sd("[" * 200_000 + "]" * 200_000, "fleet")
    with pytest.raises(DiscoveryError, match="nest"):  # libyaml's own bound, or the stack's
        parse_file_sd("- " * 5_000 + "x", "fleet")


def test_a_file_over_the_size_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    sd = tmp_path / "nodes.json"
    with open(sd, "wb") as handle:
        handle.truncate(discovery.MAX_FILE_SD_BYTES + 1)
    files = FileSD([str(sd)], "fleet")
    assert files.targets() == []
    assert f"larger than {discovery.MAX_FILE_SD_BYTES // 2**20} MiB" in files.errors[str(sd)]


def test_targets_must_be_addresses_and_label_names_valid() -> None:
    with pytest.raises(DiscoveryError, match="group 0: target 1 must be a host:port string"):
        parse_file_sd('[{"targets": ["a:1", ["b:1", ["c:1"]]]}]', "fleet")
    with pytest.raises(DiscoveryError, match="group 1: 'bad-name' is not a valid label name"):
        parse_file_sd('[{"targets": ["a:1"]}, {"targets": ["b:1"], "labels": {"bad-name": "x"}}]', "fleet")


def test_a_bad_file_sd_file_is_a_reported_problem_of_the_store(tmp_path: Path) -> None:
    sd = tmp_path / "nodes.json"
    write_sd(sd, "{not json")
    tsdb = EmbeddedTSDB(TSDBConfig(file_sd=[str(sd)]))
    tsdb.targets()
    problems = tsdb.component().health()
    assert problems["file_sd_invalid"].startswith(f"{sd}: cannot parse")
    write_sd(sd, json.dumps([{"targets": ["gpu-001:9400"]}]))
    tsdb.targets()
    assert "file_sd_invalid" not in tsdb.component().health()


def test_a_file_sd_file_that_never_answers_does_not_stop_the_other_targets_being_scraped(
        server: str, tmp_path: Path) -> None:
    PAGES["/metrics"] = "gpu_util 1\n"
    pipe = tmp_path / "nodes.json"
    os.mkfifo(pipe)
    writer: list[int] = []
    # The pipe is refused as not a regular file; a file on a hung network mount, which blocks in
    # read instead, is the same to the scrape loop, since discovery runs on its own thread.
    tsdb = EmbeddedTSDB(TSDBConfig(static_targets=[server], file_sd=[str(pipe)], scrape_interval_s=5.0))
    tsdb.start()
    try:
        assert up_once(tsdb, targets=1) == [1.0]
    finally:
        writer.append(os.open(pipe, os.O_RDWR))  # releases a reader blocked in open() before the bound
        tsdb.stop()
        os.close(writer[0])


def test_a_file_sd_read_that_hangs_does_not_stop_the_other_targets_being_scraped(
        server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file on a hung network mount blocks in read(): discovery waits, the scrape loop does not."""
    PAGES["/metrics"] = "gpu_util 1\n"
    sd = tmp_path / "nodes.json"
    write_sd(sd, json.dumps([{"targets": ["127.0.0.1:1"]}]))
    mount_back = threading.Event()
    real_read = discovery.read_file_sd

    def hung_mount(path: str) -> str:
        mount_back.wait()
        return real_read(path)

    monkeypatch.setattr(discovery, "read_file_sd", hung_mount)
    tsdb = EmbeddedTSDB(TSDBConfig(static_targets=[server], file_sd=[str(sd)], scrape_interval_s=5.0))
    tsdb.start()
    try:
        assert up_once(tsdb, targets=1) == [1.0]
        mount_back.set()
        assert up_once(tsdb, targets=2) == [0.0, 1.0]  # the file's target, once read
    finally:
        mount_back.set()
        tsdb.stop()
