"""The textfile directory is writable by jobs (the checkpoint contract), so what a job writes
there must not pass for the exporter's own measurements, nor break the node's page.

Observed before: a job's file with ``gpu_xid_errors_total{gpu="3",xid="79",action="reboot"} 5`` was
exposed beside the GPU collector's, so the XID rules would fire for a fault that never happened
and the automation would drain the node and requeue every job on it, anyone's; a file repeating a
family the node collector exposes (``node_filesystem_readonly``) put a second ``# TYPE`` of it in
the page, which Prometheus refuses whole: the node went ``up == 0``.
"""
from __future__ import annotations

import os
import pwd
import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.build import create_exporter
from exporter.collector import default_collectors
from exporter.config import ExporterConfig
from tests.realcomponents import until

FORGED = """\
# TYPE gpu_xid_errors_total counter
gpu_xid_errors_total{gpu="3",xid="79",action="reboot"} 5
# TYPE node_filesystem_readonly gauge
node_filesystem_readonly{mountpoint="/scratch",device="/dev/sdb1",fstype="ext4"} 1
# TYPE clusterwatch_exporter_nvml_up gauge
clusterwatch_exporter_nvml_up 0
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{gpu="0"} 79
# TYPE clusterwatch_job_checkpoint_timestamp_seconds gauge
clusterwatch_job_checkpoint_timestamp_seconds{job_id="123"} 1733400000
# TYPE node_reboot_required gauge
node_reboot_required 1
"""


def node_page(textfile_dir: Path) -> str:
    exporter = create_exporter(ExporterConfig(backend="fake", textfile_dir=str(textfile_dir),
                                              collectors=default_collectors()))
    try:
        return exporter.collect_once().text.decode()
    finally:
        exporter.close()


