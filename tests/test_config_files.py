"""Every configuration file an operator hands ClusterWatch (``--config``, rule files, the alerting
configuration, the remediation policy, the exporter's fake scenario, the fabric plan, the
simulator's fault scenario) is read the same bounded way: a file that is too large, not UTF-8 or
nested past the parser's depth, or a named pipe, is refused with an error naming the file and what is wrong.

Observed before: ``serve --config``, ``--rules`` and ``--alerting-config`` on a file nested 20,000
deep stopped with a ``RecursionError`` traceback; on a file with a byte that is not UTF-8, with a
``UnicodeDecodeError`` traceback; a file of any size was read whole (``--config /dev/zero`` would
take the memory) before anything looked at it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from alerts.evaluator.rulefile import load_rule_file
from alerts.notify import config as alerting_config
from cwkernel import configfile
from cwkernel.errors import read_yaml
from exporter.fabric import plan as fabric_plan
from remediation import policy
from simulator.fleet import Fleet
from tests.realcomponents import free_port

DEEP = "groups: " + "[" * 20_000 + "]" * 20_000 + "\n"


def hostile(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.yml"
    if kind == "deep":
        path.write_text(DEEP)
    elif kind == "not-utf8":
        path.write_bytes(b"groups: \xff\xfe\n")
    elif kind == "pipe":  # nothing ever writes to it: refused, not waited on
        os.mkfifo(path)
    else:  # larger than any configuration needs: refused by its size, not parsed
        with path.open("wb") as handle:
            handle.truncate(configfile.MAX_CONFIG_BYTES + 1)
    return path


SAYS = {"deep": "nested too deeply", "not-utf8": "not UTF-8", "huge": "larger than 16 MiB",
        "pipe": "not a regular file"}

LOADERS: dict[str, Callable[[str], object]] = {
    "settings": lambda path: read_yaml(path, "--config"),
    "rules": load_rule_file,
    "alerting": alerting_config.load,
    "policy": policy.load,
    "fabric-plan": fabric_plan.load,
    "simulator-scenario": lambda path: Fleet(nodes=1).load_scenario(path),
}


@pytest.mark.parametrize("kind", sorted(SAYS))
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_hostile_configuration_file_is_refused_naming_the_file(tmp_path: Path, loader: str, kind: str) -> None:
    path = hostile(tmp_path, kind)
    with pytest.raises(Exception) as caught:
        LOADERS[loader](str(path))
    assert not isinstance(caught.value, (RecursionError, UnicodeDecodeError, MemoryError)), repr(caught.value)
    assert SAYS[kind] in str(caught.value) and str(path) in str(caught.value), str(caught.value)


@pytest.mark.parametrize("flag", ["--config", "--rules", "--alerting-config"])
def test_serve_on_a_deeply_nested_file_says_so_instead_of_a_traceback(tmp_path: Path, flag: str) -> None:
    path = hostile(tmp_path, "deep")
    done = subprocess.run([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{free_port()}", flag, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "nested too deeply" in done.stderr and str(path) in done.stderr