def samples(page: str, name: str) -> list[str]:
    return [line for line in page.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


def test_a_jobs_file_cannot_pass_for_the_exporters_own_measurements(tmp_path: Path) -> None:
    (tmp_path / "clusterwatch_job_checkpoint_123.prom").write_text(FORGED)
    page = node_page(tmp_path)
    assert not [line for line in samples(page, "gpu_xid_errors_total") if 'xid="79"' in line]
    assert not samples(page, "DCGM_FI_DEV_XID_ERRORS")
    assert samples(page, "clusterwatch_exporter_nvml_up") == ["clusterwatch_exporter_nvml_up 1.0"]
    assert not [line for line in samples(page, "node_filesystem_readonly") if "/scratch" in line]
    # What a job may say still comes through: its checkpoint mark, and names that are not ours.
    assert samples(page, "clusterwatch_job_checkpoint_timestamp_seconds") == [
        'clusterwatch_job_checkpoint_timestamp_seconds{job_id="123"} 1733400000.0']
    assert samples(page, "node_reboot_required") == ["node_reboot_required 1.0"]
    # Refused, and said so: the textfile error the operator's alerting already watches.
    assert samples(page, "node_textfile_scrape_error") == ["node_textfile_scrape_error 1.0"]


def test_the_page_stays_one_family_per_name_whatever_the_files_say(tmp_path: Path) -> None:
    (tmp_path / "a.prom").write_text(FORGED)
    page = node_page(tmp_path)
    types = [line.split()[2] for line in page.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), sorted(t for t in types if types.count(t) > 1)
    assert list(text_string_to_metric_families(page))  # the page parses as one exposition


def test_a_file_with_an_outsized_label_is_refused_whole(tmp_path: Path) -> None:
    """A label value costs the server its length for every series that carries it: a job writing a
    new 4 MiB value every interval would add a gigabyte an hour per node, inside every series and
    churn limit. Values of more than 4,096 characters, or more than 32 labels on a sample, refuse the file."""
    (tmp_path / "long.prom").write_text(f'long_value{{note="{"x" * 5000}"}} 1\n')
    (tmp_path / "wide.prom").write_text("wide_labels{" + ",".join(f'l{i}="v"' for i in range(40)) + "} 1\n")
    (tmp_path / "clusterwatch_job_checkpoint_7.prom").write_text(
        '# TYPE clusterwatch_job_checkpoint_timestamp_seconds gauge\n'
        'clusterwatch_job_checkpoint_timestamp_seconds{job_id="7"} 1733400000\n')
    page = node_page(tmp_path)
    assert not samples(page, "long_value") and not samples(page, "wide_labels")
    assert samples(page, "clusterwatch_job_checkpoint_timestamp_seconds")
    assert samples(page, "node_textfile_scrape_error") == ["node_textfile_scrape_error 1.0"]


def write_as(path: Path, text: str, uid: int) -> Path:
    path.write_text(text)
    os.chown(path, uid, -1)
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_jobs_mark_says_which_user_wrote_it_unless_root_or_the_exporter_did(tmp_path: Path) -> None:
    """The directory is shared by every job on the node: a job of mallory's can write the mark of a
    job of alice's, newer than its real checkpoint, and end the automation's checkpoint wait before
    alice's job saved anything. The file's owner is the one thing a job cannot forge, so the
    exporter stamps each ``clusterwatch_job_*`` sample with it (``writer``, replacing any the file
    says), and leaves the mark unstamped where root (a prolog) or the exporter's own user wrote it."""
    mark = '# TYPE clusterwatch_job_checkpoint_timestamp_seconds gauge\n' \
           'clusterwatch_job_checkpoint_timestamp_seconds{job_id="%s",writer="root"} 1733400000\n'
    nobody = pwd.getpwnam("nobody")
    write_as(tmp_path / "clusterwatch_job_checkpoint_1.prom", mark % "1", nobody.pw_uid)
    write_as(tmp_path / "clusterwatch_job_checkpoint_2.prom", mark % "2", 4242)  # no such user here
    write_as(tmp_path / "clusterwatch_job_checkpoint_3.prom", mark % "3", os.geteuid())
    write_as(tmp_path / "site.prom", '# TYPE site_rack_info gauge\nsite_rack_info{rack="r1"} 1\n', 4242)
    exporter = create_exporter(ExporterConfig(backend="fake", textfile_dir=str(tmp_path),
                                              collectors=default_collectors()))
    try:
        # Names are looked up off the collection (UserNames): the uid until nobody's is found.
        page = until(lambda: (text := exporter.collect_once().text.decode()) and 'writer="nobody"' in text and text,
                     30, "the name of the file's owner")
    finally:
        exporter.close()
    assert sorted(samples(page, "clusterwatch_job_checkpoint_timestamp_seconds")) == [
        'clusterwatch_job_checkpoint_timestamp_seconds{job_id="1",writer="nobody"} 1733400000.0',
        'clusterwatch_job_checkpoint_timestamp_seconds{job_id="2",writer="4242"} 1733400000.0',
        'clusterwatch_job_checkpoint_timestamp_seconds{job_id="3",writer=""} 1733400000.0']
    assert samples(page, "site_rack_info") == ['site_rack_info{rack="r1"} 1.0']  # only what a job says of itself


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_mark_given_to_another_user_is_stamped_again(tmp_path: Path) -> None:
    """Who wrote a file is part of what the exporter remembers of its last parse: the same bytes
    under another owner (root handing the file over, or a job's user replacing it) are read again."""
    path = write_as(tmp_path / "clusterwatch_job_checkpoint_7.prom",
                    '# TYPE clusterwatch_job_checkpoint_timestamp_seconds gauge\n'
                    'clusterwatch_job_checkpoint_timestamp_seconds{job_id="7"} 1733400000\n', os.geteuid())
    os.utime(path, (path.stat().st_atime - 60, path.stat().st_mtime - 60))  # not in the racy tick
    exporter = create_exporter(ExporterConfig(backend="fake", textfile_dir=str(tmp_path),
                                              collectors=default_collectors()))
    try:
        first = samples(exporter.collect_once().text.decode(), "clusterwatch_job_checkpoint_timestamp_seconds")
        os.chown(path, 4242, -1)  # the file's bytes, size and mtime unchanged
        second = samples(exporter.collect_once().text.decode(), "clusterwatch_job_checkpoint_timestamp_seconds")
    finally:
        exporter.close()
    assert first == ['clusterwatch_job_checkpoint_timestamp_seconds{job_id="7"} 1733400000.0']
    assert second == ['clusterwatch_job_checkpoint_timestamp_seconds{job_id="7",writer="4242"} 1733400000.0']


def test_a_hanging_user_database_holds_up_no_collection(tmp_path: Path, monkeypatch) -> None:
    """The owner's name comes from the user database (NSS: LDAP, SSSD), which can hang. Looked up
    on the collection, it held up the node's whole page; now the collection goes on with the uid as
    writer (not believed as anyone's job) and the name is used once found, the file unchanged."""
    from exporter.collectors import node_textfile

    answer = threading.Event()

    def hanging_lookup(uid: int) -> str:
        answer.wait()
        return "alice"

    monkeypatch.setattr(node_textfile, "USER_NAMES", node_textfile.UserNames(hanging_lookup))
    write_as(tmp_path / "clusterwatch_job_checkpoint_5.prom",
             '# TYPE clusterwatch_job_checkpoint_timestamp_seconds gauge\n'
             'clusterwatch_job_checkpoint_timestamp_seconds{job_id="5"} 1733400000\n', 4243)
    os.utime(tmp_path / "clusterwatch_job_checkpoint_5.prom", (1_700_000_000, 1_700_000_000))  # not racy
    exporter = create_exporter(ExporterConfig(backend="fake", textfile_dir=str(tmp_path),
                                              collectors=default_collectors()))
    try:
        def marks() -> list[str]:
            return samples(exporter.collect_once().text.decode(), "clusterwatch_job_checkpoint_timestamp_seconds")

        assert marks() == ['clusterwatch_job_checkpoint_timestamp_seconds{job_id="5",writer="4243"} 1733400000.0']
        answer.set()
        until(lambda: marks() == ['clusterwatch_job_checkpoint_timestamp_seconds{job_id="5",writer="alice"} '
                                  '1733400000.0'], 30, "the name found")
    finally:
        answer.set()
        exporter.close()


def test_a_name_that_could_not_be_found_is_asked_for_again() -> None:
    """With the user database briefly unreachable a writer reads as its uid, which Slurm's user
    name never equals: that user's marks are not believed. That lasts only while the lookup fails,
    not for the exporter's life."""
    from exporter.collectors.node_textfile import UserNames

    answers = iter([KeyError(4243), "alice"])

    def flaky_lookup(uid: int) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    names = UserNames(flaky_lookup)
    assert names.name(4243) == "4243"
    assert until(lambda: names.name(4243) == "alice", 30, "the second lookup's name")
